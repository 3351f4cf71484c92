"""An interrupted pipeline's train stage continues from last.pt when its inputs (store version, config) are the
same, and starts afresh when they changed."""

import csv
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tnq_core.progress import Reporter
from tnq_data.pipeline import load_pipeline, run_pipeline
from tnq_model.checkpoint import read_checkpoint
from tnq_model.stage import _last_epoch

MAX_EPOCHS = 30
CONFIG = {"state": ["charge"], "max_epochs": MAX_EPOCHS, "batch_size": 4, "seed": 0,
          "model": {"hidden_channels": 8, "num_layers": 1, "num_rbf": 8, "cutoff": 4.0},
          "optim": {"warmup_steps": 2, "early_stopping_patience": 1000},
          "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 0}}


def _write(path: Path, spice: Path, **config) -> Path:
    path.write_text(yaml.safe_dump({"name": "resume", "stages": [
        {"name": "raw", "kind": "fetch", "dataset": "spice", "url": f"file://{spice}",
         "sha256": hashlib.sha256(spice.read_bytes()).hexdigest()},
        {"name": "spice", "kind": "curate_spice", "input": "raw", "max_force": 15.0},
        {"name": "train", "kind": "train", "input": "spice", "config": {**CONFIG, **config}}]}))
    return path


def _interrupt_after_first_epoch(path: Path, workdir: Path) -> list[dict]:
    """Run the pipeline in a process killed (SIGKILL) once last.pt holds an epoch; the history it holds."""
    last = workdir / "runs" / "train" / "last.pt"
    process = subprocess.Popen(["tnq-data", "-q", "run", str(path), "--workdir", str(workdir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if last.is_file():
                try:
                    read_checkpoint(last)
                    break
                except Exception:  # noqa: BLE001  still being written
                    pass
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read()
    return read_checkpoint(last)["extra"]["train_state"]["history"]


def _metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_train_stage_resumes_from_last_pt_after_an_interrupt(tmp_path, sample_files):
    path, workdir = _write(tmp_path / "p.yaml", sample_files["spice"]), tmp_path / "work"
    killed = _interrupt_after_first_epoch(path, workdir)
    assert 1 <= len(killed) < MAX_EPOCHS
    cut = tmp_path / "cut.pt"            # a last.pt cut short by the interrupt would start the run afresh
    cut.write_bytes((workdir / "runs" / "train" / "last.pt").read_bytes()[:2000])
    assert _last_epoch(cut) is None and _last_epoch(workdir / "runs" / "train" / "last.pt") == len(killed)
    lines: list[str] = []
    state = run_pipeline(load_pipeline(path), workdir, reporter=Reporter(lines.append))
    running = [line for line in lines if " running " in line]
    assert [line.split()[1] for line in running] == ["train:"], "the finished stages before it are not repeated"
    assert any(f"resuming the interrupted training in {workdir / 'runs' / 'train'} after epoch {len(killed)}" in line
               for line in lines), lines
    metrics = _metrics(Path(state["train"]["outputs"]["run"]))
    assert [row["epoch"] for row in metrics] == list(range(1, MAX_EPOCHS + 1))
    assert metrics[:len(killed)] == [{key: float(value) for key, value in row.items()} for row in killed], \
        "the epochs before the interrupt are those of the interrupted run (their timings too), not new ones"


@pytest.mark.slow
def test_an_interrupted_run_whose_config_changed_starts_afresh(tmp_path, sample_files):
    path, workdir = _write(tmp_path / "p.yaml", sample_files["spice"]), tmp_path / "work"
    killed = _interrupt_after_first_epoch(path, workdir)
    _write(path, sample_files["spice"], max_epochs=len(killed) + 2)
    lines: list[str] = []
    state = run_pipeline(load_pipeline(path), workdir, reporter=Reporter(lines.append))
    assert not any("resuming" in line for line in lines)
    metrics = _metrics(Path(state["train"]["outputs"]["run"]))
    assert len(metrics) == len(killed) + 2 and metrics[0]["seconds"] != killed[0]["seconds"]
