"""Parity plots of the test split: predicted against reference energies and force components, one colour per
(total charge, multiplicity) state, with the MAE and RMSE of each state and of all in the legend."""

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..evaluate import Predictions, error_metrics
from .states import State, states

#: At most this many force components are drawn (a fixed random subset); the errors use all of them.
MAX_POINTS = 50_000


def _panel(ax: Axes, true: np.ndarray, pred: np.ndarray, groups: list[tuple[State, np.ndarray]],
           errors: list[tuple[float, float]], overall: tuple[float, float], unit: str) -> None:
    """Scatter `pred` against `true` per state (masks over the points) on square, equal axes with the diagonal."""
    for (state, mask), (mae, rmse) in zip(groups, errors):
        ax.scatter(true[mask], pred[mask], s=9, alpha=0.6, color=state.color, edgecolors="none", rasterized=True,
                   label=f"{state.name}: MAE {mae:.1f}, RMSE {rmse:.1f} {unit}")
    low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    pad = 0.05 * (high - low or 1.0)
    low, high = low - pad, high + pad
    ax.plot([low, high], [low, high], color="black", linewidth=0.8, zorder=0)
    ax.set(xlim=(low, high), ylim=(low, high), aspect="equal")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(5))
    ax.ticklabel_format(useOffset=False)
    ax.grid(alpha=0.3)
    legend = ax.legend(loc="upper left", fontsize=7, title=f"all: MAE {overall[0]:.1f}, RMSE {overall[1]:.1f} {unit}",
                       title_fontsize=8, frameon=True, markerscale=1.5)
    legend.get_frame().set_alpha(0.9)


def _sample(count: int) -> np.ndarray:
    """Indices of the points drawn: all, or a fixed random `MAX_POINTS` of them in order."""
    if count <= MAX_POINTS:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, MAX_POINTS, replace=False))


def parity_figure(pred: Predictions, reference: np.ndarray) -> Figure:
    """Energy panel: each conformer's energy minus its reference energy (`reference` (C,) eV: the fitted element
    and state references), errors in meV per conformer; force panel (when present): components in eV/Å,
    errors in meV/Å."""
    found = states(pred)
    metrics = [error_metrics(pred, state.conformers) for state in found]
    overall = error_metrics(pred, np.ones(len(pred.energy_true), bool))
    panels = 1 if pred.force_true is None else 2
    fig = Figure(figsize=(6.2 * panels, 6.8), layout="constrained")  # no pyplot: the backend is left alone
    axes = fig.subplots(1, panels, squeeze=False)[0]
    energy = axes[0]
    _panel(energy, pred.energy_true - reference, pred.energy_pred - reference,
           [(state, state.conformers) for state in found],
           [(m["energy_mae_meV"], m["energy_rmse_meV"]) for m in metrics],
           (overall["energy_mae_meV"], overall["energy_rmse_meV"]), "meV")
    energy.set(title=f"Energy, test split ({len(pred.energy_true)} conformers)",
               xlabel="target E − E_ref (eV)", ylabel="predicted E − E_ref (eV)")
    if pred.force_true is not None:
        atom_state = np.repeat(np.arange(len(pred.energy_true)), pred.n_atoms)
        shown = _sample(pred.force_true.size)
        component_state = np.repeat(atom_state, 3)[shown]
        groups = [(state, state.conformers[component_state]) for state in found]
        _panel(axes[1], pred.force_true.ravel()[shown], pred.force_pred.ravel()[shown], groups,
               [(m["force_mae_meV_per_A"], m["force_rmse_meV_per_A"]) for m in metrics],
               (overall["force_mae_meV_per_A"], overall["force_rmse_meV_per_A"]), "meV/Å")
        drawn = "" if len(shown) == pred.force_true.size else f", {len(shown):,} drawn"
        axes[1].set(title=f"Forces, test split ({pred.force_true.size:,} components{drawn})",
                    xlabel="target F component (eV/Å)", ylabel="predicted F component (eV/Å)")
    fig.suptitle("best.pt; colours: (total charge, multiplicity) states; E_ref: the fitted element and state "
                 "reference energies", fontsize=9)
    return fig
