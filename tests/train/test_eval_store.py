"""`tnq-train eval --store OTHER`: another store version is refused unless --force, which maps the run's splits
onto OTHER by molecule identity (source id and SMILES), never by row index."""

import json

import numpy as np
import pytest

from tnq_core.cli import run_app
from tnq_core.errors import TnqError
from tnq_data.store import MoleculeBatch, open_store, write_store
from tnq_model.cli import app
from tnq_model.evaluate import splits_by_identity

TINY = "model: {hidden_channels: 8, num_layers: 1, num_rbf: 8, cutoff: 3.0}\noptim: {warmup_steps: 3, ema_decay: 0.5}\n"


def tnq_train(*args) -> int:
    return run_app(app, [str(a) for a in args], prog_name="tnq-train")


def take_molecules(batch: MoleculeBatch, order: list[int]) -> MoleculeBatch:
    """The molecules `order` of `batch`, in that order, with all their conformers and atoms."""
    conf_start = np.concatenate([[0], np.cumsum(batch.molecule["n_conformers"])])
    atom_start = np.concatenate([[0], np.cumsum(batch.conformer["n_atoms"])])
    conformers = np.concatenate([np.arange(conf_start[j], conf_start[j + 1]) for j in order]).astype(np.int64)
    atoms = np.concatenate([np.arange(atom_start[c], atom_start[c + 1]) for c in conformers]).astype(np.int64)
    return MoleculeBatch(molecule={k: v[order] for k, v in batch.molecule.items()},
                         conformer={k: v[conformers] for k, v in batch.conformer.items()},
                         atom={k: v[atoms] for k, v in batch.atom.items()})


def join(*batches: MoleculeBatch) -> MoleculeBatch:
    return MoleculeBatch(*({k: np.concatenate([b.axis(axis)[k] for b in batches]) for k in batches[0].axis(axis)}
                           for axis in ("molecule", "conformer", "atom")))


@pytest.fixture
def trained(molecules, tmp_path):
    """(training store, run directory, its molecules as a MoleculeBatch, the run's splits) of a 1-epoch run."""
    batch = molecules(0, 40)
    store, run = tmp_path / "store", tmp_path / "run"
    write_store(store, [batch], shard_bytes=4000)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY + "split: {train: 0.6, val: 0.2, test: 0.2, seed: 0}\n")
    assert tnq_train("--store", store, "--config", config, "--out", run, "--max-epochs", 1, "-q") == 0
    with np.load(run / "splits.npz") as saved:
        splits = {name: saved[name].tolist() for name in ("train", "val", "test")}
    return store, run, batch, splits


def evaluate(capsys, *args) -> tuple[int, dict | None, str]:
    capsys.readouterr()
    code = tnq_train("eval", *args, "--json")
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def test_another_version_is_refused_unless_forced_and_then_mapped_by_identity(trained, molecules, tmp_path, capsys):
    store, run, batch, splits = trained
    code, own, _ = evaluate(capsys, run, "--store", store)
    assert code == 0 and "split_mapping" not in own
    # the same molecules in reverse order, and five the run never saw: row indices now name other molecules
    other = tmp_path / "other"
    write_store(other, [join(take_molecules(batch, list(range(40))[::-1]), molecules(7, 5))], shard_bytes=4000)
    code, _, err = evaluate(capsys, run, "--store", other)
    assert code == 1 and err.startswith("error:") and err.count("\n") == 1
    assert "was trained on version" in err and "--force" in err
    code, mapped, err = evaluate(capsys, run, "--store", other, "--force")
    assert code == 0
    n_test = len(splits["test"])
    assert mapped["split_mapping"] == {"by": "source_id and smiles", "run_molecules": n_test, "found": n_test,
                                       "molecules": n_test}
    assert f"found {n_test} of the run's {n_test} test molecules" in err
    assert mapped["store_version"] != mapped["trained_on_store_version"] == own["store_version"]
    assert mapped["overall"]["n_conformers"] == own["overall"]["n_conformers"]
    for key, value in own["overall"].items():
        assert mapped["overall"][key] == pytest.approx(value, rel=1e-5), key
    assert mapped["by_total_charge"].keys() == own["by_total_charge"].keys()


def test_forced_evaluation_takes_only_the_runs_split_molecules_found(trained, molecules, tmp_path, capsys):
    _, run, batch, splits = trained
    kept_test = splits["test"][: len(splits["test"]) // 2]
    order = list(np.random.default_rng(1).permutation(splits["train"] + splits["val"] + kept_test))
    other = tmp_path / "other"
    write_store(other, [join(molecules(8, 6), take_molecules(batch, order))], shard_bytes=4000)
    code, report, _ = evaluate(capsys, run, "--store", other, "--force")
    assert code == 0
    assert report["split_mapping"]["found"] == report["split_mapping"]["molecules"] == len(kept_test)
    assert report["split_mapping"]["run_molecules"] == len(splits["test"])
    expected_conformers = int(batch.molecule["n_conformers"][kept_test].sum())
    assert report["overall"]["n_conformers"] == expected_conformers
    code, train_report, _ = evaluate(capsys, run, "--store", other, "--force", "--split", "train")
    assert code == 0 and train_report["split_mapping"]["found"] == len(splits["train"])


def test_forced_evaluation_needs_the_training_version_and_some_molecule_of_the_split(trained, molecules, tmp_path,
                                                                                     capsys):
    store, run, batch, splits = trained
    trained_on = open_store(store).version
    write_store(store, [take_molecules(batch, splits["test"][::-1])], shard_bytes=4000)  # a new HEAD
    code, report, _ = evaluate(capsys, run, "--store", store)
    assert code == 0 and report["store_version"] == trained_on and "split_mapping" not in report
    code, report, _ = evaluate(capsys, run, "--store", store, "--force")
    assert code == 0 and report["store_version"] == open_store(store).version != trained_on
    assert report["split_mapping"]["found"] == len(splits["test"])
    strangers = tmp_path / "strangers"
    write_store(strangers, [molecules(9, 10)], shard_bytes=4000)
    code, _, err = evaluate(capsys, run, "--store", strangers, "--force")
    assert code == 1 and f"none of the {len(splits['test'])} molecules of the run's test split" in err
    assert err.count("\n") == 1
    other = tmp_path / "other"
    write_store(other, [take_molecules(batch, splits["test"])], shard_bytes=4000)
    store.rename(tmp_path / "moved")
    code, _, err = evaluate(capsys, run, "--store", other, "--force")
    assert code == 1 and "cannot map the run's splits by molecule identity" in err and err.count("\n") == 1


def test_an_identity_in_two_splits_cannot_be_mapped(molecules, tmp_path):
    batch = molecules(0, 6)
    batch.molecule["source_id"][1] = batch.molecule["source_id"][0]
    batch.molecule["smiles"][1] = batch.molecule["smiles"][0]
    write_store(tmp_path / "a", [batch], shard_bytes=4000)
    write_store(tmp_path / "b", [take_molecules(batch, [5, 4, 3, 2, 1, 0])], shard_bytes=4000)
    trained, other = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    same_split = {"train": np.array([0, 1, 2, 3]), "val": np.array([4]), "test": np.array([5])}
    mapped, found = splits_by_identity(trained, other, same_split)
    assert {k: v.tolist() for k, v in mapped.items()} == {"train": [2, 3, 4, 5], "val": [1], "test": [0]}
    assert found == {"train": 4, "val": 1, "test": 1}
    with pytest.raises(TnqError, match="m0-0.*in two of the run's splits"):
        splits_by_identity(trained, other, {"train": np.array([0, 2, 3]), "val": np.array([4]),
                                            "test": np.array([1, 5])})
