"""Gasteiger-Marsili charges from RDKit."""

import numpy as np
from rdkit.Chem import rdPartialCharges

from tnq_data.charges.base import ChargeFailure, ChargeUnit, Scheme, conserve_charge
from tnq_data.charges.molecule import unit_mol
from tnq_data.charges.tools import package_versions


class Gasteiger(Scheme):
    """Iterative partial equalisation of orbital electronegativity (RDKit, 12 iterations); topology only."""

    name = "gasteiger"
    version = "1"
    method = "Gasteiger-Marsili"

    def tools(self) -> dict[str, str]:
        return package_versions("rdkit", needed_by=self.name)

    def compute(self, unit: ChargeUnit) -> np.ndarray:
        mol = unit_mol(unit.smiles, unit.z, unit.total_charge)
        rdPartialCharges.ComputeGasteigerCharges(mol, nIter=12, throwOnParamFailure=False)
        q = np.array([atom.GetDoubleProp("_GasteigerCharge") for atom in mol.GetAtoms()], dtype=np.float64)
        if not np.all(np.isfinite(q)):
            missing = sorted({a.GetSymbol() for a, v in zip(mol.GetAtoms(), q) if not np.isfinite(v)})
            raise ChargeFailure(f"Gasteiger has no parameters for {', '.join(missing)}")
        return conserve_charge(q, unit.total_charge)
