"""The test errors of each (total charge, multiplicity) state as bars, the error over all states as a line."""

import numpy as np
from matplotlib.figure import Figure

from ..evaluate import Predictions, error_metrics
from .states import states

#: (metric, panel title, axis label) of each panel; forces only when the predictions have them.
_PANELS = (("energy_mae_meV", "Energy MAE per conformer", "MAE (meV)"),
           ("force_mae_meV_per_A", "Force MAE per component", "MAE (meV/Å)"))


def errors_by_state_figure(pred: Predictions) -> Figure:
    """Bars of the energy (and force) MAE per state in the state colours, labelled with the value and the number
    of conformers; a dashed line at the MAE over all states."""
    found = states(pred)
    metrics = [error_metrics(pred, state.conformers) for state in found]
    overall = error_metrics(pred, np.ones(len(pred.energy_true), bool))
    panels = [panel for panel in _PANELS if panel[0] in overall]
    fig = Figure(figsize=(max(4.5, 1.1 * len(found) + 2) * len(panels), 4.5), layout="constrained")
    positions = np.arange(len(found))
    for ax, (key, title, label) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        bars = ax.bar(positions, [m[key] for m in metrics], color=[state.color for state in found])
        ax.bar_label(bars, labels=[f"{m[key]:.1f}\n{m['n_conformers']} conf." for m in metrics], fontsize=8,
                     padding=2, bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
        unit = label[label.index("(") + 1:-1]
        ax.axhline(overall[key], color="black", linestyle="--", linewidth=1, zorder=0,
                   label=f"all states: {overall[key]:.1f} {unit}")
        ax.set_xticks(positions, [state.name.replace(" (", "\n(") for state in found], fontsize=8)
        ax.set(title=title, ylabel=label)
        ax.margins(y=0.15)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle("best.pt on the test split, by (total charge, multiplicity)", fontsize=9)
    return fig
