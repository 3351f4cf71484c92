"""`compute_charges` and `check_store` on real stores with real dask clusters."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tnq_data.charges import check_store, compute_charges
from tnq_data.cli import app
from tnq_core.cli import run_app
from tnq_core.errors import TnqError
from tnq_data.store import open_store

IBUPROFEN = "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O"
#: (SMILES, total charge, multiplicity, conformers): closed shells, ions, a radical, sodium, a triplet.
MOLECULES = [
    ("[C:1]([C:2]([O:3][H:9])([H:7])[H:8])([H:4])([H:5])[H:6]", 0, 1, 2),  # ethanol, atom-mapped
    ("CC(=O)[O-]", -1, 1, 1),                                               # acetate, unmapped
    ("[NH4+]", 1, 1, 1),
    ("[CH3]", 0, 2, 1),                                                     # methyl radical
    ("[H:3][C:1]#[C:2][H:4].[Na+:5]", 1, 1, 1),                             # the SPICE DES370K record
    ("[CH2]", 0, 3, 1),                                                     # triplet carbene
]


def conformer_sums(store, column: str = "charges/am1bcc") -> np.ndarray:
    q = store.column(column).astype(np.float64)
    offsets = store.column("atom_offset")
    return np.add.reduceat(q, offsets[:-1])


@pytest.fixture(scope="module")
def am1bcc_run(tmp_path_factory, store_factory) -> tuple[Path, str, Path]:
    """AM1-BCC with a GFN2 fallback on the small store, two workers, a fresh cache."""
    root = tmp_path_factory.mktemp("run")
    store = store_factory[0](root / "store", MOLECULES)
    vid = compute_charges(store, "am1bcc", fallback=["gfn2"], workers=2, cache_dir=root / "cache")
    return store, vid, root / "cache"


def test_every_molecule_is_charged_or_accounted_for(am1bcc_run):
    store_path, vid, _ = am1bcc_run
    store = open_store(store_path)
    assert store.version == vid and store.column_info("charges/am1bcc")["unit"] == "e"
    totals = store.column("total_charge")
    assert np.all(np.abs(conformer_sums(store) - totals) < 1e-4)
    used = store.column("charges_scheme/am1bcc").tolist()
    assert used == ["am1bcc", "am1bcc", "am1bcc", "gfn2", "gfn2", "gfn2"]
    rows = store.tables["charges/am1bcc/failures"]
    assert [(r["molecule"], r["scheme"], r["used"]) for r in rows] == [(3, "am1bcc", "gfn2"), (4, "am1bcc", "gfn2"),
                                                                     (5, "am1bcc", "gfn2")]
    assert "closed-shell" in rows[0]["reason"] and "[11]" in rows[1]["reason"]
    assert rows[1]["source_id"] == "mol4"


def test_a_rerun_does_no_chemistry_and_keeps_the_version(am1bcc_run, entry_files):
    store_path, vid, cache = am1bcc_run
    before = {p: p.stat().st_mtime_ns for p in entry_files(cache)}
    assert len(before) == 3 + 1 + 1 + 1 + 2 + 1  # am1bcc x3 molecules + x3 failures, gfn2 per conformer
    again = compute_charges(store_path, "am1bcc", fallback=["gfn2"], workers=2, cache_dir=cache)
    assert again == vid
    assert {p: p.stat().st_mtime_ns for p in entry_files(cache)} == before


def test_one_worker_gives_the_same_version(am1bcc_run, store_factory, tmp_path):
    _, vid, _ = am1bcc_run
    store = store_factory[0](tmp_path / "store", MOLECULES)
    assert compute_charges(store, "am1bcc", fallback=["gfn2"], workers=1, cache_dir=tmp_path / "cold") == vid


def test_a_timeout_is_a_failure_row_and_is_not_cached(tmp_path, cache_dir, store_factory, entry_files):
    make_store, _ = store_factory
    store = make_store(tmp_path / "store", [(IBUPROFEN, 0, 1, 1)])
    compute_charges(store, "am1bcc", fallback=["formal"], timeout=1.0, cache_dir=cache_dir)
    opened = open_store(store)
    [row] = opened.tables["charges/am1bcc/failures"]
    assert row["scheme"] == "am1bcc" and row["reason"] == "timed out after 1 s" and row["used"] == "formal"
    assert opened.column("charges_scheme/am1bcc").tolist() == ["formal"]
    assert len(entry_files(cache_dir)) == 1  # the formal charges only


def test_without_fallback_failures_are_nan(tmp_path, cache_dir, store_factory):
    make_store, _ = store_factory
    store = make_store(tmp_path / "store", [("[NH4+]", 1, 1, 1), ("[CH3]", 0, 2, 2)])
    compute_charges(store, "am1bcc", cache_dir=cache_dir)
    opened = open_store(store)
    q = opened.column("charges/am1bcc")
    assert np.all(np.isfinite(q[:5])) and np.all(np.isnan(q[5:])) and len(q) == 5 + 2 * 4
    assert opened.column("charges_scheme/am1bcc").tolist() == ["am1bcc", ""]
    [row] = opened.tables["charges/am1bcc/failures"]
    assert row["molecule"] == 1 and row["used"] == ""


def test_spice_sample_am1bcc_with_gfn2_fallback(spice_sample, tmp_path, cache_dir):
    from tnq_data.sources.spice import curate_spice

    store = tmp_path / "spice"
    curate_spice(spice_sample, store)
    compute_charges(store, "am1bcc", fallback=["gfn2"], cache_dir=cache_dir)
    opened = open_store(store)
    by_id = dict(zip(opened.column("source_id").tolist(), opened.column("charges_scheme/am1bcc").tolist()))
    assert by_id == {"103147721": "am1bcc", "C#C.[Na+]": "gfn2"}
    [row] = opened.tables["charges/am1bcc/failures"]
    assert row["source_id"] == "C#C.[Na+]" and "[11]" in row["reason"]
    q = opened.column("charges/am1bcc").astype(np.float64)
    sums = np.add.reduceat(q, opened.column("atom_offset")[:-1])
    assert np.all(np.abs(sums - opened.column("total_charge")) < 1e-4)


def test_spice_sample_mbis_from_the_source(spice_sample, tmp_path, cache_dir, monkeypatch):
    from tnq_data.sources.spice import curate_spice

    store = tmp_path / "spice"
    curate_spice(spice_sample, store)
    source = open_store(store).column("charges/mbis_source")
    first = compute_charges(store, "mbis", fallback=["gfn2"], cache_dir=cache_dir)
    opened = open_store(store)
    assert opened.column("charges_scheme/mbis").tolist() == ["mbis", "gfn2"]
    assert opened.column("charges_method/mbis").tolist() == ["wB97M-D3BJ", "GFN2-xTB"]
    assert opened.column("charges_basis/mbis").tolist() == ["def2-TZVPPD", ""]
    kept = np.isfinite(source)
    assert kept.sum() == 27 * 50 and np.allclose(opened.column("charges/mbis")[kept], source[kept], atol=1e-3)
    assert np.isfinite(opened.column("charges/mbis")).all()  # the GFN2 fallback filled the rest ...
    np.testing.assert_array_equal(opened.column("charges/mbis_source"), source)  # ... of the output column only
    [row] = opened.tables["charges/mbis/failures"]
    assert row["source_id"] == "C#C.[Na+]" and "no MBIS charges" in row["reason"] and row["used"] == "gfn2"

    # A second run on the new HEAD reads the source column again, never its own output: nothing changes.
    assert compute_charges(store, "mbis", fallback=["gfn2"], cache_dir=cache_dir) == first
    again = open_store(store)
    assert again.column("charges_scheme/mbis").tolist() == ["mbis", "gfn2"]
    assert again.tables["charges/mbis/failures"] == opened.tables["charges/mbis/failures"]
    monkeypatch.setitem(sys.modules, "horton_part", None)  # as without the extra, wherever the test runs
    with pytest.raises(TnqError, match="extra mbis"):
        compute_charges(store, "mbis", compute=True, method="hf", basis="sto-3g", cache_dir=cache_dir)


def test_inconsistent_spin_is_reported_and_refused(tmp_path, cache_dir, store_factory):
    make_store, _ = store_factory
    store = make_store(tmp_path / "store", [("CCO", 0, 1, 1), ("[CH3]", 0, 1, 2)])  # a radical as a singlet
    report = check_store(store)
    assert report["inconsistent"] == 2
    assert report["rows"][0] == {"conformer": 1, "molecule": 1, "source_id": "mol1", "electrons": 9,
                                 "total_charge": 0, "multiplicity": 1}
    with pytest.raises(TnqError, match="multiplicity impossible"):
        compute_charges(store, "gfn2", cache_dir=cache_dir)
    assert open_store(store).parent is None  # still the first version


def test_cli_check_and_charges(tmp_path, cache_dir, store_factory, capsys):
    make_store, _ = store_factory
    store = make_store(tmp_path / "store", [("CC(=O)[O-]", -1, 1, 1), ("[CH2]", 0, 3, 1)])
    assert run_app(app, ["check", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inconsistent"] == 0
    code = run_app(app, ["--quiet", "charges", str(store), "--scheme", "gasteiger", "--fallback", "gfn2",
                         "--cache-dir", str(cache_dir), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["used"] == {"gasteiger": 2} and summary["failures"] == []
    assert run_app(app, ["charges", str(store), "--scheme", "nope"]) == 1
    assert "unknown charge scheme 'nope'" in capsys.readouterr().err
    assert run_app(app, ["charges", str(store), "--scheme", "formal", "--per-conformer"]) == 1


def test_molecules_without_smiles_get_gfn2_charges(tmp_path, cache_dir):
    from tnq_data.sample import make_qmspin_sample
    from tnq_data.sources.qmspin import curate_qmspin

    archive = make_qmspin_sample(tmp_path / "qmspin.tar.gz", n_carbenes=2)
    store_path = tmp_path / "qmspin"
    curate_qmspin(archive, store_path)
    compute_charges(store_path, "gfn2", cache_dir=cache_dir)
    store = open_store(store_path)
    assert set(store.column("smiles")) == {""} and set(store.column("multiplicity")) == {1, 3}
    np.testing.assert_allclose(conformer_sums(store, "charges/gfn2"), 0.0, atol=1e-4)
    assert not store.tables["charges/gfn2/failures"]
    compute_charges(store_path, "am1bcc", fallback=["gfn2"], cache_dir=cache_dir)
    rescued = open_store(store_path)
    assert set(rescued.column("charges_scheme/am1bcc")) == {"gfn2"}
    assert [row["reason"] for row in rescued.tables["charges/am1bcc/failures"]] == \
        ["no SMILES stored for this molecule (scheme am1bcc needs one)"] * store.n_molecules


def test_more_tasks_than_the_submission_window_are_all_computed(tmp_path, cache_dir, store_factory):
    # One worker keeps 3 tasks in flight; 20 GFN2 conformers make 5 tasks of 4: none may be dropped.
    make_store, _ = store_factory
    store_path = make_store(tmp_path / "s", [("CCO", 0, 1, 20)])
    compute_charges(store_path, "gfn2", workers=1, cache_dir=cache_dir)
    store = open_store(store_path)
    assert np.isfinite(store.column("charges/gfn2")).all() and not store.tables["charges/gfn2/failures"]
    np.testing.assert_allclose(conformer_sums(store, "charges/gfn2"), 0.0, atol=1e-4)
