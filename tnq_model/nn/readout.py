"""Invariant readout of TensorNet: node tensors -> per-atom energies."""

from torch import Tensor, nn
from torch.nn import functional as F

from .cartesian import part_norms


class ScalarReadout(nn.Module):
    """E_i = MLP(SiLU(W LayerNorm(|I_i|^2 || |A_i|^2 || |S_i|^2))), MLP: C -> C/2 -> 1 (SiLU)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(3 * channels)
        self.linear = nn.Linear(3 * channels, channels)
        self.head = nn.Sequential(nn.Linear(channels, channels // 2), nn.SiLU(), nn.Linear(channels // 2, 1))

    def features(self, x: Tensor) -> Tensor:
        """Node rows (10, C, N) -> invariant atom features (N, C), the input of the energy head."""
        invariants = part_norms(x).view(-1, x.shape[2]).t()
        return F.silu(self.linear(self.norm(invariants)))

    def energies(self, features: Tensor) -> Tensor:
        """Invariant atom features (N, C) -> per-atom energies (N,)."""
        return self.head(features).squeeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        """Node rows (10, C, N) -> per-atom energies (N,)."""
        return self.energies(self.features(x))
