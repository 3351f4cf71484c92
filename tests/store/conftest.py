"""Factories of in-memory molecule batches for store tests."""

import numpy as np
import pytest

from tnq_data.store import MoleculeBatch


def random_batch(seed: int, n_molecules: int, first_molecule: int = 0) -> MoleculeBatch:
    """Molecules with 1-4 conformers of 2-9 atoms each, random but valid values."""
    rng = np.random.default_rng(seed)
    n_conf = rng.integers(1, 5, n_molecules)
    atoms_per_mol = rng.integers(2, 10, n_molecules)
    n_atoms = np.repeat(atoms_per_mol, n_conf)
    C, A = int(n_conf.sum()), int(n_atoms.sum())
    ids = np.arange(first_molecule, first_molecule + n_molecules)
    charge = np.repeat(rng.integers(-1, 2, n_molecules), n_conf)
    return MoleculeBatch(
        molecule={"smiles": np.array([f"[C:1]{i}" for i in ids], object),
                  "subset": np.array(["set A" if i % 2 else "set B" for i in ids], object),
                  "source_id": np.array([f"mol-{i}" for i in ids], object), "n_conformers": n_conf},
        conformer={"energy": rng.normal(-1000, 50, C), "formation_energy": rng.normal(-5, 1, C),
                   "total_charge": charge.astype(np.int8), "multiplicity": rng.integers(1, 4, C).astype(np.int8),
                   "n_atoms": n_atoms},
        atom={"z": rng.integers(1, 10, A).astype(np.uint8), "pos": rng.normal(0, 2, (A, 3)).astype(np.float32),
              "forces": rng.normal(0, 1, (A, 3)).astype(np.float32)},
    )


@pytest.fixture
def make_batch():
    """`random_batch(seed, n_molecules, first_molecule=0)`."""
    return random_batch


@pytest.fixture
def batches() -> list[MoleculeBatch]:
    """Three batches, 40 molecules in all."""
    return [random_batch(1, 15), random_batch(2, 5, 15), random_batch(3, 20, 20)]
