"""GFN2-xTB with tblite: the one calculator set-up, single points, atomic references and a short optimiser.

Every calculation runs on one OpenMP thread, so energies, gradients and charges are bitwise reproducible.
tblite is imported on first use, so importing this module does not load tblite's OpenMP runtime.
"""

import ctypes
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from tnq_core.errors import TnqError

__all__ = ["Gfn2Error", "atomic_reference_energy", "gfn2_calculator", "gfn2_optimise", "gfn2_result",
           "gfn2_singlepoint", "lbfgs", "single_threaded_openmp"]

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
    res = gfn2_result(numbers, positions_bohr, charge, uhf, label)
    return float(res.get("energy")), np.asarray(res.get("gradient")), np.asarray(res.get("charges"))


def gfn2_result(numbers: np.ndarray, positions_bohr: np.ndarray, charge: int, uhf: int, label: str) -> Any:
    """tblite's `Result` of a GFN2-xTB single point on one thread, as `gfn2_singlepoint` runs it; atomic units
    (e.g. ``res.get("dipole")``: (3,) e·bohr about the coordinate origin)."""
    try:  # tblite rejects some structures (atoms too close) already when the calculator is built
        calc = gfn2_calculator(numbers, positions_bohr, charge, uhf)
        with single_threaded_openmp():
            res = calc.singlepoint()
    except RuntimeError as err:
        raise Gfn2Error(f"GFN2-xTB failed on {label} (charge {charge}, {uhf} unpaired electrons): {err}; "
                        "check its atoms, charge and multiplicity", str(err).strip()) from err
    return res


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
    """GFN2-xTB (local) minimum (bohr) and its energy (hartree) from a start geometry (bohr), by `lbfgs`."""

    def energy_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        energy, grad, _ = gfn2_singlepoint(numbers, flat.reshape(-1, 3), charge, uhf, label)
        return energy, grad.ravel()

    x, energy = lbfgs(energy_and_gradient, np.asarray(xyz_bohr, np.float64).ravel(), max_steps)
    return x.reshape(-1, 3), energy


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """a·b as numpy's pairwise sum of the products: no BLAS, so no kernel or thread count changes a bit."""
    return float(np.sum(a * b))


def lbfgs(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, max_steps: int = 300,
          gtol: float = 1e-4, memory: int = 10, max_move: float = 0.3) -> tuple[np.ndarray, float]:
    """Minimum of `fun` (value, gradient) from x0 by L-BFGS with a backtracking (Armijo) line search.

    Stops when every gradient component is below `gtol`, after `max_steps`, or when no step lowers the value.
    Steps are capped at `max_move` per component (bohr for geometries). Only elementwise operations and
    pairwise sums: the path is bitwise the same on any machine, BLAS build or thread count (a library
    optimiser's is not, and it changes between versions), so sample files generated from it are too.
    """
    x = x0.copy()
    value, grad = fun(x)
    history: list[tuple[np.ndarray, np.ndarray, float]] = []  # (s, y, 1 / y·s), newest last
    for _ in range(max_steps):
        if np.max(np.abs(grad)) < gtol:
            break
        q, alphas = grad.copy(), []
        for s, y, rho in reversed(history):
            alphas.append(rho * _dot(s, q))
            q = q - alphas[-1] * y
        s_last, y_last, _ = history[-1] if history else (None, None, None)
        r = q * (_dot(s_last, y_last) / _dot(y_last, y_last) if history else 0.1 / np.max(np.abs(grad)))
        for (s, y, rho), alpha in zip(history, reversed(alphas)):
            r = r + s * (alpha - rho * _dot(y, r))
        direction = -r
        if _dot(direction, grad) >= 0:  # not a descent direction: forget the curvature and go downhill
            history.clear()
            direction = -grad * (0.1 / np.max(np.abs(grad)))
        direction = direction * min(1.0, max_move / np.max(np.abs(direction)))
        slope, t = _dot(grad, direction), 1.0
        while True:
            trial = x + t * direction
            trial_value, trial_grad = fun(trial)
            if trial_value <= value + 1e-4 * t * slope or t < 1e-4:
                break
            t *= 0.5
        if trial_value > value:
            break
        s, y = trial - x, trial_grad - grad
        if _dot(s, y) > 1e-12:
            history = [*history[-(memory - 1):], (s, y, 1.0 / _dot(y, s))]
        x, value, grad = trial, trial_value, trial_grad
    return x, value
