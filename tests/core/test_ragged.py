"""Ragged-array indices against a loop over the rows."""

import numpy as np

from tnq_core.ragged import index_dtype, ranges


def test_ranges_concatenate_each_rows_indices():
    rng = np.random.default_rng(0)
    for trial in range(50):
        counts = rng.integers(0, 5, rng.integers(0, 8))
        starts = rng.integers(0, 100, len(counts))
        expected = [i for start, count in zip(starts, counts) for i in range(start, start + count)]
        got = ranges(starts, counts)
        assert got.dtype == np.int64 and got.tolist() == expected, trial


def test_index_dtype_holds_every_index_below_n():
    assert index_dtype(0) == index_dtype(2**31 - 1) == np.int32 and index_dtype(2**31) == np.int64
    assert np.iinfo(index_dtype(2**31 - 1)).max >= 2**31 - 1
