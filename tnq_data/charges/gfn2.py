"""GFN2-xTB Mulliken charges with tblite, on each stored geometry, closed or open shell."""

import numpy as np

from tnq_data.charges.base import ChargeFailure, ChargeUnit, Scheme, conserve_charge
from tnq_data.charges.tools import package_versions
from tnq_data.units import BOHR_TO_ANGSTROM
from tnq_data.xtb import Gfn2Error, gfn2_singlepoint


class Gfn2(Scheme):
    """GFN2-xTB (Bannwarth et al. 2019) charges from a single point on every stored conformer.

    Open shells are spin-polarised by their unpaired electron count, ``uhf = multiplicity - 1``, so triplet
    carbenes and radicals work. Only the z, the geometry, the total charge and the multiplicity are used.
    The single point runs on one OpenMP thread (`tnq_data.xtb`), so the charges are bitwise reproducible.
    """

    name = "gfn2"
    version = "1"
    geometry = "always"
    method = "GFN2-xTB"

    def tools(self) -> dict[str, str]:
        return package_versions("tblite", needed_by=self.name)

    def warm_up(self) -> None:
        import tblite.interface  # noqa: F401

    def compute(self, unit: ChargeUnit) -> np.ndarray:
        if unit.positions is None:
            raise ChargeFailure("GFN2-xTB needs a geometry")
        try:
            _, _, charges = gfn2_singlepoint(np.asarray(unit.z, dtype=np.int64),
                                             np.asarray(unit.positions, dtype=np.float64) / BOHR_TO_ANGSTROM,
                                             unit.total_charge, unit.multiplicity - 1, "a stored conformer")
        except Gfn2Error as err:
            raise ChargeFailure(f"GFN2-xTB single point failed: {err.reason[:300]}") from err
        return conserve_charge(charges, unit.total_charge)
