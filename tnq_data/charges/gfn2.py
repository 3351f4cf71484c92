"""GFN2-xTB Mulliken charges with tblite, on each stored geometry, closed or open shell."""

import numpy as np

from tnq_data.charges.base import ChargeFailure, ChargeUnit, Scheme, conserve_charge
from tnq_data.units import BOHR_TO_ANGSTROM


class Gfn2(Scheme):
    """GFN2-xTB (Bannwarth et al. 2019) charges from a single point on every stored conformer.

    Open shells are spin-polarised by their unpaired electron count, ``uhf = multiplicity - 1``, so triplet
    carbenes and radicals work. Only the z, the geometry, the total charge and the multiplicity are used.
    """

    name = "gfn2"
    version = "1"
    geometry = "always"

    def warm_up(self) -> None:
        import tblite.interface  # noqa: F401

    def compute(self, unit: ChargeUnit) -> np.ndarray:
        from tblite.interface import Calculator

        if unit.positions is None:
            raise ChargeFailure("GFN2-xTB needs a geometry")
        calculator = Calculator("GFN2-xTB", np.asarray(unit.z, dtype=np.int64),
                                np.asarray(unit.positions, dtype=np.float64) / BOHR_TO_ANGSTROM,
                                charge=float(unit.total_charge), uhf=unit.multiplicity - 1)
        calculator.set("verbosity", 0)
        try:
            result = calculator.singlepoint()
        except RuntimeError as err:
            raise ChargeFailure(f"GFN2-xTB single point failed: {str(err).strip()[:300]}") from err
        return conserve_charge(result.get("charges"), unit.total_charge)
