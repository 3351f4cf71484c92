"""Molecular dipoles about the centre of mass, so that they are defined for charged molecules too.

A dipole reported about the coordinate origin, mu_origin = sum_i q_i r_i (+ atomic dipoles), shifts by
Q * d when a molecule of total charge Q is translated by d. About the centre of mass R it does not:
mu_com = mu_origin - Q * R. Masses are ASE's standard atomic weights (`ase.data.atomic_masses`, IUPAC 2016).
"""

import numpy as np
from ase.data import atomic_masses


def centre_of_mass(z: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Centres of mass (M, 3) of conformers `pos` (M, N, 3) of atoms `z` (N,), in the unit of `pos`."""
    masses = atomic_masses[np.asarray(z, dtype=np.int64)]
    return np.einsum("n,mnk->mk", masses, np.asarray(pos, dtype=np.float64)) / masses.sum()


def dipole_about_centre_of_mass(dipole_origin: np.ndarray, z: np.ndarray, pos: np.ndarray,
                                total_charge: float) -> np.ndarray:
    """mu_origin (M, 3) in e·Å, taken about the coordinate origin, moved to each conformer's centre of mass.

    `pos` (M, N, 3) in Å, `z` (N,), `total_charge` in e; returns float64 (M, 3) in e·Å.
    """
    return np.asarray(dipole_origin, dtype=np.float64) - total_charge * centre_of_mass(z, pos)
