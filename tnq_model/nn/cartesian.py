"""Rank-2 Cartesian tensor algebra used by TensorNet.

Every tensor here has shape (..., 3, 3); features carry a channel axis, (N, C, 3, 3).
A tensor X splits into X = I + A + S: I = tr(X)/3 * Id (scalar part), A = (X - X^T)/2
(vector part, skew-symmetric), S = (X + X^T)/2 - I (symmetric traceless part).
"""

import math

import torch
from torch import Tensor, nn


def skew(vec: Tensor) -> Tensor:
    """Skew-symmetric matrix [v]_x with [v]_x @ u = v x u; (E, 3) -> (E, 3, 3)."""
    x, y, z = vec.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (zero, -z, y, z, zero, -x, -y, x, zero)
    return torch.stack(rows, dim=-1).view(vec.shape[:-1] + (3, 3))


def decompose(tensor: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Split (..., 3, 3) tensors into their scalar (I), skew (A) and symmetric traceless (S) parts."""
    eye = torch.eye(3, dtype=tensor.dtype, device=tensor.device)
    trace = tensor.diagonal(dim1=-2, dim2=-1).mean(-1)
    iso = trace[..., None, None] * eye
    transposed = tensor.transpose(-2, -1)
    return iso, 0.5 * (tensor - transposed), 0.5 * (tensor + transposed) - iso


#: Compact layout of the 9 degrees of freedom of a tensor, 10 rows: [t, a_x, a_y, a_z, s_xx, s_yy, s_zz,
#: s_xy, s_xz, s_yz] for X = t Id + [a]_x + s, s symmetric (made traceless by :func:`expand`).
#: Message passing runs on this layout: 10 numbers per edge and channel instead of 27.
#: Rows 0, 1-3 and 4-9 hold the I, A and S parts (index lists are literals below, for TorchScript).


def to_rows(tensor: Tensor) -> Tensor:
    """Tensors (N, C, 3, 3) -> compact rows (N, 10, C) of their I, A and S parts (S traceless)."""
    t = tensor.diagonal(dim1=-2, dim2=-1).mean(-1)
    flat = tensor.flatten(-2)
    upper, lower = flat[:, :, [7, 2, 3]], flat[:, :, [5, 6, 1]]
    sym = 0.5 * (flat[:, :, [0, 4, 8, 1, 2, 5]] + flat[:, :, [0, 4, 8, 3, 6, 7]])
    sym = sym - torch.cat((t.unsqueeze(-1).expand(t.shape + (3,)), torch.zeros_like(sym[..., 3:])), dim=-1)
    return torch.cat((t.unsqueeze(-1), 0.5 * (upper - lower), sym), dim=-1).transpose(1, 2)


def mix_rows(weight: Tensor, rows: Tensor) -> Tensor:
    """Mix the channels of the I, A and S rows (N, 10, C) with their own matrices weight (3, C', C).

    Channel mixing commutes with rotations, so each part keeps its symmetry.
    """
    mixed = [rows[:, 0:1] @ weight[0].t(), rows[:, 1:4] @ weight[1].t(), rows[:, 4:] @ weight[2].t()]
    return torch.cat(mixed, dim=1)


def expand(rows: Tensor) -> Tensor:
    """Compact rows (N, 10, C) -> tensors t Id + [a]_x + (s - tr(s)/3 Id), (N, C, 3, 3)."""
    rows = rows.transpose(1, 2)
    sym = rows[:, :, 4:][:, :, [0, 3, 4, 3, 1, 5, 4, 5, 2]].unflatten(-1, (3, 3))
    trace = rows[..., 4:7].sum(-1, keepdim=True) / 3.0
    eye = torch.eye(3, dtype=rows.dtype, device=rows.device)
    return (rows[..., :1] - trace)[..., None] * eye + skew(rows[..., 1:4]) + sym


def squared_norm(tensor: Tensor) -> Tensor:
    """Squared Frobenius norm over the last two axes; (..., 3, 3) -> (...)."""
    return (tensor * tensor).sum((-2, -1))


def mixing_weight(channels: int) -> nn.Parameter:
    """Three (C, C) channel-mixing matrices, initialised like a bias-free nn.Linear; (3, C, C)."""
    bound = 1.0 / math.sqrt(channels)
    return nn.Parameter(torch.empty(3, channels, channels).uniform_(-bound, bound))
