"""PNG figures of a run: learning curves from the per-epoch metrics, parity plots of the test predictions."""

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .evaluate import Predictions


def learning_curves(history: list[dict], path: Path) -> None:
    """Training and validation loss and energy MAE per epoch (log scale)."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(9, 3.5))  # no pyplot: the process's matplotlib backend is left alone
    axes = fig.subplots(1, 2)
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "energy_mae_meV", "energy MAE (meV)")):
        for split in ("train", "val"):
            values = [row[f"{split}_{key}"] for row in history]
            if np.isfinite(values).any():
                ax.plot(epochs, values, marker=".", label=split)
        ax.set(xlabel="epoch", ylabel=label, yscale="log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _parity(ax: Axes, true: np.ndarray, pred: np.ndarray, label: str) -> None:
    ax.scatter(true, pred, s=4, alpha=0.5)
    low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=0.8)
    ax.set(xlabel=f"reference {label}", ylabel=f"predicted {label}")


def parity_plots(pred: Predictions, path: Path) -> None:
    """Predicted against reference energies per atom (eV/atom) and, when present, force components (eV/Å)."""
    panels = 1 if pred.force_true is None else 2
    fig = Figure(figsize=(4.5 * panels, 4))
    axes = fig.subplots(1, panels, squeeze=False)
    _parity(axes[0, 0], pred.energy_true / pred.n_atoms, pred.energy_pred / pred.n_atoms, "energy (eV/atom)")
    if pred.force_true is not None:
        _parity(axes[0, 1], pred.force_true.ravel(), pred.force_pred.ravel(), "force (eV/Å)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
