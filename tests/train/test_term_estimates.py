"""The physical terms' energies estimated before training (tnq_model/term_estimates.py): ZBL exactly and Coulomb
with the total charge spread evenly, checked against point charges in numpy (k_e from SI constants), chunking
that never changes a result, and references that come out exact once the estimate is subtracted."""

import math

import numpy as np
import pytest

from tnq_model import term_estimates
from tnq_model.nn.physics import PhysicalTerms
from tnq_model.references import fit_references
from tnq_model.term_estimates import estimated_term_energies

#: e / (4 pi eps0) in eV Å from SI values (CODATA 2018).
KE = 1.602176634e-19 / (4 * math.pi * 8.8541878128e-12) * 1e10


def sparse_molecules(rng, n_molecules: int, spacing: float = 4.0):
    """Molecules of 2-6 atoms on a line `spacing` Å apart (beyond the Coulomb damping and ZBL at cutoff 4 Å),
    random elements H, C, O and total charges -2..2: (z, pos, atom_offset, total_charge)."""
    n_atoms = rng.integers(2, 7, n_molecules)
    z = rng.choice([1, 6, 8], n_atoms.sum())
    pos = np.concatenate([np.stack([spacing * np.arange(n), rng.normal(0, 0.1, n), np.zeros(n)], 1)
                          for n in n_atoms])
    return z, pos, np.concatenate([[0], np.cumsum(n_atoms)]), rng.integers(-2, 3, n_molecules)


def point_charge_energy(pos: np.ndarray, offsets: np.ndarray, total_charge: np.ndarray) -> np.ndarray:
    """(C,) k_e sum_{i<j} q_i q_j / r_ij with q = Q/N on every atom, per molecule."""
    energy = []
    for lo, hi, charge in zip(offsets[:-1], offsets[1:], total_charge):
        r = np.linalg.norm(pos[lo:hi, None] - pos[None, lo:hi], axis=-1)
        q = charge / (hi - lo)
        energy.append(KE * q * q * (1 / r[np.triu_indices(hi - lo, 1)]).sum())
    return np.array(energy)


def test_coulomb_estimate_is_evenly_spread_point_charges():
    z, pos, offsets, charge = sparse_molecules(np.random.default_rng(0), 30)
    terms = PhysicalTerms(["coulomb", "zbl"], channels=8, cutoff=4.0)
    got = estimated_term_energies(terms, z, pos, offsets, charge)
    np.testing.assert_allclose(got, point_charge_energy(pos, offsets, charge), rtol=1e-6, atol=1e-12)
    assert (got[charge != 0] > 0).all() and (got[charge == 0] == 0).all()
    assert not estimated_term_energies(PhysicalTerms([], 8, 4.0), z, pos, offsets, charge).any()


def test_chunks_do_not_change_the_estimate(monkeypatch):
    rng = np.random.default_rng(1)
    z, pos, offsets, charge = sparse_molecules(rng, 25, spacing=0.9)  # compact: ZBL and damping both act
    terms = PhysicalTerms(["coulomb", "zbl"], channels=8, cutoff=4.0)
    whole = estimated_term_energies(terms, z, pos, offsets, charge)
    monkeypatch.setattr(term_estimates, "PAIRS_PER_CHUNK", 7)
    np.testing.assert_allclose(estimated_term_energies(terms, z, pos, offsets, charge), whole, rtol=1e-12, atol=0)
    assert (whole > 0).all()  # ZBL at 0.9 Å dominates


def test_references_are_exact_once_the_estimate_is_subtracted():
    rng = np.random.default_rng(2)
    z, pos, offsets, charge = sparse_molecules(rng, 60)
    refs = {1: -13.6, 6: -1029.0, 8: -2041.0}
    per_atom = np.vectorize(refs.get)(z).astype(float)
    energy = np.add.reduceat(per_atom, offsets[:-1]) + point_charge_energy(pos, offsets, charge)
    terms = PhysicalTerms(["coulomb"], channels=8, cutoff=4.0)
    estimate = estimated_term_energies(terms, z, pos, offsets, charge)
    multiplicity = np.ones(len(charge), int)
    fitted = fit_references(z, offsets, energy - estimate, 10, "element", charge, multiplicity)
    np.testing.assert_allclose(fitted.atom_refs[[1, 6, 8]], [refs[1], refs[6], refs[8]], rtol=0, atol=1e-6)
    plain = fit_references(z, offsets, energy, 10, "element", charge, multiplicity)
    assert np.abs(plain.atom_refs[[1, 6, 8]] - [refs[1], refs[6], refs[8]]).max() > 1e-3
