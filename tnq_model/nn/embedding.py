"""TensorNet's embedding: atoms and their neighbourhood -> one rank-2 tensor per atom and channel."""

from typing import List

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .blocks import basis_sum, to_blocks
from .cartesian import expand, mix_rows, mixing_weight, squared_norm, to_rows


def edge_basis(unit: Tensor) -> Tensor:
    """Compact rows (E, 10) of Id, [u]_x and u u^T for unit vectors u (E, 3); see cartesian.to_rows.

    :func:`expand` makes u u^T traceless. Self loops carry u = 0, so only their identity part is non-zero.
    """
    x, y, z = unit.unbind(-1)
    one = torch.ones_like(x)
    return torch.stack((one, x, y, z, x * x, y * y, z * z, x * y, x * z, y * z), dim=-1)


class TensorEmbedding(nn.Module):
    r"""Initial node tensors X_i (N, C, 3, 3).

    Z_ij = W [z_i || z_j] + b (atom embeddings z), f^{I,A,S}_ij = W^{I,A,S} e(r_ij) phi(r_ij) Z_ij, and
    X_i = sum_j f^I_ij Id + f^A_ij [u_ij]_x + f^S_ij (u_ij u_ij^T - Id/3). The I, A, S parts of X_i are
    then channel-mixed and scaled by an MLP of LayerNorm(|X_i|^2).
    """

    def __init__(self, channels: int, num_rbf: int) -> None:
        super().__init__()
        self.channels = channels
        self.pair = nn.Linear(2 * channels, channels)
        self.radial = nn.Linear(num_rbf, 3 * channels)
        self.mix = mixing_weight(channels)
        self.norm = nn.LayerNorm(channels)
        self.scalar = nn.Sequential(
            nn.Linear(channels, 2 * channels), nn.SiLU(), nn.Linear(2 * channels, 3 * channels), nn.SiLU()
        )

    def forward(
        self, x: Tensor, edge_index: Tensor, pair: Tensor, sizes: List[int], groups: List[int], cut: Tensor,
        rbf: Tensor, unit: Tensor,
    ) -> Tensor:
        """Atom embeddings x (N, C) in block order, edges (2, E) and their block pairs (E,) (see
        neighbors.py), cutoff phi (E,), basis e (E, K), unit vectors (E, 3)."""
        n, c = x.shape[0], self.channels
        receiver, sender = edge_index[0], edge_index[1]
        # W [z_i || z_j] = W_left z_i + W_right z_j: project per atom, then gather per edge.
        left = F.linear(x, self.pair.weight[:, :c], self.pair.bias)
        right = F.linear(x, self.pair.weight[:, c:])
        z_pair = left.index_select(0, receiver) + right.index_select(0, sender)
        weights = (self.radial(rbf) * cut.unsqueeze(-1)).view(-1, 3, c) * z_pair.unsqueeze(1)
        weights = to_blocks(weights.view(-1, 3 * c), pair, sizes, groups)
        tensor = expand(basis_sum(weights, to_blocks(edge_basis(unit), pair, sizes, groups)))
        scales = self.scalar(self.norm(squared_norm(tensor))).view(n, 3, c)
        return expand(mix_rows(self.mix, to_rows(tensor)) * scales[:, [0, 1, 1, 1, 2, 2, 2, 2, 2, 2]])
