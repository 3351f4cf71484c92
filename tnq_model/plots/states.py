"""The (total charge, multiplicity) states of a set of predictions, with the name and colour every figure uses."""

from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps

from ..evaluate import Predictions

_CHARGES = {-2: "dianion", -1: "anion", 0: "neutral", 1: "cation", 2: "dication"}
_MULTIPLICITIES = {1: "singlet", 2: "doublet", 3: "triplet", 4: "quartet", 5: "quintet"}


@dataclass
class State:
    """One (total charge, multiplicity) state: its conformers (C,) bool, a name and a colour (RGBA)."""

    charge: int
    multiplicity: int
    conformers: np.ndarray
    color: tuple[float, float, float, float]

    @property
    def name(self) -> str:
        """E.g. `cation doublet (+1, 2)`: the state in words, then (total charge, multiplicity)."""
        charge = _CHARGES.get(self.charge, f"charge {self.charge:+d}")
        multiplicity = _MULTIPLICITIES.get(self.multiplicity, f"multiplicity {self.multiplicity}")
        signed = f"{self.charge:+d}" if self.charge else "0"
        return f"{charge} {multiplicity} ({signed}, {self.multiplicity})"


def states(pred: Predictions) -> list[State]:
    """The states present in `pred`, sorted by multiplicity then charge, each with a distinct colour."""
    pairs = np.stack([pred.multiplicity.astype(np.int64), pred.total_charge.astype(np.int64)], axis=1)
    present = np.unique(pairs, axis=0)
    palette = colormaps["tab10" if len(present) <= 10 else "tab20"]
    return [State(int(charge), int(multiplicity), (pairs == (multiplicity, charge)).all(axis=1),
                  palette(index % palette.N))
            for index, (multiplicity, charge) in enumerate(present)]
