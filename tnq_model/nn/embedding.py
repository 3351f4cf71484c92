"""TensorNet's embedding: atoms and their neighbourhood -> one rank-2 tensor per atom and channel."""

import torch
from torch import Tensor, nn

from .blocks import embedding_sum
from .cartesian import mix, mixing_weight, squared_norm
from .neighbors import Blocks
from .radial import linear_features_first


def edge_basis(unit: Tensor) -> Tensor:
    """Rows (E, 10) of Id, [u]_x and u u^T - Id/3 for unit vectors u (E, 3); see cartesian.py."""
    x, y, z = unit.unbind(-1)
    one = torch.ones_like(x)
    third = 1.0 / 3.0
    return torch.stack((one, x, y, z, x * x - third, y * y - third, z * z - third, x * y, x * z, y * z), dim=-1)


class TensorEmbedding(nn.Module):
    r"""Initial node tensors as rows (10, C, N).

    Z_ij = W [z_i || z_j] + b (atom embeddings z), f^{I,A,S}_ij = W^{I,A,S} e(r_ij) phi(r_ij) Z_ij, and
    X_i = sum_j f^I_ij Id + f^A_ij [u_ij]_x + f^S_ij (u_ij u_ij^T - Id/3), the self pair (u = 0) included.
    The I, A, S parts of X_i are then channel-mixed and scaled by an MLP of LayerNorm(|X_i|^2).
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

    def forward(self, x: Tensor, blocks: Blocks, cut: Tensor, rbf: Tensor, self_rbf: Tensor, unit: Tensor) -> Tensor:
        """Atom embeddings x (N, C) in block order, the edges' blocks (see neighbors.py), cutoff phi (E, 1) and
        basis e (E, K) of the edges i < j, basis (1, K) of a self pair (distance 0, phi = 1), unit vectors
        u_ij (E, 3)."""
        c = self.channels
        radial = self.radial(rbf) * cut
        self_radial = self.radial(self_rbf)[0, :c].unsqueeze(1)
        # W [z_i || z_j] + b = (W_left z_i + b) + W_right z_j: project per atom, broadcast over the blocks.
        atoms = x.t()
        left = linear_features_first(self.pair.weight[:, :c], self.pair.bias, atoms)
        right = torch.mm(self.pair.weight[:, c:], atoms)
        # The radial part is symmetric in (i, j); the basis rows of the mirror have u_ji = -u_ij.
        tensor = embedding_sum(radial, left, right, edge_basis(unit), edge_basis(-unit), blocks)
        # The self pair has u = 0: only its identity part f^I_ii Id is non-zero.
        isotropic, rest = tensor.split([1, 9])
        tensor = torch.cat((isotropic + self_radial * (left + right), rest))
        scales = self.scalar(self.norm(squared_norm(tensor).t())).t().reshape(3, c, x.shape[0])
        return mix(self.mix, tensor, scales)
