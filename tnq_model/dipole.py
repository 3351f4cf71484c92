"""The molecular dipole of per-atom charges about each molecule's centre of mass (the store's `dipole` column)."""

import torch
from ase.data import atomic_masses
from torch import Tensor

#: Atomic masses (u) indexed by atomic number, as ASE tabulates them.
_MASSES = torch.from_numpy(atomic_masses.copy())


def molecular_dipole(charges: Tensor, pos: Tensor, z: Tensor, batch: Tensor, num_molecules: int) -> Tensor:
    """(B, 3) dipoles in e·Å: sum_i q_i (r_i - R_com) per molecule.

    charges (N,) e, pos (N, 3) Å, z (N,) atomic numbers, batch (N,) molecule index; R_com is the mass-weighted
    mean position (ASE masses), so the dipole is defined (origin-independent) for charged molecules too.
    """
    masses = _MASSES.to(pos.device, pos.dtype)[z]
    total = pos.new_zeros(num_molecules).index_add(0, batch, masses)
    com = pos.new_zeros(num_molecules, 3).index_add(0, batch, masses[:, None] * pos) / total[:, None]
    return pos.new_zeros(num_molecules, 3).index_add(0, batch, charges.to(pos.dtype)[:, None] * (pos - com[batch]))
