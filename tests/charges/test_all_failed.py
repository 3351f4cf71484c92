"""A charges run in which every molecule fails writes nothing and says what would work; training names the NaN
charge column that leaves it no conformer."""

import numpy as np
import pytest

from tnq_core.cli import run_app
from tnq_core.errors import TnqError
from tnq_data.cli import app
from tnq_data.store import Column, add_columns, open_store


@pytest.fixture
def qmspin_store(tmp_path):
    """A curated QMspin sample: carbenes without SMILES, singlets and triplets."""
    from tnq_data.sample import make_qmspin_sample
    from tnq_data.sources.qmspin import curate_qmspin

    archive = make_qmspin_sample(tmp_path / "qmspin.tar.gz", n_carbenes=2)
    curate_qmspin(archive, tmp_path / "qmspin")
    return tmp_path / "qmspin"


def test_gasteiger_on_a_store_without_smiles_writes_nothing_and_names_gfn2(qmspin_store, cache_dir, capsys):
    before = open_store(qmspin_store)
    code = run_app(app, ["charges", str(qmspin_store), "--scheme", "gasteiger", "--cache-dir", str(cache_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert f"all {before.n_molecules} molecules failed with gasteiger" in err and "no SMILES" in err
    assert "nothing was written" in err and "--scheme gfn2" in err and "--fallback gfn2" in err
    after = open_store(qmspin_store)
    assert after.version == before.version and "charges/gasteiger" not in after.columns

    assert run_app(app, ["-q", "charges", str(qmspin_store), "--scheme", "gasteiger", "--fallback", "gfn2",
                         "--cache-dir", str(cache_dir)]) == 0
    assert set(open_store(qmspin_store).column("charges_scheme/gasteiger")) == {"gfn2"}


def test_every_molecule_failing_with_smiles_suggests_the_gfn2_fallback(tmp_path, cache_dir, store_factory):
    from tnq_data.charges import compute_charges

    store = store_factory[0](tmp_path / "store", [("[CH3]", 0, 2, 1), ("[CH2]", 0, 3, 1)])
    with pytest.raises(TnqError, match=r"all 2 molecules failed with am1bcc \(1 of them: AM1-BCC needs a "
                                       r"closed-shell singlet.*add `fallback` gfn2"):
        compute_charges(store, "am1bcc", cache_dir=cache_dir)
    assert open_store(store).parent is None


def test_training_names_the_charge_column_that_leaves_no_conformer(tmp_path, store_factory):
    from tnq_model.config import TrainConfig
    from tnq_model.setup import prepare_data

    store = store_factory[0](tmp_path / "store", [("CCO", 0, 1, 2), ("CC(=O)[O-]", -1, 1, 2), ("[NH4+]", 1, 1, 2)])
    n_atoms = open_store(store).n_atoms
    add_columns(store, {"charges/gasteiger": Column("atom", np.full(n_atoms, np.nan, dtype=np.float32))},
                provenance={"command": "an older tnq-data charges", "parameters": {}, "inputs": []})
    config = TrainConfig(store=store, state=["charge", "spin", "charges/gasteiger"])
    with pytest.raises(TnqError) as raised:
        prepare_data(config, None)
    message = str(raised.value)
    assert "`charges/gasteiger` is NaN on" in message and "--fallback gfn2" in message
    assert "`energy`" not in message and "lower the val/test fractions" not in message
    assert prepare_data(TrainConfig(store=store), None).selected["train"].any()  # without that column it trains
