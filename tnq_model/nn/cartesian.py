"""Rank-2 Cartesian tensors of TensorNet in a compact, features-first layout.

A tensor X = I + A + S splits into its scalar part I = t Id, its skew part A = [a]_x ([a]_x u = a x u)
and its symmetric traceless part S. It is stored as 10 *rows* [t, a_x, a_y, a_z, s_xx, s_yy, s_zz, s_xy,
s_xz, s_yz] with s_xx + s_yy + s_zz = 0; rows 0, 1-3 and 4-9 are the I, A and S parts.

Node features are rows of shape (10, C, N): row, channel, atom. Every operation below is then a matrix
product over contiguous (C, N) planes or an elementwise op on them, with no per-atom 3x3 batches.
"""

import math
from typing import List, Optional

import torch
from torch import Tensor, nn

# The constants are literals inside functions: TorchScript cannot read module-level lists.


def split_parts(x: Tensor, dim: int = 0) -> List[Tensor]:
    """Split the 10 rows along ``dim`` into the I (1), A (3) and S (6) parts."""
    return x.split([1, 3, 6], dim=dim)


def per_row(values: Tensor, dim: int = 0) -> Tensor:
    """Values per part (3 along ``dim``) -> the value of each row's part (10 along ``dim``)."""
    return values.index_select(dim, torch.tensor([0, 1, 1, 1, 2, 2, 2, 2, 2, 2], device=values.device))


def to_matrix(rows: Tensor) -> Tensor:
    """Rows (10, C, N) -> the 3x3 entries (3, 3, C, N): X = t Id + [a]_x + S."""
    # Row-major entries as combinations of [t, a_x, a_y, a_z, s_xx, s_yy, s_zz, s_xy, s_xz, s_yz].
    expand = [
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # xx = t + s_xx
        [0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0],  # xy = -a_z + s_xy
        [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],  # xz = a_y + s_xz
        [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0],  # yx = a_z + s_xy
        [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],  # yy = t + s_yy
        [0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],  # yz = -a_x + s_yz
        [0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],  # zx = -a_y + s_xz
        [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],  # zy = a_x + s_yz
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],  # zz = t + s_zz
    ]
    return _rows_map(expand, rows).view(3, 3, rows.shape[1], rows.shape[2])


def to_rows(matrix: Tensor) -> Tensor:
    """3x3 entries (3, 3, C, N) -> rows (10, C, N): trace / 3, skew vector, traceless symmetric part."""
    h, t = 0.5, 1.0 / 3.0
    # Each row as a combination of the entries [xx, xy, xz, yx, yy, yz, zx, zy, zz].
    project = [
        [t, 0.0, 0.0, 0.0, t, 0.0, 0.0, 0.0, t],  # t = trace / 3
        [0.0, 0.0, 0.0, 0.0, 0.0, -h, 0.0, h, 0.0],  # a_x = (zy - yz) / 2
        [0.0, 0.0, h, 0.0, 0.0, 0.0, -h, 0.0, 0.0],  # a_y = (xz - zx) / 2
        [0.0, -h, 0.0, h, 0.0, 0.0, 0.0, 0.0, 0.0],  # a_z = (yx - xy) / 2
        [2 * t, 0.0, 0.0, 0.0, -t, 0.0, 0.0, 0.0, -t],  # s_xx = xx - t
        [-t, 0.0, 0.0, 0.0, 2 * t, 0.0, 0.0, 0.0, -t],  # s_yy = yy - t
        [-t, 0.0, 0.0, 0.0, -t, 0.0, 0.0, 0.0, 2 * t],  # s_zz = zz - t
        [0.0, h, 0.0, h, 0.0, 0.0, 0.0, 0.0, 0.0],  # s_xy = (xy + yx) / 2
        [0.0, 0.0, h, 0.0, 0.0, 0.0, h, 0.0, 0.0],  # s_xz = (xz + zx) / 2
        [0.0, 0.0, 0.0, 0.0, 0.0, h, 0.0, h, 0.0],  # s_yz = (yz + zy) / 2
    ]
    return _rows_map(project, matrix.reshape(9, matrix.shape[2], matrix.shape[3]))


def _rows_map(matrix: List[List[float]], rows: Tensor) -> Tensor:
    """Apply a constant (R', R) matrix to the leading axis of (R, C, N) -> (R', C, N)."""
    shape = rows.shape
    constant = torch.tensor(matrix, dtype=rows.dtype, device=rows.device)
    return torch.mm(constant, rows.reshape(shape[0], -1)).view(-1, shape[1], shape[2])


def matrix_product(left: Tensor, right: Tensor) -> Tensor:
    """Entrywise 3x3 products L R of (3, 3, C, N) tensors -> (3, 3, C, N)."""
    l0, l1, l2 = left.split(1, dim=1)
    r0, r1, r2 = right.split(1, dim=0)
    return l0 * r0 + l1 * r1 + l2 * r2


def anticommutator(m: Tensor, y: Tensor) -> Tensor:
    """Rows of M Y + Y M for rows m and y (10, C, N) -> (10, C, N)."""
    m3, y3 = to_matrix(m), to_matrix(y)
    return to_rows(matrix_product(m3, y3) + matrix_product(y3, m3))


def square(rows: Tensor) -> Tensor:
    """Rows of X X for rows (10, C, N) -> (10, C, N)."""
    matrix = to_matrix(rows)
    return to_rows(matrix_product(matrix, matrix))


def part_norms(rows: Tensor) -> Tensor:
    """Squared Frobenius norms |I|^2, |A|^2, |S|^2 of rows (10, C, N) -> (3, C, N)."""
    weights = [  # 3 t^2, 2 |a|^2, |S|^2 as weighted sums of squared rows
        [3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0],
    ]
    return _rows_map(weights, rows * rows)


def squared_norm(rows: Tensor) -> Tensor:
    """Squared Frobenius norm |X|^2 of rows (10, C, N) -> (C, N)."""
    return part_norms(rows).sum(0)


def mix(weight: Tensor, rows: Tensor, scale: Optional[Tensor] = None) -> Tensor:
    """Mix the channels of the I, A and S rows (10, C, N) with their own matrices weight (3, C', C).

    Channel mixing commutes with rotations, so each part keeps its symmetry. ``scale`` (3, C', N)
    optionally multiplies each mixed part.
    """
    mixed: List[Tensor] = []
    for part, rows_part in enumerate(split_parts(rows)):
        product = torch.matmul(weight[part], rows_part)
        if scale is not None:
            product = product * scale[part]
        mixed.append(product)
    return torch.cat(mixed, dim=0)


def mixing_weight(channels: int) -> nn.Parameter:
    """Three (C, C) channel-mixing matrices, initialised like a bias-free nn.Linear; (3, C, C)."""
    bound = 1.0 / math.sqrt(channels)
    return nn.Parameter(torch.empty(3, channels, channels).uniform_(-bound, bound))
