"""Index arithmetic of ragged arrays (rows of different lengths concatenated along one axis)."""

import numpy as np


def ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(counts.sum(),) int64: start, start + 1, ..., start + count - 1 of each (start, count), one after another
    (the flat indices of some rows of a ragged array, e.g. a conformer's atoms)."""
    counts = np.asarray(counts, np.int64)
    ends = np.cumsum(counts)
    return np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(np.asarray(starts, np.int64) - (ends - counts), counts)


def index_dtype(n: int) -> type[np.signedinteger]:
    """int32 for indices below `n` when they fit (half the memory of int64 over millions of rows), else int64."""
    return np.int32 if n < 2**31 else np.int64
