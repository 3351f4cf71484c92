"""Shared fixtures of the model tests: RDKit-embedded molecules and small float64 models."""

from typing import Callable

import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from tnq_model import TensorNet

SMILES = ("CCO", "c1ccccc1C(=O)[O-]", "CC(C)N")


def embed(smiles: str, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Atomic numbers (N,) and float64 positions (N, 3) in Å of an RDKit conformer with hydrogens."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    z = torch.tensor([atom.GetAtomicNum() for atom in mol.GetAtoms()])
    pos = torch.tensor(mol.GetConformer().GetPositions(), dtype=torch.float64)
    return z, pos


def concatenate(molecules: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """z (N,), pos (N, 3) and batch (N,) of several molecules."""
    z = torch.cat([m[0] for m in molecules])
    pos = torch.cat([m[1] for m in molecules])
    batch = torch.cat([torch.full((len(m[0]),), b) for b, m in enumerate(molecules)])
    return z, pos, batch


@pytest.fixture(scope="session")
def molecules() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The molecules of SMILES, each as z (N,) and pos (N, 3)."""
    return [embed(smiles) for smiles in SMILES]


@pytest.fixture(scope="session")
def batched(molecules) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All molecules as one batch: z (N,), pos (N, 3), batch (N,)."""
    return concatenate(molecules)


@pytest.fixture
def make_model() -> Callable[..., TensorNet]:
    """Small float64 TensorNet with a fixed seed; keyword arguments override the defaults."""

    def make(**kwargs) -> TensorNet:
        torch.manual_seed(0)
        options = dict(hidden_channels=16, num_layers=2, num_rbf=8, cutoff=4.0, max_z=20, dtype=torch.float64)
        options.update(kwargs)
        return TensorNet(**options)

    return make


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the test machine is shared, and more threads only spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
