"""Predictions of a trained potential on one split of a store, and their errors by total charge and multiplicity.

Energy errors are per conformer in meV (and meV/atom: the error divided by the atom count); force errors are
over Cartesian components in meV/Å. Stores without forces give energy errors only.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tnq_core.errors import TnqError
from tnq_data.store import open_store
from tnq_data.store.reader import Store

from .checkpoint import load_potential, read_checkpoint
from .config import TrainConfig
from .data import StoreBatches, potential_inputs, to_device, usable_conformers
from .potential import Potential
from .splits import SPLITS, conformer_mask, load_splits


@dataclass
class Predictions:
    """Per-conformer (C,) energies in eV with their state, and per-atom (A, 3) forces in eV/Å (None without)."""

    energy_true: np.ndarray
    energy_pred: np.ndarray
    n_atoms: np.ndarray
    total_charge: np.ndarray
    multiplicity: np.ndarray
    force_true: np.ndarray | None
    force_pred: np.ndarray | None


def predict(potential: Potential, batches: StoreBatches, device: torch.device) -> Predictions:
    """Energies (and forces when `batches` serves them) predicted for every conformer of `batches`."""
    dtype = next(potential.parameters()).dtype
    columns: dict[str, list[np.ndarray]] = {}
    for raw in batches:
        batch = to_device(raw, device, dtype)
        args = potential_inputs(batch)
        if "forces" in batch:
            energy, forces = potential.energy_and_forces(*args)
            columns.setdefault("force_pred", []).append(forces.detach().cpu().double().numpy())
            columns.setdefault("force_true", []).append(raw["forces"].double().numpy())
        else:
            with torch.no_grad():
                energy = potential(*args)
        columns.setdefault("energy_pred", []).append(energy.detach().cpu().double().numpy())
        for name in ("energy", "n_atoms", "total_charge", "multiplicity"):
            columns.setdefault(name, []).append(raw[name].numpy())
    if "energy" not in columns:
        raise TnqError(f"no conformers to evaluate in {batches.store.root}; is the split empty?")
    joined = {name: np.concatenate(parts) for name, parts in columns.items()}
    return Predictions(joined["energy"], joined["energy_pred"], joined["n_atoms"], joined["total_charge"],
                       joined["multiplicity"], joined.get("force_true"), joined.get("force_pred"))


def error_metrics(pred: Predictions, conformers: np.ndarray) -> dict[str, float]:
    """Energy and force MAE/RMSE (meV, meV/atom, meV/Å) over the conformers where `conformers` (C,) is True."""
    error = 1000.0 * (pred.energy_pred - pred.energy_true)[conformers]
    per_atom = error / pred.n_atoms[conformers]
    metrics = {"energy_mae_meV": float(np.abs(error).mean()), "energy_rmse_meV": float(np.sqrt((error**2).mean())),
               "energy_mae_meV_per_atom": float(np.abs(per_atom).mean()),
               "energy_rmse_meV_per_atom": float(np.sqrt((per_atom**2).mean())), "n_conformers": int(conformers.sum())}
    if pred.force_true is not None:
        atoms = np.repeat(conformers, pred.n_atoms)
        force_error = 1000.0 * (pred.force_pred - pred.force_true)[atoms]
        metrics["force_mae_meV_per_A"] = float(np.abs(force_error).mean())
        metrics["force_rmse_meV_per_A"] = float(np.sqrt((force_error**2).mean()))
    return metrics


def error_report(pred: Predictions) -> dict[str, dict]:
    """Metrics overall, by total charge and by multiplicity (keys are the values as strings)."""
    def grouped(values: np.ndarray) -> dict[str, dict]:
        return {str(int(v)): error_metrics(pred, values == v) for v in np.unique(values)}

    return {"overall": error_metrics(pred, np.ones(len(pred.energy_true), bool)),
            "by_total_charge": grouped(pred.total_charge), "by_multiplicity": grouped(pred.multiplicity)}


def split_batches(store: Store, config: TrainConfig, split: str, forces: bool, splits: dict[str, np.ndarray]) -> StoreBatches:
    """Unshuffled batches of `split` of the opened store version, with the columns the run trained on."""
    if len(splits[split]) and splits[split].max() >= store.n_molecules:
        raise TnqError(f"{store.root} has {store.n_molecules} molecules but the run's {split} split refers to "
                       f"molecule {splits[split].max()}; evaluate on the store the run was trained on")
    selected = conformer_mask(store.column("molecule"), splits[split])
    selected &= usable_conformers(store, config.partial_charges, config.target)
    return StoreBatches(store, selected, config.batch_size, target=config.target,
                        partial_charges=config.partial_charges, forces=forces, shuffle=False)


def evaluate_run(run_dir: Path, store_path: Path, split: str = "test", checkpoint: str = "best.pt",
                 device: str = "cpu") -> dict:
    """The error report of the run's `checkpoint` on `split` of the store version the run was trained on.

    The store at `store_path` is opened once, at that version (whatever its HEAD is now), so the metrics
    and the version they name always agree; a store that does not hold it is an error.
    """
    if split not in SPLITS:
        raise TnqError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    run_dir = Path(run_dir)
    extra = read_checkpoint(run_dir / checkpoint)["extra"]
    config = TrainConfig.model_validate(extra["config"])
    trained_on = extra["store_version"]
    try:
        store = open_store(store_path, trained_on)
    except TnqError as err:
        raise TnqError(f"{run_dir} was trained on version {trained_on}, which {store_path} does not hold ({err}); "
                       "evaluate on the store the run was trained on") from None
    batches = split_batches(store, config, split, extra["forces"], load_splits(run_dir / "splits.npz"))
    report = error_report(predict(load_potential(run_dir / checkpoint, device), batches, torch.device(device)))
    return {**report, "store_version": store.version, "trained_on_store_version": trained_on,
            "split": split, "checkpoint": checkpoint}


def write_report(report: dict, path: Path) -> None:
    """Save an error report as indented JSON."""
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
