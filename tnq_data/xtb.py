"""GFN2-xTB with tblite: the one calculator set-up, single points, atomic references and a short optimiser.

Every calculation runs on one OpenMP thread, so energies, gradients and charges are bitwise reproducible.
tblite (and scipy) are imported on first use, so importing this module does not load tblite's OpenMP runtime.
"""

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from tnq_core.errors import TnqError

__all__ = ["Gfn2Error", "atomic_reference_energy", "gfn2_calculator", "gfn2_optimise", "gfn2_singlepoint",
           "single_threaded_openmp"]

#: Unpaired electrons of the ground state of an isolated atom or ion with n electrons (n = 1..18, Hund's rule).
_UNPAIRED_BY_ELECTRONS = (0, 1, 0, 1, 0, 1, 2, 3, 2, 1, 0, 1, 0, 1, 2, 3, 2, 1, 0)


class Gfn2Error(TnqError):
    """A GFN2-xTB single point failed; `reason` is tblite's own message."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@contextmanager
def single_threaded_openmp() -> Iterator[None]:
    """Run tblite on one OpenMP thread: its threaded gradient sums are not bitwise reproducible.

    Restores the previous thread count afterwards. Without GNU OpenMP (tblite wheels for Linux link
    libgomp) nothing is changed and gradients may differ in their last bits between runs.
    """
    try:
        gomp = ctypes.CDLL("libgomp.so.1")
    except OSError:
        yield
        return
    previous = gomp.omp_get_max_threads()
    gomp.omp_set_num_threads(1)
    try:
        yield
    finally:
        gomp.omp_set_num_threads(previous)


def gfn2_calculator(numbers: np.ndarray, positions_bohr: np.ndarray, charge: int, uhf: int) -> Any:
    """A silent tblite GFN2-xTB `Calculator` for atomic numbers (N,), positions (N, 3) in bohr, total charge (e)
    and `uhf` unpaired electrons. Run it inside `single_threaded_openmp` (as `gfn2_singlepoint` does)."""
    from tblite.interface import Calculator

    calc = Calculator("GFN2-xTB", np.asarray(numbers), np.asarray(positions_bohr, dtype=np.float64),
                      charge=float(charge), uhf=int(uhf))
    calc.set("verbosity", 0)
    return calc


def gfn2_singlepoint(numbers: np.ndarray, positions_bohr: np.ndarray, charge: int, uhf: int,
                     label: str) -> tuple[float, np.ndarray, np.ndarray]:
    """GFN2-xTB energy (hartree), gradient (hartree/bohr, (N,3)) and partial charges (e, (N,)), on one thread.

    `uhf` is the number of unpaired electrons; `label` names the structure in the `Gfn2Error` message.
    """
    try:  # tblite rejects some structures (atoms too close) already when the calculator is built
        calc = gfn2_calculator(numbers, positions_bohr, charge, uhf)
        with single_threaded_openmp():
            res = calc.singlepoint()
    except RuntimeError as err:
        raise Gfn2Error(f"GFN2-xTB failed on {label} (charge {charge}, {uhf} unpaired electrons): {err}; "
                        "check its atoms, charge and multiplicity", str(err).strip()) from err
    return float(res.get("energy")), np.asarray(res.get("gradient")), np.asarray(res.get("charges"))


def atomic_reference_energy(atomic_number: int, formal_charge: int) -> float:
    """GFN2-xTB energy (hartree) of the isolated atom or ion in its Hund's-rule ground spin state."""
    electrons = atomic_number - formal_charge
    if not 0 <= electrons < len(_UNPAIRED_BY_ELECTRONS):
        raise TnqError(f"no atomic reference for Z={atomic_number} with charge {formal_charge}; "
                       "sample molecules are limited to elements H to Ar")
    if electrons == 0:  # a bare proton has no electrons and no electronic energy
        return 0.0
    energy, _, _ = gfn2_singlepoint(np.array([atomic_number]), np.zeros((1, 3)), formal_charge,
                                    _UNPAIRED_BY_ELECTRONS[electrons], f"atom Z={atomic_number}{formal_charge:+d}")
    return energy


def gfn2_optimise(numbers: np.ndarray, xyz_bohr: np.ndarray, charge: int, uhf: int, label: str,
                  max_steps: int = 300) -> tuple[np.ndarray, float]:
    """GFN2-xTB (local) minimum (bohr) and its energy (hartree) by L-BFGS from a start geometry (bohr)."""
    from scipy.optimize import minimize

    def energy_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        energy, grad, _ = gfn2_singlepoint(numbers, flat.reshape(-1, 3), charge, uhf, label)
        return energy, grad.ravel()

    result = minimize(energy_and_gradient, xyz_bohr.ravel(), jac=True, method="L-BFGS-B",
                      options={"maxiter": max_steps, "gtol": 1e-4})
    return result.x.reshape(-1, 3), float(result.fun)
