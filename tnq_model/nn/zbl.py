"""Universal ZBL screened nuclear repulsion, smoothly switched off at a cutoff."""

from typing import Optional

import torch
from torch import Tensor, nn

from .errors import ModelInputError
from .pairs import molecule_pairs
from .switch import smooth_switch

#: Coulomb constant e^2 / (4 pi eps0) in eV Å.
COULOMB_CONSTANT = 14.399645
#: Bohr radius a0 in Å (CODATA 2018).
BOHR_RADIUS = 0.529177210903


def zbl_pair_energy(
    z_i: Tensor, z_j: Tensor, dist: Tensor, coulomb_constant: float = COULOMB_CONSTANT, bohr_radius: float = BOHR_RADIUS
) -> Tensor:
    """Unswitched ZBL energy (E,) in eV of pairs with atomic numbers z_i, z_j (E,) at distances (E,) in Å.

    E = k_e Z_i Z_j / r phi(r / a), a = 0.8854 a0 / (Z_i^0.23 + Z_j^0.23),
    phi(x) = 0.1818 e^{-3.2 x} + 0.5099 e^{-0.9423 x} + 0.2802 e^{-0.4029 x} + 0.02817 e^{-0.2016 x}
    (Ziegler, Biersack and Littmark, The Stopping and Range of Ions in Solids, 1985; the weights sum to 1,
    so phi(0) = 1 and E tends to the bare nuclear Coulomb repulsion). Computed in the dtype of ``dist``.
    """
    zi, zj = z_i.to(dist.dtype), z_j.to(dist.dtype)
    x = dist * (zi**0.23 + zj**0.23) / (0.8854 * bohr_radius)
    phi = 0.1818 * torch.exp(-3.2 * x) + 0.5099 * torch.exp(-0.9423 * x) + 0.2802 * torch.exp(-0.4029 * x)
    phi = phi + 0.02817 * torch.exp(-0.2016 * x)
    return coulomb_constant * zi * zj / dist * phi


class ZBLRepulsion(nn.Module):
    """Per-molecule ZBL repulsion sum_{i<j} E_ZBL(r_ij) s(r_ij) in eV, s the smooth switch (switch.py).

    s is 1 up to ``switch_on`` and 0 from ``cutoff`` on, C-infinity in between, so the energy, the forces
    and their derivatives go to zero continuously at the cutoff (a cosine switch would leave a jump in the
    force derivative at the ends; this one is also SpookyNet's). ZBL at 5 Å is a few meV for C-C, so a
    switch ending at the model cutoff changes the physics little. No parameters: the universal form.

    Args:
        cutoff: r_c in Å; pairs at r >= r_c add nothing.
        switch_on: r_on in Å (0 <= r_on < r_c); pairs closer than r_on get the bare ZBL energy.
    """

    def __init__(self, cutoff: float = 5.0, switch_on: float = 2.5) -> None:
        super().__init__()
        if not 0.0 <= switch_on < cutoff:
            raise ModelInputError(
                f"ZBLRepulsion needs 0 <= `switch_on` < `cutoff`; got switch_on={switch_on} Å, cutoff={cutoff} Å"
            )
        self.cutoff = cutoff
        self.switch_on = switch_on

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        edge_index: Optional[Tensor] = None,
        distances: Optional[Tensor] = None,
    ) -> Tensor:
        """Energies (B,) in eV of the molecules of ``batch``, B = max(batch) + 1.

        Args:
            z: (N,) atomic numbers.
            pos: (N, 3) positions in Å.
            batch: (N,) int64 molecule of each atom.
            edge_index: (2, E) pairs listed in both directions, as ``neighbor_pairs`` returns them (each
                direction adds half); None takes every pair of each molecule once (pairs.py). Pairs
                beyond ``cutoff`` may be listed: they add zero.
            distances: (E,) lengths in Å of ``edge_index``'s pairs; None computes them from ``pos``.
        """
        share = 0.5
        if edge_index is None:
            if distances is not None:
                raise ModelInputError("ZBLRepulsion got `distances` without `edge_index`; pass both or neither")
            edge_index, share = molecule_pairs(batch), 1.0
        i, j = edge_index[0], edge_index[1]
        if distances is None:
            distances = torch.linalg.vector_norm(pos.index_select(0, i) - pos.index_select(0, j), dim=-1)
        inside = distances < self.cutoff
        safe = torch.where(inside, distances, torch.full_like(distances, self.cutoff))  # finite 1/r beyond
        pair = zbl_pair_energy(z.index_select(0, i), z.index_select(0, j), safe)
        pair = share * pair * smooth_switch(safe, self.switch_on, self.cutoff)
        num_molecules = int(batch.max()) + 1
        return torch.zeros(num_molecules, dtype=pos.dtype, device=pos.device).index_add(0, batch.index_select(0, i), pair)
