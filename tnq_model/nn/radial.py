"""Radial functions of the interatomic distance: cosine cutoff and exponential-normal basis."""

import math
from typing import List

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def cosine_cutoff(dist: Tensor, cutoff: float) -> Tensor:
    """Smooth cutoff 0.5 (cos(pi d / r_c) + 1) for d < r_c, else 0; d in Å, shape kept."""
    inside = (dist < cutoff).to(dist.dtype)
    return 0.5 * (torch.cos(dist * (math.pi / cutoff)) + 1.0) * inside


class ExpNormalBasis(nn.Module):
    """Exponential-normal radial basis (PhysNet form), with torchmd-net 3.1's means and widths.

    e_k(d) = phi(d) * exp(-beta_k (exp(-alpha d) - mu_k)^2), alpha = 5 / r_c, phi the cosine cutoff,
    means mu_k evenly spaced between exp(-r_c) and 1 (k = 0..K-1) and equal widths
    beta_k = (2 (1 - exp(-r_c)) / K)^-2: torchmd-net's ExpNormalSmearing with cutoff_lower = 0.
    As there, mu and beta are computed in float32 whatever the model dtype (torchmd-net builds its
    basis in float32 and casts it), so float64 models hold the same float32-rounded values.

    mu and beta are state_dict entries (buffers, or parameters when trainable): a loaded checkpoint
    keeps the values it was trained with. Before this formula tnq started the means at exp(-5) for
    every cutoff (identical at r_c = 5 Å); such checkpoints still restore their own means and widths.

    Args:
        num_rbf: number of functions K.
        cutoff: r_c in Å.
        trainable: learn mu and beta.
    """

    def __init__(self, num_rbf: int, cutoff: float, trainable: bool = False) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.alpha = 5.0 / cutoff
        # Same float32 operations as torchmd-net 3.1's ExpNormalSmearing._initial_params.
        start = torch.exp(torch.tensor(-float(cutoff), dtype=torch.float32))
        means = torch.linspace(start, 1.0, num_rbf, dtype=torch.float32)
        betas = ((2.0 / num_rbf * (1.0 - start)) ** -2).expand(num_rbf).clone()
        if trainable:
            self.means = nn.Parameter(means)
            self.betas = nn.Parameter(betas)
        else:
            self.register_buffer("means", means)
            self.register_buffer("betas", betas)

    def forward(self, dist: Tensor) -> Tensor:
        """Distances (E,) in Å -> basis values (E, K), edges first."""
        d = dist.unsqueeze(1)
        gauss = torch.exp(-self.betas * (torch.exp(-self.alpha * d) - self.means) ** 2)
        return cosine_cutoff(d, self.cutoff) * gauss


def linear_features_first(weight: Tensor, bias: Tensor, x: Tensor) -> Tensor:
    """An nn.Linear's W x + b on features-first input (F_in, N) -> (F_out, N)."""
    return torch.addmm(bias.unsqueeze(1), weight, x)


class RadialMLP(nn.Module):
    """MLP of the radial basis, edges first: (E, K) -> (E, F), SiLU after every linear layer.

    Args:
        widths: K, then the width of each layer.
    """

    def __init__(self, widths: List[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])])

    def forward(self, basis: Tensor) -> Tensor:
        """Basis values (E, K) -> (E, F)."""
        x = basis
        for layer in self.layers:
            x = F.silu(layer(x))
        return x
