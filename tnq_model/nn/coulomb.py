"""Coulomb energy of per-atom charges within each molecule, all pairs, damped at short range."""

import torch
from torch import Tensor, nn

from .errors import ModelInputError
from .pairs import molecule_pairs
from .switch import smooth_switch
from .zbl import COULOMB_CONSTANT


def damped_inverse_distance(dist: Tensor, switch_on: float, switch_off: float) -> Tensor:
    """f(r) = s(r) / sqrt(r^2 + 1 Å^2) + (1 - s(r)) / r in 1/Å, s the smooth switch from 1 to 0 (switch.py).

    Below ``switch_on`` f is the damped 1/sqrt(r^2 + 1), finite at r = 0; from ``switch_off`` on it is
    exactly 1/r (SpookyNet's form, there between 1/4 and 3/4 of the short-range cutoff).
    """
    s = smooth_switch(dist, switch_on, switch_off)
    return s * torch.rsqrt(dist * dist + 1.0) + (1.0 - s) / dist


class DampedCoulomb(nn.Module):
    """Per-molecule E = k_e sum_{i<j} q_i q_j f(r_ij) in eV, k_e = 14.399645 eV Å, q in e, r in Å.

    Every pair of atoms of a molecule counts, however far apart (no cutoff): O(n^2) pairs per molecule,
    built for the whole batch at once (pairs.py); atoms of different molecules never interact. f damps
    1/r at short range, where the local network and ZBL describe the physics (``damped_inverse_distance``).

    Args:
        switch_on: in Å, the damped form is used up to here.
        switch_off: in Å (> switch_on), plain 1/r from here. The defaults are SpookyNet's 1/4 and 3/4 of
            a 5 Å short-range cutoff.
    """

    def __init__(self, switch_on: float = 1.25, switch_off: float = 3.75) -> None:
        super().__init__()
        if not 0.0 <= switch_on < switch_off:
            raise ModelInputError(
                f"DampedCoulomb needs 0 <= `switch_on` < `switch_off`; got switch_on={switch_on} Å, "
                f"switch_off={switch_off} Å"
            )
        self.switch_on = switch_on
        self.switch_off = switch_off
        self.coulomb_constant = COULOMB_CONSTANT

    def forward(self, charges: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
        """Energies (B,) in eV, B = max(batch) + 1, from charges (N,) in e, pos (N, 3) in Å, batch (N,)."""
        if charges.shape != batch.shape:
            raise ModelInputError(
                f"DampedCoulomb got `charges` of shape {list(charges.shape)}; expected ({batch.shape[0]},), one per atom"
            )
        pairs = molecule_pairs(batch)
        i, j = pairs[0], pairs[1]
        dist = torch.linalg.vector_norm(pos.index_select(0, i) - pos.index_select(0, j), dim=-1)
        q = charges.to(pos.dtype)
        pair = self.coulomb_constant * q.index_select(0, i) * q.index_select(0, j)
        pair = pair * damped_inverse_distance(dist, self.switch_on, self.switch_off)
        num_molecules = int(batch.max()) + 1
        return torch.zeros(num_molecules, dtype=pos.dtype, device=pos.device).index_add(0, batch.index_select(0, i), pair)
