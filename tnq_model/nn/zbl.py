"""Universal ZBL screened nuclear repulsion, smoothly switched off at a cutoff."""

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ModelInputError
from .pairs import molecule_pairs
from .switch import smooth_switch

#: Coulomb constant e^2 / (4 pi eps0) in eV Å.
COULOMB_CONSTANT = 14.399645
#: Bohr radius a0 in Å (CODATA 2018).
BOHR_RADIUS = 0.529177210903


def inverse_softplus(value: Tensor) -> Tensor:
    """y with softplus(y) = value (> 0): log(exp(value) - 1), written to stay exact for large values."""
    return value + torch.log(-torch.expm1(-value))


#: The universal ZBL screening function's weights and exponents, and the screening length's factor and power.
ZBL_COEFFICIENTS = (0.1818, 0.5099, 0.2802, 0.02817)
ZBL_EXPONENTS = (3.2, 0.9423, 0.4029, 0.2016)
ZBL_LENGTH_FACTOR = 0.8854
ZBL_LENGTH_POWER = 0.23


def zbl_pair_energy(
    z_i: Tensor,
    z_j: Tensor,
    dist: Tensor,
    coefficients: Tensor,
    exponents: Tensor,
    length_factor: Tensor,
    length_power: Tensor,
    coulomb_constant: float = COULOMB_CONSTANT,
    bohr_radius: float = BOHR_RADIUS,
) -> Tensor:
    """Unswitched ZBL energy (E,) in eV of pairs with atomic numbers z_i, z_j (E,) at distances (E,) in Å.

    E = k_e Z_i Z_j / r phi(r / a), a = f a0 / (Z_i^p + Z_j^p), phi(x) = sum_k c_k e^{-d_k x}; the universal
    values (Ziegler, Biersack and Littmark, The Stopping and Range of Ions in Solids, 1985) are f = 0.8854,
    p = 0.23, c = (0.1818, 0.5099, 0.2802, 0.02817), d = (3.2, 0.9423, 0.4029, 0.2016); their c sum to
    1.00007, so E tends to the bare nuclear repulsion at r -> 0. coefficients (4,) c, exponents (4,) d,
    length_factor () f and length_power () p; computed in the dtype of ``dist``.
    """
    zi, zj = z_i.to(dist.dtype), z_j.to(dist.dtype)
    x = dist * (zi**length_power + zj**length_power) / (length_factor * bohr_radius)
    phi = (coefficients * torch.exp(-exponents * x.unsqueeze(-1))).sum(-1)
    return coulomb_constant * zi * zj / dist * phi


def universal_raw_constants() -> Dict[str, Tensor]:
    """The universal constants as the softplus-inverse float64 tensors ``ZBLRepulsion`` keeps (names raw_*)."""
    constants = {"coefficients": ZBL_COEFFICIENTS, "exponents": ZBL_EXPONENTS,
                 "length_factor": ZBL_LENGTH_FACTOR, "length_power": ZBL_LENGTH_POWER}
    return {"raw_" + name: inverse_softplus(torch.tensor(value, dtype=torch.float64)) for name, value in constants.items()}


class ZBLRepulsion(nn.Module):
    """Per-molecule ZBL repulsion sum_{i<j} E_ZBL(r_ij) s(r_ij) in eV, s the smooth switch (switch.py).

    s is 1 up to ``switch_on`` and 0 from ``cutoff`` on, C-infinity in between, so the energy, the forces
    and their derivatives go to zero continuously at the cutoff (a cosine switch would leave a jump in the
    force derivative at the ends; this one is also SpookyNet's). ZBL at 5 Å is a few meV for C-C, so a
    switch ending at the model cutoff changes the physics little.

    With ``trainable`` (SpookyNet's choice), the weights, exponents and screening length of ``zbl_pair_energy``
    are parameters that start at the universal values and stay positive (softplus); the weights are
    renormalised to their initial sum. At bonded distances the universal form adds eV per bond that
    equilibrium data never probe; training can then weaken it instead of the network cancelling it.

    Args:
        cutoff: r_c in Å; pairs at r >= r_c add nothing.
        switch_on: r_on in Å (0 <= r_on < r_c); pairs closer than r_on get the bare ZBL energy.
        trainable: whether the screening function's constants are learned (else fixed buffers).
    """

    def __init__(self, cutoff: float = 5.0, switch_on: float = 2.5, trainable: bool = False) -> None:
        super().__init__()
        if not 0.0 <= switch_on < cutoff:
            raise ModelInputError(
                f"ZBLRepulsion needs 0 <= `switch_on` < `cutoff`; got switch_on={switch_on} Å, cutoff={cutoff} Å"
            )
        self.cutoff = cutoff
        self.switch_on = switch_on
        self.weight_sum = sum(ZBL_COEFFICIENTS)
        for name, raw in universal_raw_constants().items():
            if trainable:
                self.register_parameter(name, nn.Parameter(raw))
            else:
                self.register_buffer(name, raw)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args) -> None:
        """Checkpoints written before the constants were saved get the universal values."""
        for name, raw in universal_raw_constants().items():
            state_dict.setdefault(prefix + name, raw.to(getattr(self, name).dtype))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def constants(self) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """The screening function's weights (4,), exponents (4,), length factor and power (): positive."""
        coefficients = F.softplus(self.raw_coefficients)
        coefficients = coefficients * (self.weight_sum / coefficients.sum())
        return coefficients, F.softplus(self.raw_exponents), F.softplus(self.raw_length_factor), \
            F.softplus(self.raw_length_power)

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
        coefficients, exponents, length_factor, length_power = self.constants()
        pair = zbl_pair_energy(z.index_select(0, i), z.index_select(0, j), safe, coefficients.to(safe.dtype),
                               exponents.to(safe.dtype), length_factor.to(safe.dtype), length_power.to(safe.dtype))
        pair = share * pair * smooth_switch(safe, self.switch_on, self.cutoff)
        num_molecules = int(batch.max()) + 1
        return torch.zeros(num_molecules, dtype=pos.dtype, device=pos.device).index_add(0, batch.index_select(0, i), pair)
