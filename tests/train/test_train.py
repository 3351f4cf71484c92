"""`tnq-train` end to end on stores written by the tests: outputs, exact resume, store versions, eval, export."""

import csv
import json

import numpy as np
import pytest
import torch

from tnq_core.cli import run_app
from tnq_data.store import open_store, write_store
from tnq_model.checkpoint import read_checkpoint
from tnq_model.splits import split_molecules
from tnq_model.cli import app

TINY = "model: {hidden_channels: 8, num_layers: 1, num_rbf: 8, cutoff: 3.0}\noptim: {warmup_steps: 3, ema_decay: 0.5}\n"


def tnq_train(*args) -> int:
    return run_app(app, [str(a) for a in args], prog_name="tnq-train")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def metrics(run) -> list[dict]:
    with open(run / "metrics.csv") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def test_training_writes_the_run_directory_and_eval_reports_by_state(make_store, tiny, tmp_path, capsys):
    store = make_store(40)
    run = tmp_path / "run"
    assert tnq_train("--store", store, "--config", tiny, "--out", run, "--max-epochs", 2, "--batch-size", 8,
                     "--state", "charge,spin", "-q") == 0
    for name in ("config.yaml", "splits.npz", "data.json", "metrics.csv", "last.pt", "best.pt", "eval_test.json",
                 "learning_curves.png", "parity.png", "errors_by_state.png", "test_predictions.npz"):
        assert (run / name).is_file(), name
    rows = metrics(run)
    assert [row["epoch"] for row in rows] == ["1", "2"] and all(np.isfinite(float(r["val_loss"])) for r in rows)
    extra = read_checkpoint(run / "last.pt")["extra"]
    version = open_store(store).version
    assert extra["store_version"] == version and extra["package_version"] == "0.1.0"
    assert json.loads((run / "data.json").read_text())["version"] == version
    capsys.readouterr()
    assert tnq_train("eval", run, "--store", store, "--split", "test", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["store_version"] == version and report["split"] == "test"
    keys = {"energy_mae_meV", "energy_rmse_meV", "energy_mae_meV_per_atom", "energy_rmse_meV_per_atom",
            "force_mae_meV_per_A", "force_rmse_meV_per_A", "n_conformers"}
    assert set(report["overall"]) == keys
    test_conformers = json.loads((run / "data.json").read_text())["conformers"]["test"]
    assert report["overall"]["n_conformers"] == test_conformers
    assert sum(v["n_conformers"] for v in report["by_multiplicity"].values()) == test_conformers
    assert set(report["by_total_charge"]) <= {"-1", "0", "1"} and len(report["by_total_charge"]) > 1
    with np.load(run / "test_predictions.npz") as saved:  # by state, recomputed from the saved predictions
        error = 1000 * np.abs(saved["energy_pred"] - saved["energy_true"])
        pairs = {f"{q},{m}" for q, m in zip(saved["total_charge"].tolist(), saved["multiplicity"].tolist())}
        assert set(report["by_state"]) == pairs
        for key, group in report["by_state"].items():
            q, m = map(int, key.split(","))
            mask = (saved["total_charge"] == q) & (saved["multiplicity"] == m)
            assert group["n_conformers"] == mask.sum() and group["energy_mae_meV"] == pytest.approx(error[mask].mean())
    assert report == {**json.loads((run / "eval_test.json").read_text()), "trained_on_store_version": version,
                      "checkpoint": "best.pt"}
    assert tnq_train("export", run, "--out", tmp_path / "model.ts") == 0
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    assert scripted(torch.tensor([8, 1, 1]), torch.randn(3, 3), torch.zeros(3, dtype=torch.long),
                    torch.tensor([0]), torch.tensor([1])).shape == (1,)


def test_resume_gives_the_results_of_an_uninterrupted_run(make_store, tiny, tmp_path):
    store = make_store(30)
    common = ("--store", store, "--config", tiny, "--batch-size", 8, "-q")
    assert tnq_train(*common, "--out", tmp_path / "full", "--max-epochs", 3) == 0
    assert tnq_train(*common, "--out", tmp_path / "part", "--max-epochs", 1) == 0
    assert tnq_train("--resume", "--out", tmp_path / "part", "--max-epochs", 3, "-q") == 0
    full, part = (read_checkpoint(tmp_path / name / "last.pt") for name in ("full", "part"))
    for key, value in full["state_dict"].items():
        assert torch.equal(value, part["state_dict"][key]), key
    assert metrics(tmp_path / "full") == metrics(tmp_path / "part") and len(metrics(tmp_path / "part")) == 3
    assert full["extra"]["train_state"]["step"] == part["extra"]["train_state"]["step"] > 0


def test_resume_on_another_store_version_needs_force(make_store, molecules, tiny, tmp_path, capsys):
    store = make_store(30)
    run = tmp_path / "run"
    assert tnq_train("--store", store, "--config", tiny, "--out", run, "--max-epochs", 1, "-q") == 0
    write_store(store, [molecules(9, 30)], shard_bytes=4000)
    capsys.readouterr()
    assert tnq_train("--resume", "--out", run, "--max-epochs", 2, "-q") == 1
    err = capsys.readouterr().err
    assert "--force" in err and len(err.strip().splitlines()) == 1
    assert tnq_train("--resume", "--force", "--out", run, "--max-epochs", 2, "-q") == 0
    assert read_checkpoint(run / "last.pt")["extra"]["store_version"] == open_store(store).version


def test_energy_only_store_trains_and_reports_energies_only(make_store, tiny, tmp_path, capsys):
    store = make_store(30, forces=False)
    run = tmp_path / "run"
    assert tnq_train("--store", store, "--config", tiny, "--out", run, "--max-epochs", 1, "-q") == 0
    capsys.readouterr()
    assert tnq_train("eval", run, "--store", store, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert "force_mae_meV_per_A" not in report["overall"] and report["overall"]["n_conformers"] > 0


def test_user_errors_are_one_line_and_non_zero(tmp_path, make_store, tiny, capsys):
    assert tnq_train("--store", tmp_path / "missing", "--out", tmp_path / "r", "-q") == 1
    assert tnq_train("--store", make_store(10), "--config", tiny, "--state", "charges/am1bcc", "--out", tmp_path / "r2") == 1
    assert tnq_train("--resume", "--out", tmp_path / "none") == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error:") for line in lines)
    assert "charges/am1bcc" in lines[1]


def test_a_model_that_confuses_states_is_refused_in_one_line(make_store, tmp_path, capsys):
    config = tmp_path / "constant.yaml"
    config.write_text("model: {lambda_mode: constant}\n")
    code = tnq_train("--store", make_store(10), "--config", config, "--out", tmp_path / "run", "-q")
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: lambda_mode='constant'") and err.count("\n") == 1, err


def test_eval_reads_the_version_the_run_was_trained_on(make_store, molecules, tiny, tmp_path, capsys):
    store = make_store(30)
    run = tmp_path / "run"
    assert tnq_train("--store", store, "--config", tiny, "--out", run, "--max-epochs", 1, "-q") == 0
    trained = open_store(store).version
    capsys.readouterr()
    assert tnq_train("eval", run, "--store", store, "--json") == 0
    before = json.loads(capsys.readouterr().out)
    write_store(store, [molecules(9, 30)], shard_bytes=4000)  # a new HEAD lands after training
    assert open_store(store).version != trained
    assert tnq_train("eval", run, "--store", store, "--json") == 0
    after = json.loads(capsys.readouterr().out)
    assert after == before and after["store_version"] == after["trained_on_store_version"] == trained
    other = make_store(30, seed=5, name="other")
    assert tnq_train("eval", run, "--store", other, "--json") == 1
    err = capsys.readouterr().err
    assert f"trained on version {trained}" in err and len(err.strip().splitlines()) == 1


def test_a_state_found_only_outside_train_moves_its_molecule_into_train(molecules, tiny, tmp_path):
    """Without that, validation would meet a total charge with no reference energy and stop the run."""
    batch = molecules(3, 20)
    first = int(batch.molecule["n_conformers"][0])
    batch.conformer["total_charge"][:first] = 2  # the only dication is molecule 0
    store = tmp_path / "store"
    write_store(store, [batch], shard_bytes=4000)
    opened = open_store(store)
    dication = int(opened.column("molecule")[np.flatnonzero(opened.column("total_charge") == 2)[0]])
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    seed = next(s for s in range(100) if dication in split_molecules(20, fractions, s)["val"])
    config = tmp_path / "split.yaml"
    config.write_text(tiny.read_text() + f"split: {{train: 0.6, val: 0.2, test: 0.2, seed: {seed}}}\n")
    assert tnq_train("--store", store, "--config", config, "--out", tmp_path / "run", "--max-epochs", 1, "-q") == 0
    assert dication in np.load(tmp_path / "run" / "splits.npz")["train"]
