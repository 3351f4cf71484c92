"""Training you can watch: one line per epoch and a summary on stderr (a pipe here, not a terminal), silenced by
-q; the final report as JSON with --json; the train errors of each epoch are those of its batches; --threads."""

import csv
import json
import math
import re

import pytest
import torch

from tnq_core.cli import run_app
from tnq_core.progress import Reporter
from tnq_model.cli import app
from tnq_model.config import resolve_config
from tnq_model.evaluate import evaluate_run
from tnq_model.summary import best_epoch, epoch_line
from tnq_model.training import train

TINY = "model: {hidden_channels: 8, num_layers: 1, num_rbf: 8, cutoff: 3.0}\noptim: {warmup_steps: 3, ema_decay: 0.5}\n"
LINE = re.compile(r"^epoch (\d+)/(\d+)  lr (\S+)  train MAE E +(\S+) meV  F +(\S+) meV/Å  "
                  r"val MAE E +(\S+) meV  F +(\S+) meV/Å +(\S+) s( +best)?$")


def tnq_train(*args) -> int:
    return run_app(app, [str(a) for a in args], prog_name="tnq-train")


def read_rows(run) -> list[dict]:
    with open(run / "metrics.csv") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_one_line_per_epoch_and_a_summary_of_the_best_checkpoint(make_store, tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert tnq_train("--store", make_store(40), "--config", tiny, "--out", run, "--max-epochs", 4,
                     "--batch-size", 8) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    rows = read_rows(run)
    epochs = [LINE.match(line) for line in lines[:4]]
    assert all(epochs), lines
    score = [row["val_energy_force"] for row in rows]
    best = score.index(min(score))  # the first lowest, as best.pt is only replaced on improvement
    for match, row in zip(epochs, rows):
        assert int(match[1]) == row["epoch"] and match[2] == "4"
        assert float(match[3]) == pytest.approx(row["lr"], rel=0.05)
        for group, key in zip(range(4, 8), ("train_energy_mae_meV", "train_force_mae_meV_per_A",
                                            "val_energy_mae_meV", "val_force_mae_meV_per_A")):
            assert float(match[group]) == pytest.approx(row[key], abs=0.051), key
    improved = [i for i in range(4) if score[i] < min(score[:i], default=math.inf)]
    assert [i for i, match in enumerate(epochs) if match[9]] == improved
    summary = lines[4:]
    assert summary[0].startswith(f"best.pt: epoch {best + 1} of 4, val MAE E ")
    assert f"{rows[best]['val_energy_mae_meV']:.1f} meV" in summary[0]
    report = json.loads((run / "eval_test.json").read_text())
    test = report["overall"]
    assert re.match(rf"test +overall \( *{test['n_conformers']} conformers\): MAE E ", summary[1]), summary[1]
    assert f"{test['force_mae_meV_per_A']:.1f} meV/Å" in summary[1]
    groups = [*report["by_state"].values(), *report["by_total_charge"].values(), *report["by_multiplicity"].values()]
    assert len(summary) == 3 + len(groups)
    for line, group in zip(summary[2:], groups):  # each state, each charge, each multiplicity in turn
        assert line.startswith("test ") and f"{group['n_conformers']} conformers" in line, line
        assert f"{group['energy_mae_meV']:.1f} meV" in line, line
    assert summary[-1] == f"run written to {run}"


def test_quiet_says_nothing_and_json_prints_the_final_report(make_store, tiny, tmp_path, capsys):
    store = make_store(30)
    assert tnq_train("--store", store, "--config", tiny, "--out", tmp_path / "quiet", "--max-epochs", 2, "-q") == 0
    assert capsys.readouterr().err == ""
    run = tmp_path / "run"
    assert tnq_train("--store", store, "--config", tiny, "--out", run, "--max-epochs", 3, "--json", "-q") == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert captured.err == ""
    rows = read_rows(run)
    score = [row["val_energy_force"] for row in rows]
    best = rows[score.index(min(score))]
    assert report["best"]["epoch"] == best["epoch"] and report["best"]["checkpoint"] == "best.pt"
    assert report["best"]["val_force_mae_meV_per_A"] == best["val_force_mae_meV_per_A"]
    assert torch.load(run / "best.pt", weights_only=True)["extra"]["train_state"]["epoch"] == best["epoch"]
    assert report["test"] == json.loads((run / "eval_test.json").read_text())
    assert (report["epochs"], report["max_epochs"], report["stopped_early"]) == (3, 3, False)
    assert report["seconds"] == pytest.approx(sum(row["seconds"] for row in rows), abs=1e-6)


def test_the_train_errors_of_an_epoch_are_those_of_its_batches(make_store, tmp_path):
    """With a learning rate too small to move the weights, the epoch's train MAE equals an independent evaluation
    of the (unchanged) model on the training split."""
    store = make_store(30)
    config = tmp_path / "frozen.yaml"
    config.write_text("model: {hidden_channels: 8, num_layers: 1, num_rbf: 8, cutoff: 3.0, dtype: float64}\n"
                      "optim: {lr: 1.0e-14, warmup_steps: 0, ema_decay: 0.0}\n")
    run = tmp_path / "run"
    train(resolve_config(config, {"store": store, "out": run, "max_epochs": 1, "batch_size": 8}))
    row = read_rows(run)[0]
    report = evaluate_run(run, store, "train", "last.pt")["overall"]
    assert row["train_energy_mae_meV"] == pytest.approx(report["energy_mae_meV"], rel=1e-6)
    assert row["train_force_mae_meV_per_A"] == pytest.approx(report["force_mae_meV_per_A"], rel=1e-6)
    assert row["train_energy_mae_meV_per_atom"] == pytest.approx(report["energy_mae_meV_per_atom"], rel=1e-6)


def test_epoch_lines_without_forces_or_validation():
    row = {"epoch": 3, "lr": 1e-3, "train_energy_mae_meV": 12.345, "train_force_mae_meV_per_A": math.nan,
           "val_energy_mae_meV": math.nan, "val_force_mae_meV_per_A": math.nan, "seconds": 2.0}
    line = epoch_line(row, 10, forces=False, improved=False)
    assert line == "epoch  3/10  lr 1.0e-03  train MAE E    12.3 meV  val MAE E       - meV     2.0 s"
    history = [{"val_loss": math.nan, "train_loss": value, "epoch": i + 1}
               for i, value in enumerate([3.0, 1.0, 1.0, 2.0])]
    assert best_epoch(history, "loss")["epoch"] == 2
    assert best_epoch([{"val_loss": math.nan, "train_loss": math.nan, "epoch": 1}], "loss") is None


def test_threads_apply_while_training_and_are_restored(make_store, tiny, tmp_path):
    store = make_store(20)
    seen: list[int] = []
    reporter = Reporter(lambda _: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    for threads, out in ((2, "two"), (None, "default")):
        seen.clear()
        train(resolve_config(tiny, {"store": store, "out": tmp_path / out, "max_epochs": 1, "threads": threads}),
              reporter=reporter)
        assert seen and set(seen) == {threads or 1}, (threads, seen)
        assert torch.get_num_threads() == before


def test_bad_thread_counts_are_refused(make_store, tmp_path, capsys):
    assert tnq_train("--store", make_store(10), "--out", tmp_path / "r", "--threads", "0") == 2
    config = tmp_path / "c.yaml"
    config.write_text("threads: 0\n")
    assert tnq_train("--store", make_store(10, name="s2"), "--config", config, "--out", tmp_path / "r2") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: invalid config") and "threads" in err[-1]
    assert not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()


def test_a_resumed_run_says_where_it_continues(make_store, tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert tnq_train("--store", make_store(20), "--config", tiny, "--out", run, "--max-epochs", 1, "-q") == 0
    capsys.readouterr()
    assert tnq_train("--resume", "--out", run, "--max-epochs", 2) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"resuming {run} after epoch 1" and "read from the setup cache" in lines[1]
    assert LINE.match(lines[2])[1] == "2"
    assert sum(bool(LINE.match(line)) for line in lines) == 1
