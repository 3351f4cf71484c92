"""The long-range benchmark's geometry and figures (bench/longrange_pairs.py, bench/bench_longrange.py) against
hand-computed values."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
#: e² / (4π ε0 · 1 Å) in eV, from the SI values of e and ε0 (CODATA 2018).
COULOMB_EV_ANGSTROM = 1.602176634e-19 / (4 * np.pi * 8.8541878128e-12 * 1e-10)
#: Standard atomic masses (u) of H and F (IUPAC).
MASS_H, MASS_F = 1.008, 18.998


bench = importlib.import_module("bench_longrange")  # bench/ is on the tests' path (pyproject.toml)
pairs = bench.longrange_pairs


def test_shape_error_of_known_series():
    # pair 0 from 6 Å: errors 1, 3 around their mean 2 -> MAE 1; pair 1: 5, 5 -> 0; the 5 Å point does not count
    pair = np.array([0, 0, 0, 1, 1])
    separation = np.array([5.0, 6.0, 8.0, 6.0, 10.0])
    error = np.array([100.0, 1.0, 3.0, 5.0, 5.0])
    assert bench.shape_error(pair, separation, error) == pytest.approx(0.5)
    # an error growing linearly, 0.1 eV/Å over 6..16 Å: mean |r - 11| = 2 (1+2+3+4+5) / 11 = 30/11 Å
    r = np.arange(6.0, 17.0)
    assert bench.shape_error(np.zeros(11, int), r, 0.1 * r) == pytest.approx(0.1 * 30 / 11)


def test_shape_error_ignores_each_pairs_offset_and_needs_a_pair():
    rng = np.random.default_rng(0)
    pair, separation = np.repeat(np.arange(4), 10), np.tile(np.arange(3.0, 13.0), 4)
    error = rng.normal(size=40)
    shifted = error + np.array([5.0, -2.0, 0.3, 9.0])[pair]
    assert bench.shape_error(pair, separation, shifted) == pytest.approx(bench.shape_error(pair, separation, error))
    assert np.isnan(bench.shape_error(pair, np.full(40, 5.0), error))


def test_range_maes_split_at_ten_angstrom():
    separation = np.array([3.0, 10.0, 10.5, 16.0])
    maes = bench.range_maes(separation, np.array([-1.0, 3.0, 0.5, -1.5]))
    assert maes == {"mae_far_eV": pytest.approx(1.0), "mae_near_eV": pytest.approx(2.0)}
    assert np.isnan(bench.range_maes(separation[:2], np.ones(2))["mae_far_eV"])


def test_place_pair_puts_centres_of_mass_at_the_separation():
    # H2 and HF; the centre of mass of HF lies m_H / (m_H + m_F) of the bond from F
    z_a, pos_a = np.array([1, 1]), np.array([[1.0, 2.0, 3.0], [1.74, 2.0, 3.0]])
    z_b, pos_b = np.array([9, 1]), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.92]])
    direction = np.array([1.0, 2.0, 2.0])  # length 3
    placed = pairs.place_pair(z_a, pos_a, z_b, pos_b, direction, np.array([3.0, 12.5]))
    assert placed.shape == (2, 4, 3)
    com_a = placed[:, :2].mean(axis=1)
    com_b = (MASS_F * placed[:, 2] + MASS_H * placed[:, 3]) / (MASS_F + MASS_H)
    np.testing.assert_allclose(com_a, 0.0, atol=1e-12)
    np.testing.assert_allclose(com_b, [[1.0, 2.0, 2.0], [12.5 / 3, 25 / 3, 25 / 3]], atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(placed[:, 3] - placed[:, 2], axis=1), 0.92)  # monomers keep shape
    np.testing.assert_allclose(np.linalg.norm(placed[:, 1] - placed[:, 0], axis=1), 0.74)


def test_closest_contact_and_point_charges():
    pos = np.array([[[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 7.0, 0.0]]])  # A = atom 0; B = atoms 1, 2
    np.testing.assert_allclose(pairs.closest_contact(pos, 1), [7.0])
    energy = pairs.point_charge_energy(np.array([1.0]), np.array([-1.0, 0.5]), pos, 1)
    np.testing.assert_allclose(energy, [COULOMB_EV_ANGSTROM * (-1 / 10 + 0.5 / 7)], rtol=1e-8)


def test_random_rotation_is_proper():
    rotation = pairs.random_rotation(np.random.default_rng(3))
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_pair_plan_covers_every_combination_before_repeating():
    plan = pairs.pair_plan(10, np.random.default_rng(0))
    kinds = [kind for kind, _, _ in plan]
    assert kinds.count("cation-anion") == kinds.count("ion-molecule") == kinds.count("molecule-molecule") == 10
    ion_pairs = {(a, b) for kind, a, b in plan if kind == "cation-anion"}
    assert len(ion_pairs) == len(pairs.CATIONS) * len(pairs.ANIONS)  # 9 combinations, then one repeat
    assert all(a in pairs.CATIONS and b in pairs.ANIONS for a, b in ion_pairs)


@pytest.mark.slow
def test_written_store_holds_pair_scans_and_monomers(tmp_path):
    """One pair of each kind with GFN2-xTB (in a subprocess, to keep tblite's OpenMP out of the test process)."""
    from tnq_data.store import open_store
    from rdkit import Chem

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(BENCH.parent)}
    subprocess.run([sys.executable, str(BENCH / "longrange_pairs.py"), str(tmp_path / "s"), "--pairs", "1",
                    "--copies", "2"], check=True, env=env, timeout=300, capture_output=True)
    store = open_store(tmp_path / "s")
    subset, smiles = store.column("subset"), store.column("smiles")
    assert sorted(set(subset)) == ["cation-anion", "ion-molecule", "molecule-molecule", "monomer"]
    offsets, conf_offsets = store.column("atom_offset"), store.column("conformer_offset")
    z, pos, sep = store.column("z"), store.column("pos").astype(np.float64), store.column("separation")
    masses = {1: 1.008, 6: 12.011, 7: 14.007, 8: 15.999, 9: 18.998, 17: 35.45}
    for m in np.flatnonzero(subset != "monomer"):
        first, second = (Chem.AddHs(Chem.MolFromSmiles(s)) for s in smiles[m].split("."))
        n_a = first.GetNumAtoms()
        formal = Chem.GetFormalCharge(first) + Chem.GetFormalCharge(second)
        for c in range(conf_offsets[m], conf_offsets[m + 1]):
            atoms = slice(offsets[c], offsets[c + 1])
            w = np.array([masses[int(k)] for k in z[atoms]])
            p = pos[atoms]
            com_a = (w[:n_a, None] * p[:n_a]).sum(0) / w[:n_a].sum()
            com_b = (w[n_a:, None] * p[n_a:]).sum(0) / w[n_a:].sum()
            assert np.linalg.norm(com_b - com_a) == pytest.approx(sep[c], abs=2e-3)
            assert store.column("total_charge")[c] == formal and store.column("multiplicity")[c] == 1
            assert store.column("fragment_atoms")[c] == n_a
        assert sep[conf_offsets[m]:conf_offsets[m + 1]].max() >= 14.0
    monomer_rows = np.isin(store.column("molecule"), np.flatnonzero(subset == "monomer"))
    assert np.isnan(sep[monomer_rows]).all() and not np.isnan(sep[~monomer_rows]).any()
