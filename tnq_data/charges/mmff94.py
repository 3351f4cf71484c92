"""MMFF94 partial charges from RDKit."""

import numpy as np
from rdkit.Chem import rdForceFieldHelpers

from tnq_data.charges.base import ChargeFailure, ChargeUnit, Scheme, conserve_charge
from tnq_data.charges.molecule import unit_mol
from tnq_data.charges.tools import package_versions


class Mmff94(Scheme):
    """MMFF94 bond-charge-increment charges from the MMFF atom types (RDKit); topology only."""

    name = "mmff94"
    version = "1"
    method = "MMFF94"

    def tools(self) -> dict[str, str]:
        return package_versions("rdkit", needed_by=self.name)

    def compute(self, unit: ChargeUnit) -> np.ndarray:
        mol = unit_mol(unit.smiles, unit.z, unit.total_charge)
        props = rdForceFieldHelpers.MMFFGetMoleculeProperties(mol, mmffVariant="MMFF94")
        if props is None:
            raise ChargeFailure("MMFF94 has no atom types for this molecule")
        q = np.array([props.GetMMFFPartialCharge(i) for i in range(mol.GetNumAtoms())], dtype=np.float64)
        return conserve_charge(q, unit.total_charge)
