"""The schemes as pure functions on real molecules: sums, open shells, recorded failures."""

import numpy as np
import pytest

from tnq_data.charges.am1bcc import Am1Bcc
from tnq_data.charges.base import SUM_TOLERANCE, ChargeFailure, ChargeUnit, conserve_charge
from tnq_data.charges.formal import Formal
from tnq_data.charges.gasteiger import Gasteiger
from tnq_data.charges.gfn2 import Gfn2
from tnq_data.charges.mmff94 import Mmff94

ETHANOL = "[C:1]([C:2]([O:3][H:9])([H:7])[H:8])([H:4])([H:5])[H:6]"
CLOSED_SHELL = [(ETHANOL, 0), ("CC(=O)[O-]", -1), ("[NH4+]", 1)]
OPEN_SHELL = [("[CH3]", 0, 2), ("[CH2]", 0, 3), ("[H:3][C:1]#[C:2][H:4].[Na+:5]", 1, 1)]


@pytest.fixture
def unit(embed):
    """`unit(smiles, total_charge, multiplicity, geometry=False)`: a ChargeUnit of an embedded molecule."""
    def make(smiles: str, total_charge: int, multiplicity: int, geometry: bool = False) -> ChargeUnit:
        z, positions = embed(smiles, 1)
        return ChargeUnit(smiles, z, total_charge, multiplicity, positions[0] if geometry else None)
    return make


@pytest.mark.parametrize("scheme", [Am1Bcc(), Gasteiger(), Mmff94()], ids=lambda s: s.name)
@pytest.mark.parametrize("smiles,total_charge", CLOSED_SHELL)
def test_topological_schemes_conserve_the_total_charge(scheme, smiles, total_charge, unit):
    u = unit(smiles, total_charge, 1)
    q = scheme.compute(u)
    assert q.shape == u.z.shape
    assert abs(q.sum() - total_charge) < SUM_TOLERANCE
    assert np.ptp(q) > 0.1  # real, polarised charges, not a uniform spread


def test_formal_charges_sit_on_the_charged_atoms(unit):
    acetate = unit("CC(=O)[O-]", -1, 1)
    q = Formal().compute(acetate)
    assert q.tolist() == [0, 0, 0, -1, 0, 0, 0]


def test_am1bcc_follows_the_store_atom_order(unit):
    u = unit(ETHANOL, 0, 1)
    q, z = Am1Bcc().compute(u), u.z
    assert q[z == 8][0] < -0.5 and q[(z == 1)].max() > 0.3  # O negative, hydroxyl H positive (map 9)
    assert np.argmax(q) == 8


def test_am1bcc_per_conformer_uses_the_stored_geometry(embed):
    smiles = "CC(=O)[O-]"
    z, positions = embed(smiles, 2)
    scheme = Am1Bcc()
    on_geometry = [scheme.compute(ChargeUnit(smiles, z, -1, 1, p)) for p in positions]
    from_smiles = scheme.compute(ChargeUnit(smiles, z, -1, 1))
    for q in on_geometry:
        assert abs(q.sum() + 1) < SUM_TOLERANCE
        assert not np.allclose(q, from_smiles, atol=1e-4)


@pytest.mark.parametrize("smiles,multiplicity,reason", [
    ("[CH3]", 2, "closed-shell singlet"),
    ("[H:3][C:1]#[C:2][H:4].[Na+:5]", 1, "no parameters for atomic numbers [11]"),
])
def test_am1bcc_failures_are_recorded_not_raised(smiles, multiplicity, reason, unit):
    total_charge = 1 if "Na" in smiles else 0
    [result] = Am1Bcc().compute_many([unit(smiles, total_charge, multiplicity)])
    assert isinstance(result, ChargeFailure) and reason in str(result)


@pytest.mark.parametrize("smiles,total_charge,multiplicity", [(s, q, 1) for s, q in CLOSED_SHELL] + OPEN_SHELL)
def test_gfn2_handles_ions_radicals_and_triplets(smiles, total_charge, multiplicity, unit):
    q = Gfn2().compute(unit(smiles, total_charge, multiplicity, geometry=True))
    assert abs(q.sum() - total_charge) < SUM_TOLERANCE
    assert np.ptp(q) > 0.05


def test_gfn2_spin_state_changes_the_charges(embed):
    z, positions = embed("[CH2]", 1)
    triplet = Gfn2().compute(ChargeUnit("[CH2]", z, 0, 3, positions[0]))
    singlet = Gfn2().compute(ChargeUnit("[CH2]", z, 0, 1, positions[0]))
    assert not np.allclose(triplet, singlet, atol=1e-3)
    [odd] = Gfn2().compute_many([ChargeUnit("[CH2]", z, 0, 2, positions[0])])
    assert isinstance(odd, ChargeFailure)


def test_smiles_and_stored_elements_must_agree(embed):
    z, _ = embed("CCO", 1)
    [result] = Gasteiger().compute_many([ChargeUnit("CCN", z, 0, 1)])
    assert isinstance(result, ChargeFailure) and "do not match" in str(result)


def test_total_charge_must_match_the_smiles(unit):
    [result] = Formal().compute_many([unit("CC(=O)[O-]", 0, 1)])
    assert isinstance(result, ChargeFailure) and "formal charge -1" in str(result)


def test_conserve_charge_spreads_rounding_and_rejects_real_errors():
    q = conserve_charge(np.array([0.5002, -0.5, 0.0]), 0)
    assert abs(q.sum()) < 1e-12 and q[1] == pytest.approx(-0.5 - 0.0002 / 3)
    with pytest.raises(ChargeFailure, match="sum to"):
        conserve_charge(np.array([0.3, 0.0, 0.0]), 0)
    with pytest.raises(ChargeFailure, match="non-finite"):
        conserve_charge(np.array([np.nan, 0.0]), 0)


def test_nagl_batch_matches_one_call_per_molecule(unit):
    pytest.importorskip("openff.nagl", reason="optional extra nagl not installed: pip install 'tnq[nagl]'")
    from tnq_data.charges.nagl import Nagl, _openff_molecule, load_model

    units = [unit(s, q, 1) for s, q in CLOSED_SHELL] + [unit(*OPEN_SHELL[0])]
    results = Nagl().compute_many(units)
    assert isinstance(results[-1], ChargeFailure) and "closed-shell" in str(results[-1])
    for u, q in zip(units[:-1], results[:-1]):
        single = load_model().compute_property(_openff_molecule(u), readout_name="am1bcc_charges")
        assert np.allclose(q, single, atol=1e-6) and abs(q.sum() - u.total_charge) < SUM_TOLERANCE


WATER = "[O:1]([H:2])[H:3]"
#: A water geometry in Å (O-H 0.96 Å, 104.5°), so the MBIS tests do not depend on an embedding.
WATER_Z = np.array([8, 1, 1], dtype=np.uint8)
WATER_POSITIONS = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]])


def _mbis_compute(method: str = "hf"):
    """An Mbis scheme computing at `method`/STO-3G on a coarse grid (seconds); skipped without the extra."""
    pytest.importorskip("horton_part", reason="optional extra mbis not installed: pip install 'tnq[mbis]'")
    pytest.importorskip("grid.molgrid", reason="qc-grid (extra mbis) does not import; it needs scipy<1.15")
    from tnq_data.charges.mbis import Mbis

    scheme = Mbis(compute=True, method=method, basis="sto-3g", grid="coarse")
    scheme.check_available()
    return scheme


@pytest.mark.parametrize("method,total_charge,multiplicity", [("hf", 0, 1), ("b3lyp", 0, 1), ("hf", 1, 2)])
def test_mbis_compute_water_and_its_doublet_cation(method, total_charge, multiplicity):
    q = _mbis_compute(method).compute(ChargeUnit(WATER, WATER_Z, total_charge, multiplicity, WATER_POSITIONS))
    assert q.shape == (3,) and abs(q.sum() - total_charge) < SUM_TOLERANCE
    assert q[1] > 0 and q[2] > 0 and q[1] == pytest.approx(q[2], abs=0.01)
    if total_charge == 0:
        assert q[0] < -0.3


def test_mbis_compute_records_scf_non_convergence_and_heavy_atoms(monkeypatch):
    from tnq_data.charges import mbis

    scheme = _mbis_compute()
    monkeypatch.setattr(mbis, "SCF_MAX_CYCLE", 1)
    [failure] = scheme.compute_many([ChargeUnit(WATER, WATER_Z, 0, 1, WATER_POSITIONS)])
    assert isinstance(failure, ChargeFailure) and "did not converge in 1 cycles" in str(failure)
    hi = ChargeUnit("[H:1][I:2]", np.array([1, 53]), 0, 1, np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.61]]))
    [failure] = scheme.compute_many([hi])
    assert isinstance(failure, ChargeFailure) and "effective core potential" in str(failure)


def test_mbis_compute_without_the_extra_names_it(monkeypatch):
    import sys

    from tnq_data.charges.registry import get_scheme
    from tnq_core.errors import TnqError

    monkeypatch.setitem(sys.modules, "horton_part", None)  # import fails as if the extra were not installed
    with pytest.raises(TnqError, match="extra mbis"):
        get_scheme("mbis", compute=True, method="hf", basis="sto-3g")
    [failure] = get_scheme("mbis").compute_many([ChargeUnit(WATER, WATER_Z, 0, 1, WATER_POSITIONS)])
    assert str(failure) == "no MBIS charges in the source for this conformer"
