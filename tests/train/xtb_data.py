"""Writes a store of GFN2-xTB energies and forces: the same geometries as neutral singlet, cation doublet,
anion doublet and neutral triplet. Run as a script (one OpenMP thread): `python xtb_data.py STORE N_GEOMETRIES`."""

import sys

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem
from tblite.interface import Calculator

from tnq_data.store import MoleculeBatch, write_store
from tnq_data.units import BOHR_TO_ANGSTROM, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV

SMILES = ("O", "N", "C", "CO", "C=O", "CC=O", "CCO", "CN", "C=C", "CC", "OO", "CCC", "C#C", "CCCC", "CC#N", "NC=O",
          "OC=O", "CCN", "COC", "CC(C)=O")
#: (total charge, multiplicity) of each state computed for every geometry.
STATES = ((0, 1), (1, 2), (-1, 2), (0, 3))


def geometries(smiles: str, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """z (N,) and `count` geometries (count, N, 3) Å: an MMFF minimum with Gaussian displacements of 0.08 Å."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    AllChem.MMFFOptimizeMolecule(mol)
    z = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()], np.uint8)
    base = mol.GetConformer().GetPositions()
    return z, base + rng.normal(0.0, 0.08, (count, *base.shape))


def xtb(z: np.ndarray, pos: np.ndarray, charge: int, multiplicity: int) -> tuple[float, np.ndarray]:
    """GFN2-xTB energy (eV) and forces (N, 3) eV/Å."""
    calc = Calculator("GFN2-xTB", z.astype(int), pos / BOHR_TO_ANGSTROM, charge=charge, uhf=multiplicity - 1)
    calc.set("verbosity", 0)
    result = calc.singlepoint()
    return result.get("energy") * HARTREE_TO_EV, -result.get("gradient") * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM


def molecule_batch(smiles: str, index: int, count: int, rng: np.random.Generator) -> MoleculeBatch:
    """One molecule: every geometry in every state, as conformers."""
    z, geoms = geometries(smiles, count, rng)
    rows = [(pos, q, m, *xtb(z, pos, q, m)) for pos in geoms for q, m in STATES]
    n = len(rows)
    return MoleculeBatch(
        molecule={"smiles": np.array([smiles], object), "subset": np.array(["xtb"], object),
                  "source_id": np.array([f"xtb-{index}"], object), "n_conformers": np.array([n])},
        conformer={"energy": np.array([r[3] for r in rows]), "total_charge": np.array([r[1] for r in rows], np.int8),
                   "multiplicity": np.array([r[2] for r in rows], np.int8), "n_atoms": np.full(n, len(z))},
        atom={"z": np.tile(z, n), "pos": np.concatenate([r[0] for r in rows]).astype(np.float32),
              "forces": np.concatenate([r[4] for r in rows]).astype(np.float32)},
    )


def write_xtb_store(path: str, count: int) -> str:
    """Write the store (one molecule per SMILES, small shards); returns its version."""
    rng = np.random.default_rng(0)
    batches = [molecule_batch(smiles, i, count, rng) for i, smiles in enumerate(SMILES)]
    return write_store(path, batches, shard_bytes=20_000)


if __name__ == "__main__":
    write_xtb_store(sys.argv[1], int(sys.argv[2]))
