"""ASE databases as fairchem reads them: `.aselmdb` (ase-db-backends, the format of OMol25) or SQLite `.db`.

One row per conformer: positions (Å) and atomic numbers; energy (eV) and forces (eV/Å) as the calculator's
results (what `atoms.get_potential_energy()`/`get_forces()` return); in `data`, `charge` (e) and `spin` (the
multiplicity 2S+1), which fairchem's `AseDBDataset` copies into `atoms.info`, and per-atom charges
`charges/<scheme>` as `<scheme>_charges` (e); in `key_value_pairs` (searchable with `ase db`), the
molecule's `source_id` and `subset`.
"""

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tnq_data.export.selection import Block

#: Database kinds by file suffix.
LMDB_SUFFIXES = (".aselmdb", ".lmdb")
SQLITE_SUFFIXES = (".db",)
SUFFIXES = LMDB_SUFFIXES + SQLITE_SUFFIXES


class IndexedIds(list):
    """A list of row ids with a set beside it: ase-db-backends looks each new id up in `db.ids` (a list scan,
    so writing R rows took O(R^2) time); the same list, with O(1) membership."""

    def __init__(self, ids) -> None:
        super().__init__(ids)
        self._members = set(ids)

    def append(self, idx) -> None:
        super().append(idx)
        self._members.add(idx)

    def __contains__(self, idx) -> bool:
        return idx in self._members


def connect(path: Path, suffix: str):
    """A new database at `path` of the kind `suffix` names (ase-db-backends LMDB, or ase's SQLite)."""
    if suffix in LMDB_SUFFIXES:
        from ase_db_backends.aselmdb import LMDBDatabase

        db = LMDBDatabase(path, use_lock_file=False)
        db.ids = IndexedIds(db.ids)
        return db
    import ase.db

    return ase.db.connect(path, type="db", append=False, use_lock_file=False)


def write_rows(db, block: Block) -> None:
    """One row per conformer of `block`, in order. Rows are handed to ase as `AtomsRow`s built from their
    values (what ase makes of an `Atoms` with a single-point calculator, without its per-row state checks)."""
    from ase.db.core import now
    from ase.db.row import AtomsRow

    made = {"ctime": now(), "user": os.getenv("USER")}  # what ase records for a row written from Atoms
    offsets = block.atom_offset.tolist()
    for i in range(len(block)):
        atoms_of = slice(offsets[i], offsets[i + 1])
        row = {"numbers": block.z[atoms_of].astype(np.int64), "positions": block.pos[atoms_of].astype(np.float64),
               "cell": np.zeros((3, 3)), "pbc": np.zeros(3, dtype=bool), "unique_id": uuid.uuid4().hex,
               "calculator": "unknown", "calculator_parameters": {}, "energy": float(block.energy[i]), **made}
        if block.forces is not None:
            row["forces"] = block.forces[atoms_of].astype(np.float64)
        data = {"charge": int(block.total_charge[i]), "spin": int(block.multiplicity[i])}
        data.update({f"{scheme}_charges": values[atoms_of].astype(np.float64)
                     for scheme, values in sorted(block.charges.items())})
        labels = {key: str(values[i]) for key, values in (("source_id", block.source_id), ("subset", block.subset))
                  if values[i]}
        db.write(AtomsRow(row), key_value_pairs=labels, data=data)


def write_asedb(blocks: Iterable[Block], path: Path, suffix: str, progress) -> None:
    """Write every block into a new database at `path`, in one transaction; `progress(n)` after each block."""
    db = connect(path, suffix)
    with db:
        for block in blocks:
            write_rows(db, block)
            progress(len(block))
