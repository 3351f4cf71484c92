"""Stores for the training tests: random ones written by each test, and a session-wide GFN2-xTB store."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tnq_data.store import MoleculeBatch, write_store

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def random_molecules(seed: int, n_molecules: int, forces: bool = True, charges: str | None = None) -> MoleculeBatch:
    """Molecules of 2-7 atoms (H, C, N, O) with 1-4 conformers; random states, energies and forces."""
    rng = np.random.default_rng(seed)
    n_conf = rng.integers(1, 5, n_molecules)
    n_atoms = np.repeat(rng.integers(2, 8, n_molecules), n_conf)
    n_c, n_a = int(n_conf.sum()), int(n_atoms.sum())
    atom = {"z": rng.choice(np.array([1, 6, 7, 8], np.uint8), n_a), "pos": rng.normal(0, 1.5, (n_a, 3)).astype(np.float32)}
    if forces:
        atom["forces"] = rng.normal(0, 1, (n_a, 3)).astype(np.float32)
    if charges:
        atom[f"charges/{charges}"] = rng.normal(0, 0.3, n_a).astype(np.float32)
    names = np.array([f"m{seed}-{i}" for i in range(n_molecules)], object)
    return MoleculeBatch(
        molecule={"smiles": names, "subset": names, "source_id": names, "n_conformers": n_conf},
        conformer={"energy": rng.normal(-100, 5, n_c), "total_charge": rng.integers(-1, 2, n_c).astype(np.int8),
                   "multiplicity": rng.integers(1, 4, n_c).astype(np.int8), "n_atoms": n_atoms},
        atom=atom,
    )


@pytest.fixture
def make_store(tmp_path):
    """`make_store(n_molecules, seed=0, shard_bytes=4000, forces=True, charges=None)` -> path of a new store."""
    def make(n_molecules: int, seed: int = 0, shard_bytes: int = 4000, forces: bool = True,
             charges: str | None = None, name: str = "store") -> Path:
        path = tmp_path / name
        write_store(path, [random_molecules(seed, n_molecules, forces, charges)], shard_bytes=shard_bytes)
        return path
    return make


@pytest.fixture(scope="session")
def xtb_store(tmp_path_factory) -> Path:
    """20 small molecules x 6 geometries x 4 states (neutral singlet, cation, anion, neutral triplet), GFN2-xTB.

    Written by xtb_data.py (`tnq_data.sample_states`) in a subprocess, so tblite's OpenMP runtime stays out of
    the test process.
    """
    path = tmp_path_factory.mktemp("xtb") / "store"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, str(HERE / "xtb_data.py"), str(path), "6"], check=True, env=env, timeout=300)
    return path


@pytest.fixture
def molecules():
    """`random_molecules(seed, n_molecules, forces=True, charges=None)` -> MoleculeBatch."""
    return random_molecules
