"""TensorNet's interaction layer with the optional per-atom state factor of Simeon et al. 2024."""

from typing import Optional

import torch
from torch import Tensor, nn

from .blocks import neighbour_sum, to_blocks
from .neighbors import Blocks
from .cartesian import expand, mix_rows, mixing_weight, squared_norm, to_rows
from .state import StateScale


class Interaction(nn.Module):
    r"""One O(3)-equivariant tensor message-passing update, X (N, C, 3, 3) -> X'.

    X <- X / (|X|^2 + 1); Y = mix(I) + mix(A) + mix(S) over the parts of X;
    M_i = sum_j f^I_ij I^Y_j + f^A_ij A^Y_j + f^S_ij S^Y_j with f = MLP(e(r_ij)) phi(r_ij);
    P = s_i (M_i Y_i + Y_i M_i), P <- P / (|P|^2 + 1); dX = mix(I^P) + mix(A^P) + mix(S^P);
    X' = X + dX + s_i dX dX, where s_i = 1 + sum_k lambda_k a_ik (s = 1 without attributes).
    """

    def __init__(self, channels: int, num_rbf: int, num_attributes: int, lambda_mode: str) -> None:
        super().__init__()
        self.channels = channels
        self.radial = nn.Sequential(
            nn.Linear(num_rbf, channels), nn.SiLU(),
            nn.Linear(channels, 2 * channels), nn.SiLU(),
            nn.Linear(2 * channels, 3 * channels), nn.SiLU(),
        )
        self.mix_in = mixing_weight(channels)
        self.mix_out = mixing_weight(channels)
        self.state_scale = StateScale(num_attributes, channels, lambda_mode) if num_attributes else None

    def forward(
        self, x: Tensor, blocks: Blocks, cut: Tensor, rbf: Tensor, attributes: Tensor
    ) -> Tensor:
        """Node tensors (N, C, 3, 3) in block order, the edges' blocks (see neighbors.py), cutoff (E + N,)
        and basis (E + N, K) of the edges i < j then the self loops, state attributes (N, K).

        The attributes are used only by a layer built with ``num_attributes`` > 0.
        """
        # f_ij = f_ji: the radial weights are computed once per unordered pair.
        upper, loops = (self.radial(rbf) * cut.unsqueeze(-1)).split([rbf.shape[0] - x.shape[0], x.shape[0]])
        weights = to_blocks(upper, upper, loops, blocks)
        x = x / (squared_norm(x) + 1.0)[..., None, None]
        rows = mix_rows(self.mix_in, to_rows(x))
        y = expand(rows)
        msg = expand(neighbour_sum(weights, rows))
        product = torch.matmul(msg, y) + torch.matmul(y, msg)
        scale: Optional[Tensor] = None
        if self.state_scale is not None:
            scale = self.state_scale(attributes)
            product = scale * product
        product = product / (squared_norm(product) + 1.0)[..., None, None]
        dx = expand(mix_rows(self.mix_out, to_rows(product)))
        square = torch.matmul(dx, dx)
        if scale is not None:
            square = scale * square
        return x + dx + square
