"""HDF5 in the layout of torchmd-net's `HDF5` dataset class: one group per molecule size.

Each group `natoms_NNNN` holds its K conformers of N atoms: `types` (K,N) atomic numbers, `pos` (K,N,3) Å,
`energy` (K,) eV, `forces` (K,N,3) eV/Å when the store has them; and, which torchmd-net 3.1's class does
not read (docs/interop.md), `total_charge` (K,) e, `multiplicity` (K,) 2S+1 and `molecule` (K,) the
store's molecule index. Conformers keep their store order within a group. The root attributes give the
units, the store version and the split.
"""

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tnq_data.export.selection import Block

#: Units of the datasets, written as root attributes.
UNITS = {"pos": "angstrom", "energy": "eV", "forces": "eV/angstrom", "total_charge": "e"}


def group_name(n_atoms: int) -> str:
    """The group of conformers with `n_atoms` atoms (zero-padded: groups sort by size)."""
    return f"natoms_{n_atoms:04d}"


def _append(group, name: str, values: np.ndarray) -> None:
    """Append `values` along the first axis of dataset `name` (created resizable on first use)."""
    if name not in group:
        group.create_dataset(name, data=values, maxshape=(None, *values.shape[1:]), chunks=True)
        return
    dataset = group[name]
    start = dataset.shape[0]
    dataset.resize(start + len(values), axis=0)
    dataset[start:] = values


def append_block(handle, block: Block) -> None:
    """Add the conformers of `block` to the groups of their sizes (arrays gathered per size, no per-conformer loop)."""
    sizes = block.n_atoms
    for n in np.unique(sizes).tolist():
        rows = np.flatnonzero(sizes == n)
        atoms = block.atom_offset[rows][:, None] + np.arange(n)  # (K, N) atom rows
        group = handle.require_group(group_name(n))
        _append(group, "types", block.z[atoms].astype(np.int64))
        _append(group, "pos", block.pos[atoms])
        _append(group, "energy", block.energy[rows])
        if block.forces is not None:
            _append(group, "forces", block.forces[atoms])
        _append(group, "total_charge", block.total_charge[rows].astype(np.int32))
        _append(group, "multiplicity", block.multiplicity[rows].astype(np.int32))
        _append(group, "molecule", block.molecule[rows])


def write_hdf5(blocks: Iterable[Block], path: Path, attributes: dict, progress) -> None:
    """Write every block into a new HDF5 file at `path`; `progress(n)` after each block."""
    import h5py

    with h5py.File(path, "w") as handle:
        for key, value in {**{f"unit_{k}": v for k, v in UNITS.items()}, **attributes}.items():
            handle.attrs[key] = value
        for block in blocks:
            append_block(handle, block)
            progress(len(block))
