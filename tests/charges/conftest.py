"""Small real stores for the charges tests: RDKit-embedded molecules written with `write_store`."""

from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from tnq_data.store import MoleculeBatch, write_store


def embedded(smiles: str, n_conformers: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers (N,) in the SMILES' store order and RDKit geometries (n_conformers, N, 3) in Å."""
    mol = in_store_order(smiles)
    ids = AllChem.EmbedMultipleConfs(mol, numConfs=n_conformers, randomSeed=seed)
    if len(ids) != n_conformers:
        raise RuntimeError(f"RDKit could not embed {smiles}")
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.uint8)
    return z, np.stack([mol.GetConformer(i).GetPositions() for i in ids]).astype(np.float32)


def in_store_order(smiles: str) -> Chem.Mol:
    """The molecule of `smiles` with explicit hydrogens, atoms in map order (mapped) or RDKit order."""
    mol = Chem.MolFromSmiles(smiles)
    if not any(atom.GetAtomMapNum() for atom in mol.GetAtoms()):
        return Chem.AddHs(mol)
    params = Chem.SmilesParserParams()
    params.removeHs = False
    mol = Chem.MolFromSmiles(smiles, params)
    return Chem.RenumberAtoms(mol, np.argsort([a.GetAtomMapNum() for a in mol.GetAtoms()]).tolist())


def make_store(path: Path, molecules: list[tuple[str, int, int, int]]) -> Path:
    """Write a store at `path` holding `molecules` (SMILES, total charge, multiplicity, conformers)."""
    records = []
    for smiles, total_charge, multiplicity, count in molecules:
        z, positions = embedded(smiles, count)
        records.append((smiles, z, positions, total_charge, multiplicity))
    return write_molecules(path, records)


def write_molecules(path: Path, records: list[tuple[str, np.ndarray, np.ndarray, int, int]]) -> Path:
    """Write a store of records (SMILES, z (N,), positions (C, N, 3) Å, total charge, multiplicity)."""
    n_conf = np.array([len(r[2]) for r in records], dtype=np.int64)
    conformer = lambda i: np.repeat([r[i] for r in records], n_conf)  # noqa: E731
    batch = MoleculeBatch(
        molecule={"smiles": np.array([r[0] for r in records], dtype=object),
                  "subset": np.array(["test"] * len(records), dtype=object),
                  "source_id": np.array([f"mol{i}" for i in range(len(records))], dtype=object),
                  "n_conformers": n_conf},
        conformer={"energy": np.zeros(n_conf.sum()), "total_charge": conformer(3).astype(np.int8),
                   "multiplicity": conformer(4).astype(np.int8),
                   "n_atoms": np.repeat([len(r[1]) for r in records], n_conf).astype(np.int64)},
        atom={"z": np.concatenate([np.tile(r[1], len(r[2])) for r in records]).astype(np.uint8),
              "pos": np.concatenate([r[2].reshape(-1, 3) for r in records]).astype(np.float32)},
    )
    write_store(path, [batch], provenance={"command": "test", "parameters": {}, "inputs": []})
    return path


@pytest.fixture
def embed():
    """`embedded(smiles, n_conformers, seed=7)`."""
    return embedded


@pytest.fixture(scope="session")
def store_factory():
    """`make_store(path, molecules)` and `write_molecules(path, records)`."""
    return make_store, write_molecules


@pytest.fixture(scope="session")
def entry_files():
    """`entry_files(directory)`: the cache entry files under `directory`, sorted."""
    return lambda directory: sorted(Path(directory).rglob("*.q"))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """An empty charge cache."""
    return tmp_path / "cache"
