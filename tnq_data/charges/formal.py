"""Formal charges written in the SMILES, as partial charges."""

import numpy as np

from tnq_data.charges.base import ChargeUnit, Scheme
from tnq_data.charges.molecule import unit_mol


class Formal(Scheme):
    """Each atom carries its integer formal charge (e); exact, defined for every parseable SMILES."""

    name = "formal"
    version = "1"
    method = "formal"

    def compute(self, unit: ChargeUnit) -> np.ndarray:
        mol = unit_mol(unit.smiles, unit.z, unit.total_charge)
        return np.array([atom.GetFormalCharge() for atom in mol.GetAtoms()], dtype=np.float64)
