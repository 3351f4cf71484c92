"""The run directory: inputs written at the start, metrics and checkpoints per epoch, resuming, and the final
test report and plots. Only rank 0 writes."""

import csv
import json
from importlib.metadata import version as package_version
from pathlib import Path

from tnq_core.errors import TnqError

from .checkpoint import load_potential, read_checkpoint, save_checkpoint
from .config import TrainConfig, write_config
from .evaluate import error_report, predict, split_batches, write_report
from .plots import learning_curves, parity_plots
from .setup import Setup
from .splits import save_splits
from .trainer import Trainer


def write_metrics(history: list[dict], path: Path) -> None:
    """The per-epoch metrics as CSV, one row per epoch."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


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


def final_outputs(trainer: Trainer) -> None:
    """learning_curves.png, and the test report (eval_test.json) and parity.png of best.pt."""
    out = trainer.config.out
    learning_curves(trainer.history, out / "learning_curves.png")
    batches = split_batches(trainer.setup.store, trainer.config, "test", trainer.setup.forces, trainer.setup.splits)
    if not batches.selected.any():
        return
    predictions = predict(load_potential(out / "best.pt", trainer.env.device), batches, trainer.env.device)
    parity_plots(predictions, out / "parity.png")
    write_report({**error_report(predictions), "store_version": trainer.setup.store.version, "split": "test"},
                 out / "eval_test.json")
