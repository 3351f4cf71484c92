"""MBIS charges (minimal basis iterative stockholder) taken from the source dataset.

SPICE curation stores its MBIS charges as ``charges/mbis`` (NaN for molecules without them). This scheme
checks and keeps them, conformer by conformer; molecules without them are failures (or go to a fallback).
Computing the missing ones (``--compute`` with pyscf and horton-part at ``--method/--basis``) is the optional
extra ``mbis`` and is not implemented yet: horton-part's grid dependency does not import with SciPy >= 1.15.
"""

import numpy as np

from tnq_data.charges.base import ChargeFailure, ChargeUnit, Scheme
from tnq_data.errors import TnqError


class Mbis(Scheme):
    """MBIS charges of the source (SPICE: ωB97M-D3BJ/def2-TZVPPD), per conformer, never recomputed here."""

    name = "mbis"
    version = "1"
    geometry = "always"
    source_column = "charges/mbis"

    def check_available(self) -> None:
        if self.params.get("compute"):
            raise TnqError("mbis --compute is not available yet (it needs the optional extra mbis: pyscf and "
                           "horton-part); drop --compute, or use --fallback gfn2 for molecules without MBIS charges")

    def compute(self, unit: ChargeUnit) -> np.ndarray:
        raise ChargeFailure("no MBIS charges in the source for this conformer")
