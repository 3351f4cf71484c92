"""TensorNet's interaction layer with the optional per-atom state factor of Simeon et al. 2024."""

from typing import Optional

from torch import Tensor, nn

from .blocks import neighbour_sum
from .cartesian import anticommutator, mix, mixing_weight, per_row, square, squared_norm
from .neighbors import Blocks
from .radial import RadialMLP
from .state import StateScale


class Interaction(nn.Module):
    r"""One O(3)-equivariant tensor message-passing update of node rows X (10, C, N) -> X'.

    X <- X / (|X|^2 + 1); Y = mix(I) + mix(A) + mix(S) over the parts of X;
    M_i = sum_j f^I_ij I^Y_j + f^A_ij A^Y_j + f^S_ij S^Y_j with f = MLP(e(r_ij)) phi(r_ij), self pair included;
    P = s_i (M_i Y_i + Y_i M_i), P <- P / (|P|^2 + 1); dX = mix(I^P) + mix(A^P) + mix(S^P);
    X' = X + dX + s_i dX dX, where s_i = 1 + sum_k lambda_k a_ik (s = 1 without attributes).
    """

    def __init__(self, channels: int, num_rbf: int, num_attributes: int, lambda_mode: str) -> None:
        super().__init__()
        self.channels = channels
        self.radial = RadialMLP([num_rbf, channels, 2 * channels, 3 * channels])
        self.mix_in = mixing_weight(channels)
        self.mix_out = mixing_weight(channels)
        self.state_scale = StateScale(num_attributes, channels, lambda_mode) if num_attributes else None

    def forward(
        self, x: Tensor, blocks: Blocks, cut: Tensor, rbf: Tensor, self_rbf: Tensor, attributes: Tensor
    ) -> Tensor:
        """Node rows (10, C, N) in block order, the edges' blocks (see neighbors.py), cutoff (E, 1) and basis
        (E, K) of the edges i < j, basis (1, K) of a self pair (distance 0, cutoff 1), state attributes (N, K).

        The attributes are used only by a layer built with ``num_attributes`` > 0.
        """
        # f_ij = f_ji: the radial weights are computed once per unordered pair, and once for all self pairs.
        weights = self.radial(rbf) * cut
        self_weight = self.radial(self_rbf)
        x = x / (squared_norm(x) + 1.0)
        y = mix(self.mix_in, x)
        msg = neighbour_sum(weights, y, blocks)
        msg = msg + per_row(self_weight.view(3, self.channels, 1)) * y
        product = anticommutator(msg, y)
        scale: Optional[Tensor] = None
        if self.state_scale is not None:
            scale = self.state_scale(attributes)
            product = scale * product
        product = product / (squared_norm(product) + 1.0)
        dx = mix(self.mix_out, product)
        dx_squared = square(dx)
        if scale is not None:
            dx_squared = scale * dx_squared
        return x + dx + dx_squared
