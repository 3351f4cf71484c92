"""The predictions of best.pt on the test split that a run keeps for its figures (test_predictions.npz), with
each conformer's reference energy (the fitted element and state references, eV), so the figures can show
energies relative to them and `tnq-train plot` can redraw without the store."""

from pathlib import Path

import numpy as np
import torch

from tnq_data.store.reader import Store

from .config import TrainConfig
from .data import StoreBatches, to_device
from .evaluate import Predictions, predict, split_batches
from .potential import Potential

#: The arrays of the file: the fields of `Predictions`, then `energy_reference` (C,) eV.
FIELDS = ("energy_true", "energy_pred", "n_atoms", "total_charge", "multiplicity", "force_true", "force_pred")


def reference_energies(potential: Potential, batches: StoreBatches, device: torch.device) -> np.ndarray:
    """(C,) float64 eV: the potential's reference energy of every conformer of `batches`, in their order."""
    parts = []
    for raw in batches:
        batch = to_device(raw, device, torch.float64)
        parts.append(potential.reference_energy(batch["z"], batch["batch"], batch["total_charge"],
                                                batch["multiplicity"]).cpu().numpy())
    return np.concatenate(parts)


def predict_test(potential: Potential, store: Store, config: TrainConfig, forces: bool,
                 splits: dict[str, np.ndarray], device: torch.device) -> tuple[Predictions, np.ndarray] | None:
    """Predictions and reference energies (C,) eV of `potential` on the test split; None when it is empty."""
    batches = split_batches(store, config, "test", forces, splits)
    if not batches.selected.any():
        return None
    return predict(potential, batches, device), reference_energies(potential, batches, device)


def save_predictions(pred: Predictions, reference: np.ndarray, path: Path) -> None:
    """Write `pred` and `reference` as an uncompressed npz (force arrays only when present)."""
    arrays = {name: getattr(pred, name) for name in FIELDS if getattr(pred, name) is not None}
    np.savez(path, **arrays, energy_reference=reference)


def load_predictions(path: Path) -> tuple[Predictions, np.ndarray]:
    """What `save_predictions` wrote."""
    with np.load(path) as data:
        pred = Predictions(**{name: data.get(name) for name in FIELDS})
        return pred, data["energy_reference"]
