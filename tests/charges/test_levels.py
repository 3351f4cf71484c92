"""Source charges and computed ones never share a column, and one scheme's molecules share one level of theory."""

import numpy as np
import pytest

from tnq_core.errors import TnqError
from tnq_data.charges import compute_charges
from tnq_data.charges.mbis import Mbis
from tnq_data.store import Column, add_columns, open_store

SPICE_LEVEL = ("wB97M-D3BJ", "def2-TZVPPD")


def with_source(store, charges: np.ndarray, methods: list[str], bases: list[str]):
    """Add MBIS source charges (atom axis, e) and their level per molecule to `store`."""
    add_columns(store, {"charges/mbis_source": Column("atom", charges.astype(np.float32)),
                        "charges_method/mbis_source": Column("molecule", np.array(methods, dtype=object)),
                        "charges_basis/mbis_source": Column("molecule", np.array(bases, dtype=object))},
                provenance={"command": "test", "parameters": {}, "inputs": []})
    return store


def water_like_charges(store) -> np.ndarray:
    """Charges (A,) summing to each conformer's total charge: -0.2 e on heavy atoms, balance on hydrogens."""
    opened = open_store(store)
    z, offsets, totals = opened.column("z"), opened.column("atom_offset"), opened.column("total_charge")
    q = np.where(z > 1, -0.2, 0.0)
    for c, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:])):
        h = np.flatnonzero(z[lo:hi] == 1) + lo
        q[h] = (totals[c] - q[lo:hi].sum()) / len(h)
    return q


def test_two_source_levels_in_one_column_are_refused(tmp_path, cache_dir, store_factory):
    store = store_factory[0](tmp_path / "store", [("CCO", 0, 1, 2), ("CC(=O)[O-]", -1, 1, 1)])
    with_source(store, water_like_charges(store), [SPICE_LEVEL[0], "B3LYP"], [SPICE_LEVEL[1], "def2-SVP"])
    before = open_store(store).version
    with pytest.raises(TnqError, match=r"scheme mbis at 2 levels of theory \(B3LYP/def2-SVP and "
                                       r"wB97M-D3BJ/def2-TZVPPD\); nothing was written"):
        compute_charges(store, "mbis", cache_dir=cache_dir)
    assert open_store(store).version == before


def test_one_source_level_is_recorded_per_molecule_next_to_the_fallback(tmp_path, cache_dir, store_factory):
    store = store_factory[0](tmp_path / "store", [("CCO", 0, 1, 2), ("CC(=O)[O-]", -1, 1, 1)])
    q = water_like_charges(store)
    q[9 * 2:] = np.nan  # acetate has no source charges
    with_source(store, q, [SPICE_LEVEL[0], ""], [SPICE_LEVEL[1], ""])
    first = compute_charges(store, "mbis", fallback=["gfn2"], cache_dir=cache_dir)
    opened = open_store(store)
    assert opened.column("charges_scheme/mbis").tolist() == ["mbis", "gfn2"]
    assert opened.column("charges_method/mbis").tolist() == ["wB97M-D3BJ", "GFN2-xTB"]
    assert opened.column("charges_basis/mbis").tolist() == ["def2-TZVPPD", ""]
    np.testing.assert_allclose(opened.column("charges/mbis")[:18], q[:18], atol=1e-6)
    assert compute_charges(store, "mbis", fallback=["gfn2"], cache_dir=cache_dir) == first


def test_computed_mbis_uses_source_charges_only_at_its_own_level():
    assert Mbis().accepts_source(SPICE_LEVEL) and Mbis().accepts_source(("", ""))
    other = Mbis(compute=True, method="b3lyp", basis="def2-svp")
    assert other.level() == ("b3lyp", "def2-svp") and not other.accepts_source(SPICE_LEVEL)
    same = Mbis(compute=True, method="wb97m-d3bj", basis="def2-tzvppd")
    assert same.accepts_source(SPICE_LEVEL) and not same.accepts_source(("", ""))


def test_source_charges_in_the_output_column_of_an_older_curation_are_refused(tmp_path, cache_dir, store_factory):
    store = store_factory[0](tmp_path / "store", [("CCO", 0, 1, 1)])
    add_columns(store, {"charges/mbis": Column("atom", water_like_charges(store).astype(np.float32))},
                provenance={"command": "curate spice (before charges/mbis_source)", "parameters": {}, "inputs": []})
    before = open_store(store).version
    with pytest.raises(TnqError, match="older curation; curate the source again"):
        compute_charges(store, "mbis", fallback=["gfn2"], cache_dir=cache_dir)
    assert open_store(store).version == before
