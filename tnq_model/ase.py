"""ASE calculator for a trained tnq checkpoint."""

from os import PathLike
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from tnq_core.errors import TnqError

from .checkpoint import load

#: The ``atoms.info`` keys of the state: total charge (e) and multiplicity 2S+1.
STATE_KEYS = ("charge", "multiplicity")


def _info(atoms: Atoms, key: str, needed: bool) -> Optional[int]:
    """``atoms.info[key]`` as an int; None when absent and not needed; a TnqError when absent and needed."""
    if key in atoms.info:
        value = float(atoms.info[key])
        if not value.is_integer():
            raise TnqError(f"atoms.info[{key!r}] = {atoms.info[key]} is not a whole number; set an integer")
        return int(value)
    if needed:
        raise TnqError(
            f"atoms.info[{key!r}] is missing for {atoms.get_chemical_formula()}; this model needs the state: "
            "set atoms.info['charge'] (total charge, e) and atoms.info['multiplicity'] (2S+1), "
            "e.g. 0 and 1 for a neutral singlet"
        )
    return None


class TNQCalculator(Calculator):
    """Energy (eV) and forces (eV/Å) from a tnq checkpoint.

    Reads the total charge from ``atoms.info["charge"]`` and the multiplicity 2S+1 from
    ``atoms.info["multiplicity"]`` (required whenever the model needs them: nothing is assumed), and
    partial charges, when the model uses them, from ``atoms.arrays["charges/<scheme>"]``. A change of any
    of these triggers a new calculation, as a change of positions does. Periodic systems are not supported.
    """

    implemented_properties = ["energy", "forces", "charges", "dipole"]  # the last two: models with learned charges

    def __init__(self, checkpoint: Union[str, PathLike], device: Union[str, torch.device] = "cpu", **kwargs: Any):
        super().__init__(**kwargs)
        self.predictor = load(checkpoint, device)

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """ASE's changes plus ``"charge"``, ``"multiplicity"`` and each partial-charge column that changed."""
        changes = super().check_state(atoms, tol)
        if self.atoms is None:
            return changes
        for key in STATE_KEYS:
            if atoms.info.get(key) != self.atoms.info.get(key):
                changes.append(key)
        for name in self.predictor.partial_charge_names:
            old, new = self.atoms.arrays.get(name), atoms.arrays.get(name)
            if (old is None) != (new is None) or (old is not None and not np.array_equal(old, new)):
                changes.append(name)
        return changes

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
        potential = self.predictor.potential
        charge = _info(atoms, "charge", potential.needs_charge)
        multiplicity = _info(atoms, "multiplicity", potential.needs_multiplicity)
        missing = [name for name in self.predictor.partial_charge_names if name not in atoms.arrays]
        if missing:
            raise TnqError(f"the model needs partial charges; set atoms.arrays[name] (e) for {missing}")
        charges = None
        if self.predictor.partial_charge_names:
            charges = np.stack([atoms.arrays[name] for name in self.predictor.partial_charge_names], axis=1)
        energy, forces = self.predictor.predict(atoms.numbers, atoms.positions, charge, multiplicity, charges)
        self.results = {"energy": energy, "forces": forces}
        if potential.learns_charges:  # get_charges() and get_dipole_moment() (e·Å, about the centre of mass)
            self.results["charges"], self.results["dipole"] = self.predictor.charges_and_dipole(
                atoms.numbers, atoms.positions, charge, multiplicity, charges)
