"""What every charge scheme shares: the unit of work, the kinds of failure and the charge-sum rule."""

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from tnq_core.errors import TnqError

#: Largest |sum(q) - total charge| per atom in e that is treated as rounding and spread evenly over the atoms
#: (sqm prints AM1 charges with 3-4 decimals, so AM1-BCC sums drift by up to a few 1e-4 e per atom).
RENORMALISE_TOLERANCE = 1e-3
#: Largest |sum(q) - total charge| in e accepted after renormalisation.
SUM_TOLERANCE = 1e-4


class ChargeFailure(Exception):
    """A molecule a scheme cannot do (no parameters for an element, SCF not converged, a chemistry error);
    ``str(err)`` is the reason recorded in the failures table. The only kind of failure that is cached."""


class TransientFailure(ChargeFailure):
    """A failure that says nothing about the molecule (a timeout, a crashed process): recorded, never cached,
    so a re-run retries it."""


class ToolFailure(Exception):
    """A failure of the environment or a tool, not of the molecule (a missing program, an import or API error):
    the run stops with it and nothing is cached for it."""


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
    #: The method of the level of theory, recorded per molecule in ``charges_method/<column scheme>``.
    method: ClassVar[str]

    def __init__(self, **params: object) -> None:
        self.params = params

    @property
    def needs_smiles(self) -> bool:
        """Whether a unit needs the molecule's SMILES (every scheme that is not computed from geometry alone)."""
        return self.geometry != "always"

    def level(self) -> tuple[str, str]:
        """(method, basis) of the charges this scheme computes; basis "" where none applies."""
        return self.method, ""

    def accepts_source(self, level: tuple[str, str]) -> bool:
        """Whether charges of `source_column` at `level` (method, basis) may stand for this scheme's own."""
        return True

    def tools(self) -> dict[str, str]:
        """Versions of the tools whose results this scheme returns (part of the cache key); raises `TnqError`
        naming what to install when one is missing."""
        return {}

    def check_available(self) -> None:
        """Raise `TnqError` naming the extra to install when a dependency is missing (called once, up front)."""
        self.tools()

    def warm_up(self) -> None:
        """Import heavy libraries or load models once per process, before the first unit."""

    def compute(self, unit: ChargeUnit) -> np.ndarray:
        """Charges (N,) in e in the unit's atom order; raise `ChargeFailure` for a molecule it cannot do."""
        raise NotImplementedError

    def compute_many(self, units: list[ChargeUnit]) -> list[np.ndarray | ChargeFailure | ToolFailure]:
        """Charges, or the failure, for each unit; batched schemes override this."""
        results: list[np.ndarray | ChargeFailure | ToolFailure] = []
        for unit in units:
            try:
                results.append(self.compute(unit))
            except Exception as err:  # noqa: BLE001  sorted into molecule and tool failures by as_failure
                results.append(as_failure(err))
        return results


def as_failure(err: Exception) -> ChargeFailure | ToolFailure:
    """`err` as a failure: a `ChargeFailure` (of the molecule) stays one; anything else is a `ToolFailure`
    whose message is one line naming the exception type (a `TnqError` keeps its own message)."""
    if isinstance(err, (ChargeFailure, ToolFailure)):
        return err
    return ToolFailure(str(err).strip().splitlines()[0] if isinstance(err, TnqError) else one_line(err))


def one_line(err: Exception) -> str:
    """The exception type and the first line of its message (at most 300 characters)."""
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:300]}"


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
