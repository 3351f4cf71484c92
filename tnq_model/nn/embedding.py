"""TensorNet's embedding: atoms and their neighbourhood -> one rank-2 tensor per atom and channel."""

from typing import List

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .blocks import basis_sum, to_blocks
from .neighbors import Blocks
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

    def forward(self, x: Tensor, blocks: Blocks, cut: Tensor, rbf: Tensor, unit: Tensor) -> Tensor:
        """Atom embeddings x (N, C) in block order, the edges' blocks (see neighbors.py), cutoff phi (E + N,)
        and basis e (E + N, K) of the edges i < j then the self loops, unit vectors u_ij (E, 3)."""
        n, c = x.shape[0], self.channels
        # The radial part is symmetric in (i, j); the basis rows of the mirror have u_ji = -u_ij.
        upper, loops = (self.radial(rbf) * cut.unsqueeze(-1)).split([unit.shape[0], n])
        radial = to_blocks(upper, upper, loops, blocks)
        basis = to_blocks(edge_basis(unit), edge_basis(-unit), edge_basis(unit.new_zeros(n, 3)), blocks)
        # W [z_i || z_j] = W_left z_i + W_right z_j: project per atom, then broadcast over the blocks.
        left = F.linear(x, self.pair.weight[:, :c], self.pair.bias).split([w.shape[0] * w.shape[1] for w in radial])
        right = F.linear(x, self.pair.weight[:, c:]).split([w.shape[0] * w.shape[1] for w in radial])
        weights: List[Tensor] = []
        for w, lw, rw in zip(radial, left, right):
            g, m = w.shape[0], w.shape[1]
            z_pair = lw.view(g, m, 1, 1, c) + rw.view(g, 1, m, 1, c)
            weights.append(w.view(g, m, m, 3, c) * z_pair)
        tensor = expand(basis_sum(weights, basis))
        scales = self.scalar(self.norm(squared_norm(tensor))).view(n, 3, c)
        return expand(mix_rows(self.mix, to_rows(tensor)) * scales[:, [0, 1, 1, 1, 2, 2, 2, 2, 2, 2]])
