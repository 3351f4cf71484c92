"""Learning curves: energy MAE and force MAE per epoch, train and validation, on log axes."""

import math

from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, MaxNLocator

from ..summary import ENERGY, FORCE

_TITLES = {ENERGY[0]: "Energy MAE per conformer", FORCE[0]: "Force MAE per component"}


def learning_curves_figure(history: list[dict], best: int | None) -> Figure:
    """One panel per error (forces only when the run had them), train and val lines; `best` (the epoch of
    best.pt) marked by a dotted line."""
    epochs = [row["epoch"] for row in history]
    shown = [(name, unit) for name, _, unit in (ENERGY, FORCE)
             if any(math.isfinite(row[f"train_{name}"]) for row in history)]
    fig = Figure(figsize=(5.2 * len(shown), 4), layout="constrained")  # no pyplot: the backend is left alone
    for ax, (name, unit) in zip(fig.subplots(1, len(shown), squeeze=False)[0], shown):
        for split, style in (("train", "-"), ("val", "--")):
            values = [row[f"{split}_{name}"] for row in history]
            if any(math.isfinite(v) for v in values):
                ax.plot(epochs, values, style, marker="o", markersize=3, label=split)
        if best is not None:
            ax.axvline(best, color="grey", linestyle=":", linewidth=1, label=f"best.pt (epoch {best})")
        ax.set(title=_TITLES[name], xlabel="epoch", ylabel=f"MAE ({unit})", yscale="log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(LogFormatter())  # 600, not 6×10²
        ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(1.5, 0.5)))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("train: the training batches of each epoch; val: the averaged (EMA) weights after it",
                 fontsize=9)
    return fig
