"""Conformers' element compositions: packed element counts, distinct rows, and the store's derived
`composition` column (each conformer's first conformer of its shard with the same element counts)."""

from pathlib import Path

import numpy as np

from tnq_data.store.arrays import read_checked


def element_counts(z: np.ndarray, atom_offset: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """(C, len(elements)) int64 number of atoms of each element per conformer; z (A,), atom_offset (C+1,);
    `elements` sorted, holding every z read.

    Each atom contributes 1 << (slot * bits) to a uint64 word, several elements sharing a word with `bits`
    enough for the largest conformer, so summing a conformer's words (one reduceat per word) counts them all
    without a carry from one slot into the next.
    """
    n_atoms = np.diff(atom_offset)
    counts = np.zeros((len(n_atoms), len(elements)), np.int64)
    bits = max(int(n_atoms.max(initial=0)).bit_length(), 1)
    z = z[atom_offset[0]:atom_offset[-1]].astype(np.intp, copy=False)  # 3x faster to index with than uint8
    held = n_atoms > 0  # reduceat would give an empty conformer its next atom
    start = atom_offset[:-1][held] - atom_offset[0]
    for first in range(0, len(elements) if held.any() else 0, 64 // bits):
        chunk = elements[first:first + 64 // bits]
        shifts = np.arange(len(chunk), dtype=np.uint64) * np.uint64(bits)
        word = np.zeros(int(elements[-1]) + 1, np.uint64)
        word[chunk] = np.uint64(1) << shifts
        packed = np.add.reduceat(np.take(word, z), start)
        counts[held, first:first + len(chunk)] = (packed[:, None] >> shifts) & np.uint64((1 << bits) - 1)
    return counts


def distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of an (R, K) integer array, sorted lexicographically, and the (R,) index of each row
    among them: np.unique(rows, axis=0, return_inverse=True) through one lexsort (10x faster), of the first
    row of each run of equal rows only (a store's conformers come in runs, one molecule's after another), over
    the columns packed into as few int64 words as keep their order (`_packed`)."""
    packed = _packed(rows)
    run = first_of_runs(packed)
    heads = packed[run]
    order = np.lexsort(heads.T[::-1])
    new = first_of_runs(heads[order])
    inverse = np.empty(len(heads), np.int64)
    inverse[order] = np.cumsum(new) - 1
    return rows[run][order][new], inverse[np.cumsum(run) - 1]


def _packed(rows: np.ndarray) -> np.ndarray:
    """(R, W) int64, W <= K: consecutive columns of an (R, K) integer array, each less its minimum, shifted
    together into one word while their bits fit in 63, so that rows compare (equal, lexicographic order) as the
    original rows do; the rows as int64 when a column spans 2^62 or more."""
    if not rows.size:
        return rows.astype(np.int64)
    low, high = rows.min(axis=0).astype(np.int64), rows.max(axis=0).astype(np.int64)
    bits = [int(span).bit_length() for span in (high - low).tolist()]
    if max(bits) > 62:
        return rows.astype(np.int64)
    words, used = [], 64
    for column, width in enumerate(bits):
        values = rows[:, column].astype(np.int64) - low[column]
        if used + width <= 63:
            words[-1], used = (words[-1] << width) | values, used + width
        else:
            words.append(values)
            used = width
    return np.column_stack(words)


def first_of_runs(rows: np.ndarray) -> np.ndarray:
    """(R,) bool: rows of an (R, K) array, or values of an (R,) one, that differ from the one before them (the
    first included)."""
    first = np.ones(len(rows), bool)
    differs = rows[1:] != rows[:-1]
    first[1:] = differs if differs.ndim == 1 else differs.any(axis=1)
    return first


def composition_column(z: np.ndarray, atom_offset: np.ndarray) -> np.ndarray:
    """(C,) int32: for each conformer c of a shard (atoms z[atom_offset[c]:atom_offset[c+1]], offsets from 0),
    the first conformer of the shard with the same number of atoms of every element (c itself when none
    before it has)."""
    if len(atom_offset) < 2:
        return np.zeros(0, np.int32)
    elements = np.flatnonzero(np.bincount(z, minlength=1))
    inverse = distinct_rows(element_counts(z, atom_offset, elements))[1]
    first = np.unique(inverse, return_index=True)[1]
    return first[inverse].astype(np.int32)


def derived_composition(root: Path, manifest: dict, shard: int) -> np.ndarray:
    """The `composition_column` of shard `shard` of the version `manifest` of the store at `root`, from its z and
    atom offsets (read checked against the manifest's hashes)."""
    arrays, rows = manifest["arrays"], manifest["shards"][shard]
    offsets, z = arrays["atom_offset"]["shards"][shard], arrays["z"]["shards"][shard]
    atom_offset = read_checked(root, offsets["path"], (rows["conformers"] + 1,), offsets["hash"])
    return composition_column(read_checked(root, z["path"], (rows["atoms"],), z["hash"]), atom_offset)


def check_composition_column(composition: np.ndarray, atom_offset: np.ndarray) -> str | None:
    """Why `composition` (C,) cannot be a shard's composition column with these atom offsets (C+1,), from
    what it says alone (each conformer points at a first conformer, no later than itself, pointing at itself,
    with as many atoms); None when it can. Whether the element counts agree takes z (`composition_column`)."""
    index = np.arange(len(composition))
    if len(composition) and (composition.min() < 0 or np.any(composition > index)):
        return "points at a later conformer"
    if np.any(composition[composition] != composition):
        return "points at a conformer that is not the first of its composition"
    sizes = np.diff(atom_offset)
    if np.any(sizes[composition] != sizes):
        return "points at a conformer with another number of atoms"
    return None
