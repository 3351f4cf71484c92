"""The figures of a run (PNG, and SVG on request), drawn with matplotlib's object API and never pyplot, so
importing or using tnq leaves the process's matplotlib backend alone.

learning_curves: energy and force MAE per epoch; parity: predicted against reference energies and forces of
the test split by state; errors_by_state: the test MAE of each (total charge, multiplicity) state.
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..evaluate import Predictions
from .by_state import errors_by_state_figure
from .curves import learning_curves_figure
from .parity import parity_figure

__all__ = ["draw_run_plots", "errors_by_state_figure", "learning_curves_figure", "parity_figure", "save_figure"]


def save_figure(fig: Figure, path: Path, svg: bool = False) -> list[Path]:
    """Write `fig` to `path` (.png, 150 dpi) and with `svg` also next to it as .svg; returns the files."""
    written = [Path(path).with_suffix(".png")] + ([Path(path).with_suffix(".svg")] if svg else [])
    for file in written:
        fig.savefig(file, dpi=150)
    return written


def draw_run_plots(out: Path, history: list[dict], best: int | None,
                   test: tuple[Predictions, np.ndarray] | None, svg: bool = False) -> list[Path]:
    """The figures of the run directory `out`: learning curves from `history` (`best`: the epoch of best.pt) and,
    with `test` (predictions and reference energies, see `parity_figure`), parity and errors by state."""
    written = save_figure(learning_curves_figure(history, best), out / "learning_curves", svg)
    if test is not None:
        written += save_figure(parity_figure(*test), out / "parity", svg)
        written += save_figure(errors_by_state_figure(test[0]), out / "errors_by_state", svg)
    return written
