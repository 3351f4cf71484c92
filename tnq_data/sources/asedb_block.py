"""One block of ASE-database rows -> one `MoleculeBatch` in store layout, with every label checked.

Runs in-process or on a dask worker: it takes only paths, ids and `AsedbKeys` (picklable) and returns the
batch. Units are ASE's: Å, eV, eV/Å, e, stored as they are.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xxhash

from tnq_core.errors import TnqError
from tnq_data.chem import inconsistent_spin
from tnq_data.sources.asedb_rows import Row, as_value, read_rows, stored_flat
from tnq_data.sources.labels import integer_label, spin_parity_error
from tnq_data.store.format import MoleculeBatch

#: Where a row's labels are read from, in messages.
PLACE = "its data or key_value_pairs"


@dataclass(frozen=True)
class AsedbKeys:
    """Where each quantity is read from: keys of a row's calculator results, `data` or `key_value_pairs`.

    `charges` holds (key, scheme) pairs: per-atom arrays stored as ``charges/<scheme>``. `with_forces` says
    whether every row must have forces (True) or none may (False).
    """

    charge_key: str = "charge"
    spin_key: str = "spin"
    energy_key: str = "energy"
    forces_key: str = "forces"
    charges: tuple[tuple[str, str], ...] = ()
    molecule_key: str | None = None
    default_charge: int | None = None
    default_multiplicity: int | None = None
    with_forces: bool = True


def stored(row: Row, key: str):
    """The value of `key` as stored in the row's calculator results, else its `data`, else its
    `key_value_pairs`; None."""
    for source in (row.results, row.data, row.key_value_pairs):
        if key in source:
            return source[key]
    return None


def lookup(row: Row, key: str):
    """The value of `key` (`stored`), ase-JSON arrays as numpy arrays."""
    return as_value(stored(row, key))


def where(path: Path, row_id: int) -> str:
    return f"{path}: row {row_id}"


def molecule_key_hash(value) -> int:
    """A 64-bit hash of a molecule key's text (equal keys, equal hashes), for grouping rows."""
    return xxhash.xxh3_64_intdigest(str(value).encode())


def key_hashes(path: str, ids: np.ndarray, molecule_key: str) -> np.ndarray:
    """uint64 (R,): the hash of `molecule_key` of each row of `path` with these `ids`."""
    path = Path(path)
    hashes = np.empty(len(ids), dtype=np.uint64)
    for index, row in enumerate(read_rows(path, ids)):
        value = lookup(row, molecule_key)
        if value is None:
            raise TnqError(f"{where(path, row.id)} has no '{molecule_key}' in {PLACE}; add it or drop `molecule_key`")
        hashes[index] = molecule_key_hash(value)
    return hashes


def _per_atom(value, n_atoms: int, key: str, shape: tuple, at: str) -> list:
    """The values (flat list, C order) of a per-atom array stored under `key`, which must be (n_atoms, *shape)."""
    found, flat = stored_flat(value, "float64")
    if found != (n_atoms, *shape):
        raise TnqError(f"{at}: '{key}' has shape {found}, not ({n_atoms}{''.join(f', {s}' for s in shape)})"
                       " for its atoms; check the key")
    return flat


def _atoms(row: Row, at: str) -> tuple[list, list]:
    """The atomic numbers (N values) and positions (3N values, Å) of a row, as flat lists."""
    shape, z = stored_flat(row.numbers, "int64")
    if len(shape) != 1:
        raise TnqError(f"{at}: its atomic numbers have shape {shape}, not (N,); check the file")
    return z, _per_atom(row.positions, len(z), "positions", (3,), at)


class _Columns:
    """The columns of a block as flat lists, one row at a time (the only per-row work: reading values out of
    dicts and checking them); each becomes one array per block."""

    def __init__(self, keys: AsedbKeys) -> None:
        self.keys = keys
        self.z, self.pos, self.forces, self.n_atoms = [], [], [], []
        self.energy, self.charge, self.multiplicity, self.groups = [], [], [], []
        self.charges = {scheme: [] for _, scheme in keys.charges}
        # the file and id of each row, as two lists: a tuple per row would outlive the row and make the
        # garbage collector walk a block's worth of them again and again
        self.paths: list[Path] = []
        self.ids: list[int] = []

    def add(self, path: Path, row: Row) -> None:
        keys, at = self.keys, where(path, row.id)
        if any(row.pbc):
            raise TnqError(f"{at} is periodic (pbc={row.pbc}); only molecules can be imported")
        z, pos = _atoms(row, at)
        n = len(z)
        self.charge.append(integer_label(lookup(row, keys.charge_key), keys.default_charge, keys.charge_key,
                                         "`default_charge` (or name its key with `charge_key`)", at, PLACE))
        self.multiplicity.append(integer_label(lookup(row, keys.spin_key), keys.default_multiplicity, keys.spin_key,
                                               "`default_multiplicity` (or name its key with `spin_key`)", at, PLACE))
        energy = lookup(row, keys.energy_key)
        if energy is None or (type(energy) is not float and np.ndim(energy) != 0):
            raise TnqError(f"{at} has no scalar '{keys.energy_key}' in its calculator results or {PLACE};"
                           " name the energy's key with `energy_key`")
        forces = stored(row, keys.forces_key)
        if (forces is not None) != keys.with_forces:
            raise TnqError(f"{at}: forces ('{keys.forces_key}') are present in some rows and absent in others;"
                           " give every row forces or none")
        if forces is not None:
            self.forces += _per_atom(forces, n, keys.forces_key, (3,), at)
        for key, scheme in keys.charges:
            value = stored(row, key)
            if value is None:
                raise TnqError(f"{at} has no '{key}' in its calculator results or {PLACE}; drop '{key}={scheme}'"
                               " from `charges_key` or give every row the charges")
            self.charges[scheme] += _per_atom(value, n, key, (), at)
        if keys.molecule_key is not None:
            self.groups.append(lookup(row, keys.molecule_key))
        self.z += z
        self.pos += pos
        self.n_atoms.append(n)
        self.energy.append(float(energy))
        self.paths.append(path)
        self.ids.append(row.id)

    def where(self, i: int) -> str:
        """The file and id of the i-th row, for messages."""
        return where(self.paths[i], self.ids[i])

    def check_spin(self, offsets: np.ndarray, z: np.ndarray) -> None:
        """The first row whose multiplicity its electron count cannot have stops the import (whole block at once)."""
        charge, multiplicity = np.array(self.charge), np.array(self.multiplicity)
        bad = np.flatnonzero(inconsistent_spin(z, offsets, charge, multiplicity))
        if len(bad):
            i = int(bad[0])
            electrons = int(z[offsets[i]:offsets[i + 1]].sum()) - int(charge[i])
            raise spin_parity_error(self.where(i), electrons, int(charge[i]), int(multiplicity[i]),
                                    f"fix '{self.keys.charge_key}'/'{self.keys.spin_key}' (the multiplicity 2S+1)")


def _molecules(columns: _Columns, z: np.ndarray, offsets: np.ndarray) -> tuple[dict, np.ndarray]:
    """Molecule columns and conformers per molecule: one per row, or runs of equal molecule keys (the rows
    arrive grouped) whose atoms must agree."""
    names = [path.name for path in columns.paths]
    if columns.keys.molecule_key is None:
        return ({"smiles": np.full(len(names), "", dtype=object), "subset": np.array(names, dtype=object),
                 "source_id": np.array([f"{name}:{row_id}" for name, row_id in zip(names, columns.ids)], dtype=object)},
                np.ones(len(names), dtype=np.int64))
    texts = [str(group) for group in columns.groups]
    starts = np.flatnonzero([i == 0 or texts[i] != texts[i - 1] for i in range(len(texts))])
    for first, stop in zip(starts, [*starts[1:], len(texts)]):
        reference = z[offsets[first]:offsets[first + 1]]
        for i in range(first + 1, stop):
            if not np.array_equal(z[offsets[i]:offsets[i + 1]], reference):
                raise TnqError(f"{columns.where(i)}: its atoms differ from those of {columns.where(first)} with the"
                               " same molecule key; give different molecules different keys")
    molecule = {"smiles": np.full(len(starts), "", dtype=object),
                "subset": np.array([names[i] for i in starts], dtype=object),
                "source_id": np.array([texts[i] for i in starts], dtype=object)}
    return molecule, np.diff(np.append(starts, len(texts)))


def _rows_in_order(paths: tuple[str, ...], files: np.ndarray, ids: np.ndarray) -> Iterator[tuple[Path, Row]]:
    """(path, row) of the rows (`paths[files[i]]`, `ids[i]`) in this order. The rows of one file stream (a
    decoded row lives only until its values are taken, which keeps the garbage collector's work small);
    those of several files are read file by file, then put in order."""
    files_used = {int(file): Path(paths[file]) for file in np.unique(files)}
    if len(files_used) == 1:
        path = next(iter(files_used.values()))
        yield from ((path, row) for row in read_rows(path, ids))
        return
    rows: dict[tuple[int, int], Row] = {}
    for file, path in files_used.items():
        rows.update(((file, row.id), row) for row in read_rows(path, ids[files == file]))
    for file, row_id in zip(files.tolist(), ids.tolist()):
        yield files_used[file], rows.pop((file, row_id))


def read_block(paths: tuple[str, ...], files: np.ndarray, ids: np.ndarray, keys: AsedbKeys) -> MoleculeBatch:
    """The rows (`paths[files[i]]`, `ids[i]`) in this order as one batch; rows of one molecule are adjacent."""
    columns = _Columns(keys)
    for path, row in _rows_in_order(paths, files, ids):
        columns.add(path, row)
    n_atoms = np.array(columns.n_atoms, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    z = np.array(columns.z, dtype=np.int64)
    columns.check_spin(offsets, z)
    molecule, n_conformers = _molecules(columns, z, offsets)
    molecule["n_conformers"] = n_conformers
    atom = {"z": z.astype(np.uint8), "pos": _per_atom_column(columns.pos, (3,))}
    if keys.with_forces:
        atom["forces"] = _per_atom_column(columns.forces, (3,))
    for scheme, values in columns.charges.items():
        atom[f"charges/{scheme}"] = _per_atom_column(values, ())
    conformer = {"energy": np.array(columns.energy, dtype=np.float64),
                 "total_charge": np.array(columns.charge, dtype=np.int8),
                 "multiplicity": np.array(columns.multiplicity, dtype=np.int8), "n_atoms": n_atoms}
    return MoleculeBatch(molecule=molecule, conformer=conformer, atom=atom)


def _per_atom_column(flat: list, shape: tuple) -> np.ndarray:
    """float32 (atoms, *shape) from the flat float64 values of a block (rounded once, from float64)."""
    return np.fromiter(flat, dtype=np.float64, count=len(flat)).astype(np.float32).reshape(-1, *shape)
