"""What every charge scheme shares: the unit of work, the failure type and the charge-sum rule."""

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

#: Largest |sum(q) - total charge| per atom in e that is treated as rounding and spread evenly over the atoms
#: (sqm prints AM1 charges with 3-4 decimals, so AM1-BCC sums drift by up to a few 1e-4 e per atom).
RENORMALISE_TOLERANCE = 1e-3
#: Largest |sum(q) - total charge| in e accepted after renormalisation.
SUM_TOLERANCE = 1e-4


class ChargeFailure(Exception):
    """A molecule a scheme cannot do; ``str(err)`` is the reason recorded in the failures table."""


class TransientFailure(ChargeFailure):
    """A failure that says nothing about the molecule (a timeout, a crashed process): never cached."""


@dataclass(frozen=True)
class ChargeUnit:
    """One computation: a molecule with one (total charge, multiplicity) and optionally one geometry.

    `smiles` is the stored SMILES (atom-mapped in store order, or unmapped in RDKit order), `z` (N,) the stored
    atomic numbers, `positions` (N, 3) in Å for geometry-dependent schemes, else None.
    """

    smiles: str
    z: np.ndarray
    total_charge: int
    multiplicity: int
    positions: np.ndarray | None = None


class Scheme:
    """A partial-charge scheme: subclasses set the class attributes and implement `compute`.

    `geometry` says whether charges depend on a geometry: "never" (from the SMILES), "optional" (from the
    SMILES by default, per stored conformer on request) or "always" (per stored conformer).
    """

    name: ClassVar[str]
    version: ClassVar[str]
    geometry: ClassVar[Literal["never", "optional", "always"]] = "never"
    #: Units per dask task; batched schemes want more.
    chunk_size: ClassVar[int] = 4
    #: A store column whose finite values are taken as this scheme's charges instead of computing them.
    source_column: ClassVar[str | None] = None

    def __init__(self, **params: object) -> None:
        self.params = params

    def check_available(self) -> None:
        """Raise `TnqError` naming the extra to install when a dependency is missing (called once, up front)."""

    def warm_up(self) -> None:
        """Import heavy libraries or load models once per process, before the first unit."""

    def compute(self, unit: ChargeUnit) -> np.ndarray:
        """Charges (N,) in e in the unit's atom order; raise `ChargeFailure` for a molecule it cannot do."""
        raise NotImplementedError

    def compute_many(self, units: list[ChargeUnit]) -> list[np.ndarray | ChargeFailure]:
        """Charges or the failure for each unit; batched schemes override this."""
        results: list[np.ndarray | ChargeFailure] = []
        for unit in units:
            try:
                results.append(self.compute(unit))
            except Exception as err:  # noqa: BLE001  any failure of one molecule is recorded, never fatal
                results.append(as_failure(err))
        return results


def as_failure(err: Exception) -> ChargeFailure:
    """`err` as a `ChargeFailure` whose reason is one line naming the exception type when it is foreign."""
    if isinstance(err, ChargeFailure):
        return err
    first_line = (str(err).strip().splitlines() or [""])[0][:300]
    return ChargeFailure(f"{type(err).__name__}: {first_line}")


def conserve_charge(charges: np.ndarray, total_charge: int) -> np.ndarray:
    """Return `charges` (N,) as float64 summing to `total_charge` (e).

    A deviation up to `RENORMALISE_TOLERANCE` per atom is rounding and is spread evenly over the atoms;
    NaN, infinite values or a larger deviation raise `ChargeFailure`.
    """
    q = np.asarray(charges, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(q)):
        raise ChargeFailure("non-finite charges")
    excess = float(q.sum()) - total_charge
    if abs(excess) > RENORMALISE_TOLERANCE * q.size:
        raise ChargeFailure(f"charges sum to {q.sum():.4f} e, not the total charge {total_charge} e")
    q = q - excess / q.size
    if abs(float(q.sum()) - total_charge) > SUM_TOLERANCE:
        raise ChargeFailure(f"charges sum to {q.sum():.6f} e after renormalisation, not {total_charge} e")
    return q
