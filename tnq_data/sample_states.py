"""A multi-state GFN2-xTB store: the same geometries of each molecule in several (total charge, multiplicity) states.

Geometries come from RDKit (ETKDG, MMFF minimum) with Gaussian displacements; energies and forces from GFN2-xTB
(tblite, one OpenMP thread, so bitwise reproducible). A molecule's geometries depend only on its SMILES, the
count and the seed, so a store of some (molecule, state) pairs holds exactly the geometries of the full store:
`exclude` leaves pairs out of a training store and `only` writes just those pairs for a held-out check.
"""

import zlib
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import numpy as np
from rdkit.Chem import AllChem

from tnq_core.errors import TnqError
from tnq_data.sample_conformers import mapped_molecule
from tnq_data.store import MoleculeBatch, write_store
from tnq_data.units import BOHR_TO_ANGSTROM, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV
from tnq_data.xtb import gfn2_singlepoint

__all__ = ["STATES", "STATE_SMILES", "state_geometries", "write_states_store"]

#: (total charge e, multiplicity 2S+1): neutral singlet, cation doublet, anion doublet, neutral triplet.
STATES: tuple[tuple[int, int], ...] = ((0, 1), (1, 2), (-1, 2), (0, 3))
#: Small neutral closed-shell molecules (H, C, N, O, F; 2-7 heavy atoms) for which GFN2-xTB converges in
#: every state of `STATES` on 10 displaced geometries for seeds 0, 1 and 2 (11,280 calculations, none failed).
#: The first 40 are the set of the first multi-state benchmarks; new molecules go at the end.
STATE_SMILES: tuple[str, ...] = (
    "CCO", "CC(C)O", "CCCO", "CC(C)=O", "CC(=O)O", "CC(=O)N", "COC=O", "CC(=O)OC", "C1CC1", "C1CCC1", "C1CCOC1",
    "C1CCNC1", "c1ccccc1", "c1ccncc1", "c1ccoc1", "c1cc[nH]c1", "Cc1ccccc1", "Oc1ccccc1", "Nc1ccccc1", "Fc1ccccc1",
    "CF", "FC(F)F", "CC(F)(F)F", "OCC(F)(F)F", "CC#N", "C=CC=C", "C=CC=O", "CC=CC", "CCOC", "CN(C)C", "NCCO",
    "OCCO", "NC(=O)N", "CNC=O", "O=C1CCCC1", "CC#C", "CC(C)(C)O", "NCC(=O)O", "CC(N)C(=O)O", "FC=C",
    "CO", "CN", "C=O", "CC", "C=C", "CCC", "CCCC", "CC(C)C", "C1CCCCC1", "CCN", "CCCN", "CC(C)N", "CNC", "COC",
    "CCOCC", "OC=O", "CC=O", "CCC=O", "CCC(C)=O", "CC(=O)C(C)=O", "NC=O", "CC(=O)NC", "CN(C)C=O", "C1COCCO1",
    "C1CCOCC1", "C1CCNCC1", "C1CNCCN1", "O=C1CCCN1", "c1cncnc1", "c1cnccn1", "c1cocn1", "c1cn[nH]c1", "c1c[nH]cn1",
    "Cc1ccco1", "Cc1ccncc1", "Fc1ccncc1", "FCF", "FCCF", "CCF", "OCC(O)CO", "CC(O)C(=O)O", "OCC(=O)O",
    "NCC(N)=O", "C#N", "CC(C)C#N", "C=CC#N", "C=CC(=O)O", "C=CCO", "C=CCN", "C=COC", "CCC#C", "CCOC(C)=O",
    "NC(=O)C=C", "CC(=O)C=C",
)
#: Standard deviation (Å) of the Gaussian displacement of every coordinate from the MMFF minimum: about 1 eV of
#: GFN2 strain for these molecules (0.08 Å gives about 2.4 eV, with rare outliers above 10 eV).
DISPLACEMENT = 0.05

Pair = tuple[str, tuple[int, int]]


def state_geometries(smiles: str, count: int, seed: int = 0,
                     sigma: float = DISPLACEMENT) -> tuple[np.ndarray, np.ndarray, str]:
    """z (N,), `count` geometries (count, N, 3) in Å (float32) and the atom-mapped SMILES of one molecule.

    An MMFF minimum (UFF where MMFF lacks parameters) displaced by Gaussian noise of `sigma` Å per coordinate;
    the result depends only on (`smiles`, `count`, `seed`, `sigma`).
    """
    mol, mapped = mapped_molecule(smiles)
    key = zlib.crc32(smiles.encode())
    params = AllChem.ETKDGv3()
    params.randomSeed = (seed * 7919 + key) % 2**31
    params.numThreads = 1
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise TnqError(f"RDKit could not embed {smiles!r}; try another seed or drop the molecule")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=1000)
    else:
        AllChem.UFFOptimizeMolecule(mol, maxIters=1000)
    z = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()], np.uint8)
    base = mol.GetConformer().GetPositions()
    noise = np.random.default_rng([seed, key]).normal(0.0, sigma, (count, *base.shape))
    return z, (base + noise).astype(np.float32), mapped


def _molecule(smiles: str, states: Sequence[tuple[int, int]], count: int, seed: int,
              sigma: float) -> MoleculeBatch:
    """Every geometry of `smiles` in each of `states` (geometry-major), as conformers of one molecule."""
    z, geometries, mapped = state_geometries(smiles, count, seed, sigma)
    energy, forces, charge, mult = [], [], [], []
    for k, pos in enumerate(geometries):
        for q, m in states:
            e, grad, _ = gfn2_singlepoint(z, pos.astype(np.float64) / BOHR_TO_ANGSTROM, q, m - 1,
                                          f"{smiles} geometry {k}")
            energy.append(e * HARTREE_TO_EV)
            forces.append(-grad * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM)
            charge.append(q)
            mult.append(m)
    n = len(energy)
    return MoleculeBatch(
        molecule={"smiles": np.array([mapped], object), "subset": np.array(["gfn2-states"], object),
                  "source_id": np.array([smiles], object), "n_conformers": np.array([n])},
        conformer={"energy": np.array(energy), "total_charge": np.array(charge, np.int8),
                   "multiplicity": np.array(mult, np.int8), "n_atoms": np.full(n, len(z))},
        atom={"z": np.tile(z, n), "pos": np.repeat(geometries, len(states), axis=0).reshape(-1, 3),
              "forces": np.concatenate(forces).astype(np.float32)},
    )


def write_states_store(path: Path | str, smiles: Sequence[str], n_geometries: int,
                       states: Sequence[tuple[int, int]] = STATES, seed: int = 0, *,
                       exclude: Collection[Pair] = (), only: Collection[Pair] | None = None,
                       sigma: float = DISPLACEMENT, shard_bytes: int = 200_000) -> str:
    """Write one molecule per SMILES (in order) with `n_geometries` geometries in each of `states`; return the version.

    `exclude` lists (SMILES, (charge, multiplicity)) pairs to leave out; with `only`, just those pairs are
    written. Molecules left with no state are skipped. Energies in eV, forces in eV/Å, positions in Å.
    The same arguments give the same store version.
    """
    if n_geometries < 1:
        raise TnqError(f"n_geometries must be at least 1, got {n_geometries}")
    excluded = {(s, tuple(st)) for s, st in exclude}
    kept = None if only is None else {(s, tuple(st)) for s, st in only}
    wanted = {s: [st for st in map(tuple, states) if (s, st) not in excluded and (kept is None or (s, st) in kept)]
              for s in smiles}

    def batches() -> Iterator[MoleculeBatch]:
        for s in smiles:
            if wanted[s]:
                yield _molecule(s, wanted[s], n_geometries, seed, sigma)

    return write_store(path, batches(), shard_bytes=shard_bytes,
                       provenance={"command": "tnq_data.sample_states.write_states_store",
                                   "parameters": {"n_geometries": n_geometries, "states": [list(s) for s in states],
                                                  "seed": seed, "sigma": sigma, "n_molecules": len(smiles)}})
