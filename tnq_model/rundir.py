"""The run directory: inputs written at the start, metrics and checkpoints per epoch, resuming, the final test
report, predictions and figures, and what reads them back (`tnq-train --json`, `tnq-train plot`). Only rank 0
writes."""

import csv
import json
from importlib.metadata import version as package_version
from pathlib import Path

import torch

from tnq_core.errors import TnqError
from tnq_data.store import open_store

from .checkpoint import load_potential, read_checkpoint, save_checkpoint
from .config import TrainConfig, resolve_config, write_config
from .evaluate import error_report, write_report
from .plots import draw_run_plots
from .setup import Setup
from .splits import load_splits, save_splits
from .summary import best_epoch, final_report
from .test_predictions import load_predictions, predict_test, save_predictions
from .trainer import Trainer

#: The test split's predictions and reference energies, kept for `tnq-train plot`.
PREDICTIONS = "test_predictions.npz"


def write_metrics(history: list[dict], path: Path) -> None:
    """The per-epoch metrics as CSV, one row per epoch."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def read_metrics(path: Path) -> list[dict]:
    """The rows of metrics.csv as numbers (`epoch` an int; empty splits are NaN), as `write_metrics` got them."""
    with open(path, newline="") as handle:
        return [{key: int(value) if key == "epoch" else float(value) for key, value in row.items()}
                for row in csv.DictReader(handle)]


def save_run(trainer: Trainer, path: Path) -> None:
    """A checkpoint of the averaged potential with everything resuming needs."""
    config, store = trainer.config, trainer.setup.store
    save_checkpoint(path, trainer.averaged, config=config.model_dump(mode="json"), train_state=trainer.state(),
                    store_version=store.version, store=str(config.store), forces=trainer.setup.forces,
                    package_version=package_version("tnq"))


def resume_run(trainer: Trainer, run_dir: Path, force: bool) -> None:
    """Continue `trainer` from the run directory's last.pt (another store version only with `force`)."""
    extra = read_checkpoint(run_dir / "last.pt")["extra"]
    store = trainer.setup.store
    if extra["store_version"] != store.version and not force:
        raise TnqError(f"{run_dir} was trained on store version {extra['store_version']} but {store.root} is at "
                       f"{store.version}; pass `force` to continue on the new version")
    if extra["train_state"] is None:
        raise TnqError(f"{run_dir}/last.pt was written by an older tnq (checkpoint format 2), whose training state "
                       "this version cannot continue; start a new run (the trained model itself still loads)")
    trainer.load_state(extra["train_state"])


def write_inputs(config: TrainConfig, setup: Setup) -> None:
    """config.yaml, splits.npz and data.json."""
    out = config.out
    write_config(config, out / "config.yaml")
    save_splits(setup.splits, out / "splits.npz")
    record = {"store": str(config.store), "version": setup.store.version, "parent": setup.store.parent,
              "target": config.target, "columns": ["z", "pos", config.target, "total_charge", "multiplicity",
                                                   *config.partial_charges] + (["forces"] if setup.forces else []),
              "conformers": {name: int(mask.sum()) for name, mask in setup.selected.items()}}
    (out / "data.json").write_text(json.dumps(record, indent=2) + "\n")


def final_outputs(trainer: Trainer) -> dict | None:
    """The test report (eval_test.json) and predictions (test_predictions.npz) of best.pt and the figures;
    returns the test report (None when the test split is empty)."""
    config, setup, out = trainer.config, trainer.setup, trainer.config.out
    best = best_epoch(trainer.history, config.optim.monitor)
    potential = load_potential(out / "best.pt", trainer.env.device) if best is not None else None
    test = None if potential is None else predict_test(potential, setup.store, config, setup.forces, setup.splits,
                                                       trainer.env.device)
    draw_run_plots(out, trainer.history, None if best is None else best["epoch"], test, config.svg)
    if test is None:
        return None
    save_predictions(*test, out / PREDICTIONS)
    report = {**error_report(test[0]), "store_version": setup.store.version, "split": "test"}
    write_report(report, out / "eval_test.json")
    return report


def _run_config(run_dir: Path) -> TrainConfig:
    if not (run_dir / "metrics.csv").is_file():
        raise TnqError(f"{run_dir} holds no finished epoch (no metrics.csv); pass the run directory of a "
                       "tnq-train run")
    return resolve_config(run_dir / "config.yaml")


def read_report(run_dir: Path) -> dict:
    """The final report of the run in `run_dir` (see `summary.final_report`), from the files it wrote."""
    run_dir = Path(run_dir)
    config = _run_config(run_dir)
    test_file = run_dir / "eval_test.json"
    test = json.loads(test_file.read_text()) if test_file.is_file() else None
    return final_report(run_dir, read_metrics(run_dir / "metrics.csv"), config.optim.monitor, config.max_epochs,
                        test)


def redraw_plots(run_dir: Path, svg: bool = False) -> list[Path]:
    """Draw the figures of `run_dir` again from its files; returns them. A run without test_predictions.npz
    (written before that file existed) is predicted again on the store version recorded in data.json."""
    run_dir = Path(run_dir)
    config = _run_config(run_dir)
    history = read_metrics(run_dir / "metrics.csv")
    best = best_epoch(history, config.optim.monitor)
    test = None
    if (run_dir / PREDICTIONS).is_file():
        test = load_predictions(run_dir / PREDICTIONS)
    elif best is not None:
        data = json.loads((run_dir / "data.json").read_text())
        forces = read_checkpoint(run_dir / "best.pt")["extra"]["forces"]
        test = predict_test(load_potential(run_dir / "best.pt", "cpu"), open_store(data["store"], data["version"]),
                            config, forces, load_splits(run_dir / "splits.npz"), torch.device("cpu"))
    return draw_run_plots(run_dir, history, None if best is None else best["epoch"], test, svg)
