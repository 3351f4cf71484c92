"""Pair scans for the long-range benchmark (issue 12): GFN2-xTB energies and forces of cation–anion, ion–molecule
and molecule–molecule pairs at centre-of-mass separations from 3 to 16 Å, plus the distorted monomers alone.

    OMP_NUM_THREADS=1 python bench/longrange_pairs.py STORE [--pairs 16] [--copies 3] [--seed 0]

Monomers are relaxed with GFN2-xTB (from an MMFF start) and displaced by Gaussian noise (`DISTORTION` Å) into
`copies` distorted copies (one for a single atom). Each pair is one store molecule, so a split by molecule is a
split by pair: one copy of each monomer, one random orientation of each and one random direction, scanned over
`SEPARATIONS`; placements with two atoms of different monomers closer than `MIN_CONTACT` are skipped. Each monomer
species is one more molecule whose conformers are its copies. Every structure is a closed-shell singlet whose total
charge is the sum of the monomers' formal charges. The molecule column `subset` names the pair kind ("monomer" for
monomers); extra conformer columns (NaN for monomers): `separation` (Å), `interaction_energy` (eV, E_pair − E_A −
E_B of the same monomer geometries), `interaction_coulomb` (eV, point-charge Coulomb energy of the isolated
monomers' GFN2 charges) and `fragment_charge` (e, GFN2 charge on the first monomer inside the pair), and
`fragment_atoms` (atoms of the first monomer, which come first; 0 for monomers). Placements whose SCF does not
converge are left out too (a few ion pairs beyond 10 Å, where GFN2 moves part of an electron between the ions).
"""

import argparse
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.data import atomic_masses
from rdkit import Chem

from tnq_data.sample_states import state_geometries
from tnq_data.store import MoleculeBatch, write_store
from tnq_data.units import BOHR_TO_ANGSTROM, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV
from tnq_data.xtb import Gfn2Error, gfn2_optimise, gfn2_singlepoint

#: Ions whose pairs GFN2-xTB keeps near integer charges out to 16 Å (0.9-1.0 e on the cation; Na+, F-, formate
#: and guanidinium pairs drop to 0.5-0.8 e and often fail to converge, a known delocalisation error of SCC methods).
CATIONS = ("[NH4+]", "C[NH2+]C", "C[N+](C)(C)C")
ANIONS = ("[Cl-]", "[O-][N+](=O)[O-]", "[O-]C(=O)C(F)(F)F")
NEUTRALS = ("O", "CO", "CC#N", "N", "NC=O")
#: Pair kinds and the monomer pools their two partners come from.
PAIR_KINDS: dict[str, tuple[Sequence[str], Sequence[str]]] = {
    "cation-anion": (CATIONS, ANIONS),
    "ion-molecule": (CATIONS + ANIONS, NEUTRALS),
    "molecule-molecule": (NEUTRALS, NEUTRALS),
}
#: Centre-of-mass separations of every pair scan, Å.
SEPARATIONS = np.arange(3.0, 16.5, 1.0)
#: Placements with two atoms of different monomers closer than this (Å) are skipped.
MIN_CONTACT = 1.8
#: Standard deviation (Å) of the Gaussian displacement of every coordinate of a distorted monomer copy.
DISTORTION = 0.04
#: Coulomb's constant in eV·Å: one hartree times one bohr.
COULOMB_EV_ANGSTROM = HARTREE_TO_EV * BOHR_TO_ANGSTROM


@dataclass
class Monomer:
    """A monomer species: atomic numbers z (N,), formal charge (e), its distorted copies (K, N, 3) Å (float32),
    their GFN2 energies (K,) eV, forces (K, N, 3) eV/Å and charges (K, N) e."""

    smiles: str
    z: np.ndarray
    charge: int
    copies: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    atom_charges: np.ndarray


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation matrix (3, 3) (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def centre_of_mass(z: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Mass-weighted mean position (..., 3) Å of pos (..., N, 3) with ASE's atomic masses of z (N,)."""
    masses = atomic_masses[np.asarray(z)]
    return np.einsum("n,...nd->...d", masses, pos) / masses.sum()


def place_pair(z_a: np.ndarray, pos_a: np.ndarray, z_b: np.ndarray, pos_b: np.ndarray, direction: np.ndarray,
               separations: np.ndarray) -> np.ndarray:
    """Positions (S, N_a + N_b, 3) Å of monomer A with its centre of mass at the origin and monomer B with its
    centre of mass at r · direction for each separation r (S,) Å; `direction` (3,) is normalised here."""
    unit = np.asarray(direction, np.float64) / np.linalg.norm(direction)
    a = pos_a - centre_of_mass(z_a, pos_a)
    b = pos_b - centre_of_mass(z_b, pos_b)
    shifted_b = b[None] + np.asarray(separations, np.float64)[:, None, None] * unit
    return np.concatenate([np.broadcast_to(a, (len(separations), *a.shape)), shifted_b], axis=1)


def closest_contact(pos: np.ndarray, n_a: int) -> np.ndarray:
    """Shortest distance (S,) Å between an atom of the first `n_a` atoms and one of the rest, per placement of
    pos (S, N, 3)."""
    gaps = pos[:, :n_a, None, :] - pos[:, None, n_a:, :]
    return np.sqrt((gaps**2).sum(-1)).min(axis=(1, 2))


def point_charge_energy(q_a: np.ndarray, q_b: np.ndarray, pos: np.ndarray, n_a: int) -> np.ndarray:
    """Coulomb energy (S,) eV between charges q_a (N_a,) on the first `n_a` atoms and q_b (N_b,) on the rest,
    for each placement of pos (S, N, 3) Å."""
    gaps = pos[:, :n_a, None, :] - pos[:, None, n_a:, :]
    return COULOMB_EV_ANGSTROM * (q_a[:, None] * q_b[None, :] / np.sqrt((gaps**2).sum(-1))).sum(axis=(1, 2))


def _singlepoint(z: np.ndarray, pos: np.ndarray, charge: int, label: str) -> tuple[float, np.ndarray, np.ndarray]:
    """GFN2 singlet energy (eV), forces (N, 3) eV/Å and charges (N,) e at pos (N, 3) Å."""
    energy, grad, charges = gfn2_singlepoint(z, np.asarray(pos, np.float64) / BOHR_TO_ANGSTROM, charge, 0, label)
    return energy * HARTREE_TO_EV, -grad * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, charges


def _converged(z: np.ndarray, pos: np.ndarray, charge: int,
               label: str) -> tuple[float, np.ndarray, np.ndarray] | None:
    """`_singlepoint`, or None where GFN2's SCF does not converge (ion pairs with partial charge transfer)."""
    try:
        return _singlepoint(z, pos, charge, label)
    except Gfn2Error:
        return None


def make_monomer(smiles: str, copies: int, rng: np.random.Generator) -> Monomer:
    """Relax `smiles` with GFN2 (singlet, its formal charge) and compute its distorted copies (one for an atom)."""
    z, start, _ = state_geometries(smiles, 1, sigma=0.0)
    charge = Chem.GetFormalCharge(Chem.MolFromSmiles(smiles))
    relaxed, _ = gfn2_optimise(z, start[0].astype(np.float64) / BOHR_TO_ANGSTROM, charge, 0, smiles)
    relaxed = relaxed * BOHR_TO_ANGSTROM
    count = 1 if len(z) == 1 else copies
    geometries = (relaxed + rng.normal(0.0, DISTORTION, (count, *relaxed.shape)) * (len(z) > 1)).astype(np.float32)
    results = [_singlepoint(z, pos, charge, f"{smiles} copy {k}") for k, pos in enumerate(geometries)]
    energy, forces, atom_charges = (np.array(part) for part in zip(*results))
    return Monomer(smiles, z, charge, geometries, energy, forces, atom_charges)


def monomer_batch(monomer: Monomer) -> MoleculeBatch:
    """A monomer species as one molecule whose conformers are its copies."""
    n, n_atoms = len(monomer.copies), len(monomer.z)
    return MoleculeBatch(
        molecule={"smiles": np.array([monomer.smiles], object), "subset": np.array(["monomer"], object),
                  "source_id": np.array([monomer.smiles], object), "n_conformers": np.array([n])},
        conformer={"energy": monomer.energy, "total_charge": np.full(n, monomer.charge, np.int8),
                   "multiplicity": np.ones(n, np.int8), "n_atoms": np.full(n, n_atoms),
                   **{name: np.full(n, np.nan) for name in
                      ("separation", "interaction_energy", "interaction_coulomb", "fragment_charge")},
                   "fragment_atoms": np.zeros(n, np.int64)},
        atom={"z": np.tile(monomer.z, n), "pos": monomer.copies.reshape(-1, 3),
              "forces": monomer.forces.reshape(-1, 3).astype(np.float32),
              "charges/gfn2": monomer.atom_charges.reshape(-1).astype(np.float32)},
    )


def pair_batch(kind: str, a: Monomer, copy_a: int, b: Monomer, copy_b: int, rng: np.random.Generator,
               name: str) -> MoleculeBatch | None:
    """The scan of one pair (random orientations and direction) over `SEPARATIONS`, as one molecule, without
    clashing placements and those whose SCF does not converge; None when none is left."""
    pos_a = a.copies[copy_a].astype(np.float64) @ random_rotation(rng).T
    pos_b = b.copies[copy_b].astype(np.float64) @ random_rotation(rng).T
    direction = rng.normal(size=3)
    placed = place_pair(a.z, pos_a, b.z, pos_b, direction, SEPARATIONS).astype(np.float32)
    n_a = len(a.z)
    keep = closest_contact(placed.astype(np.float64), n_a) >= MIN_CONTACT
    placed, separations = placed[keep], SEPARATIONS[keep]
    z, charge = np.concatenate([a.z, b.z]), a.charge + b.charge
    results = [_converged(z, pos, charge, f"{name} at {r:.1f} A") for pos, r in zip(placed, separations)]
    converged = np.array([result is not None for result in results], bool)
    if not converged.any():
        return None
    placed, separations = placed[converged], separations[converged]
    energy, forces, atom_charges = (np.array(part) for part in zip(*(r for r in results if r is not None)))
    n = len(energy)
    coulomb = point_charge_energy(a.atom_charges[copy_a], b.atom_charges[copy_b], placed.astype(np.float64), n_a)
    return MoleculeBatch(
        molecule={"smiles": np.array([f"{a.smiles}.{b.smiles}"], object), "subset": np.array([kind], object),
                  "source_id": np.array([name], object), "n_conformers": np.array([n])},
        conformer={"energy": energy, "total_charge": np.full(n, charge, np.int8), "multiplicity": np.ones(n, np.int8),
                   "n_atoms": np.full(n, len(z)), "separation": separations,
                   "interaction_energy": energy - a.energy[copy_a] - b.energy[copy_b],
                   "interaction_coulomb": coulomb, "fragment_charge": atom_charges[:, :n_a].sum(axis=1),
                   "fragment_atoms": np.full(n, n_a, np.int64)},
        atom={"z": np.tile(z, n), "pos": placed.reshape(-1, 3), "forces": forces.reshape(-1, 3).astype(np.float32),
              "charges/gfn2": atom_charges.reshape(-1).astype(np.float32)},
    )


def pair_plan(n_pairs: int, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(kind, smiles A, smiles B) of `n_pairs` pairs of each kind: every combination of the kind's pools once (in a
    random order) before any repeats; molecule–molecule pairs are unordered."""
    plan = []
    for kind, (pool_a, pool_b) in PAIR_KINDS.items():
        combos = sorted({tuple(sorted(c)) if pool_a is pool_b else c for c in itertools.product(pool_a, pool_b)})
        order = np.concatenate([rng.permutation(len(combos)) for _ in range(-(-n_pairs // len(combos)))])
        plan += [(kind, *combos[i]) for i in order[:n_pairs]]
    return plan


def pair_batches(n_pairs: int, copies: int, seed: int) -> Iterator[MoleculeBatch]:
    """The monomers, then `n_pairs` pair scans of each kind; the same arguments give the same structures."""
    rng = np.random.default_rng(seed)
    monomers = {s: make_monomer(s, copies, rng) for s in dict.fromkeys(CATIONS + ANIONS + NEUTRALS)}
    yield from (monomer_batch(m) for m in monomers.values())
    for k, (kind, smiles_a, smiles_b) in enumerate(pair_plan(n_pairs, rng)):
        a, b = monomers[smiles_a], monomers[smiles_b]
        copy_a, copy_b = int(rng.integers(len(a.copies))), int(rng.integers(len(b.copies)))
        batch = pair_batch(kind, a, copy_a, b, copy_b, rng, f"pair{k:03d} {kind} {smiles_a}.{smiles_b}")
        if batch is not None:
            yield batch


def write_pairs_store(path: Path | str, n_pairs: int = 16, copies: int = 3, seed: int = 0) -> str:
    """Write the long-range benchmark store (module docstring) and return its version."""
    return write_store(path, pair_batches(n_pairs, copies, seed), shard_bytes=200_000,
                       provenance={"command": "bench/longrange_pairs.py",
                                   "parameters": {"n_pairs": n_pairs, "copies": copies, "seed": seed,
                                                  "separations": SEPARATIONS.tolist(), "min_contact": MIN_CONTACT,
                                                  "distortion": DISTORTION}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", help="store directory to write")
    parser.add_argument("--pairs", type=int, default=16, help="pairs of each kind")
    parser.add_argument("--copies", type=int, default=3, help="distorted copies of each monomer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_pairs_store(args.store, args.pairs, args.copies, args.seed))


if __name__ == "__main__":
    main()
