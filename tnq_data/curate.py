"""Curation building blocks shared by every source: drop counts by reason, conformer filters, batching, input
provenance."""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tnq_core.hashing import file_checksum
from tnq_data.store.format import MoleculeBatch

#: Drop reasons in the order they are checked, with what each means (shown by `docs/sources.md`).
REASONS = {
    "subset": "subset name does not match --subset",
    "missing_dataset": "a required dataset is absent",
    "bad_shape": "arrays are not (M,N,3) / (M,) for the N atoms of the molecule",
    "smiles": "RDKit cannot parse the SMILES, or its atoms differ from atomic_numbers",
    "elements": "an element outside --elements",
    "spin": "multiplicity impossible for the electron count (parity or range)",
    "non_finite": "NaN or inf in positions, energies or forces",
    "max_force": "largest per-atom force norm above --max-force",
}


@dataclass
class DropCounts:
    """Molecules and conformers dropped per reason, and kept.

    A molecule is counted under the reason that removed its last conformer; conformers are counted under the
    first reason that removes them.
    """

    molecules: dict[str, int] = field(default_factory=dict)
    conformers: dict[str, int] = field(default_factory=dict)
    kept_molecules: int = 0
    kept_conformers: int = 0

    def drop_molecule(self, reason: str, n_conformers: int) -> None:
        """Count a whole molecule of `n_conformers` conformers dropped for `reason`."""
        self.molecules[reason] = self.molecules.get(reason, 0) + 1
        self.conformers[reason] = self.conformers.get(reason, 0) + n_conformers

    def keep(self, n_conformers: int) -> None:
        """Count one kept molecule with `n_conformers` kept conformers."""
        self.kept_molecules += 1
        self.kept_conformers += n_conformers

    def filter_conformers(self, checks: Iterable[tuple[str, np.ndarray]]) -> np.ndarray:
        """Apply conformer checks in order and count the drops; returns the keep mask (M,).

        `checks` holds at least one (reason, bad) pair, `bad` bool (M,), all of the same length.
        """
        checks = list(checks)
        keep = np.ones(len(checks[0][1]), dtype=bool)
        last_reason = ""
        for reason, bad in checks:
            newly = bad & keep
            n = int(newly.sum())
            if n:
                self.conformers[reason] = self.conformers.get(reason, 0) + n
                keep &= ~bad
                last_reason = reason
        if not keep.any():
            self.molecules[last_reason] = self.molecules.get(last_reason, 0) + 1
        return keep

    def merge(self, other: "DropCounts") -> None:
        """Add the counts of `other` to these."""
        for mine, theirs in ((self.molecules, other.molecules), (self.conformers, other.conformers)):
            for reason, n in theirs.items():
                mine[reason] = mine.get(reason, 0) + n
        self.kept_molecules += other.kept_molecules
        self.kept_conformers += other.kept_conformers

    def rows(self) -> list[dict[str, Any]]:
        """The `curation` table: one row per reason with drops (in `REASONS` order, others after), then ``kept``."""
        reasons = [r for r in REASONS if r in self.conformers] + sorted(set(self.conformers) - set(REASONS))
        rows = [{"reason": r, "molecules": self.molecules.get(r, 0), "conformers": self.conformers[r]} for r in reasons]
        return rows + [{"reason": "kept", "molecules": self.kept_molecules, "conformers": self.kept_conformers}]


def non_finite(*arrays: np.ndarray) -> np.ndarray:
    """Per conformer, whether any value is NaN/inf in arrays whose leading axis is the conformer (M, ...)."""
    bad = np.zeros(len(arrays[0]), dtype=bool)
    for array in arrays:
        bad |= ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    return bad


def max_force_norm(forces: np.ndarray) -> np.ndarray:
    """Largest per-atom force norm of each conformer: forces (M,N,3) -> (M,), same unit."""
    return np.sqrt(np.einsum("mni,mni->mn", forces, forces)).max(axis=1)


@dataclass
class MoleculeRecord:
    """One molecule's columns before batching: molecule scalars, conformer arrays (M,), atom arrays (M,N,...)."""

    molecule: dict[str, Any]
    conformer: dict[str, np.ndarray]
    atom: dict[str, np.ndarray]


def to_batch(records: list[MoleculeRecord]) -> MoleculeBatch:
    """Concatenate molecule records (all with the same columns) into one `MoleculeBatch` in store layout."""
    first = records[0]
    n_conf = np.array([len(r.conformer["energy"]) for r in records], dtype=np.int64)
    n_atoms_per_mol = np.array([r.atom["z"].shape[1] for r in records], dtype=np.int64)
    molecule = {name: np.array([r.molecule[name] for r in records], dtype=object) for name in first.molecule}
    molecule["n_conformers"] = n_conf
    conformer = {name: np.concatenate([r.conformer[name] for r in records]) for name in first.conformer}
    conformer["n_atoms"] = np.repeat(n_atoms_per_mol, n_conf)
    atom = {name: np.concatenate([r.atom[name].reshape(-1, *r.atom[name].shape[2:]) for r in records])
            for name in first.atom}
    return MoleculeBatch(molecule=molecule, conformer=conformer, atom=atom)


def file_input(path: Path) -> dict[str, Any]:
    """Provenance entry of an input file: its name (no directory), sha256 and size in bytes."""
    return {"name": path.name, "sha256": file_checksum(path), "bytes": path.stat().st_size}


def folder_input(folder: Path) -> dict[str, Any]:
    """Provenance entry of an input folder: its name, a sha256 over its files' relative paths and digests, bytes."""
    digest = hashlib.sha256()
    total = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_checksum(path)}\n".encode())
        total += path.stat().st_size
    return {"name": folder.name, "sha256": digest.hexdigest(), "bytes": total}
