"""ASE calculator for a trained tnq checkpoint."""

from os import PathLike
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from tnq_data.errors import TnqError

from .checkpoint import load


def _required_info(atoms: Atoms, key: str) -> int:
    """``atoms.info[key]`` as an int, or a TnqError: tnq never assumes a neutral singlet."""
    if key not in atoms.info:
        raise TnqError(
            f"atoms.info[{key!r}] is missing for {atoms.get_chemical_formula()}; set it, e.g. "
            f"atoms.info['charge'] = 0 and atoms.info['multiplicity'] = 1 (2S+1)"
        )
    return int(atoms.info[key])


class TNQCalculator(Calculator):
    """Energy (eV) and forces (eV/Å) from a tnq checkpoint.

    Reads the total charge from ``atoms.info["charge"]`` and the multiplicity 2S+1 from
    ``atoms.info["multiplicity"]`` (both required), and partial charges, when the model uses them,
    from ``atoms.arrays["charges/<scheme>"]``. Periodic systems are not supported.
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, checkpoint: Union[str, PathLike], device: Union[str, torch.device] = "cpu", **kwargs: Any):
        super().__init__(**kwargs)
        self.predictor = load(checkpoint, device)

    def calculate(
        self,
        atoms: Optional[Atoms] = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = tuple(all_changes),
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if atoms.pbc.any():
            raise TnqError("TNQCalculator handles molecules only; set atoms.pbc = False")
        charge, multiplicity = _required_info(atoms, "charge"), _required_info(atoms, "multiplicity")
        missing = [name for name in self.predictor.partial_charge_names if name not in atoms.arrays]
        if missing:
            raise TnqError(f"the model needs partial charges; set atoms.arrays[name] (e) for {missing}")
        charges = None
        if self.predictor.partial_charge_names:
            charges = np.stack([atoms.arrays[name] for name in self.predictor.partial_charge_names], axis=1)
        energy, forces = self.predictor.predict(
            atoms.numbers,
            atoms.positions,
            charge,
            multiplicity,
            charges,
        )
        self.results = {"energy": energy, "forces": forces}
