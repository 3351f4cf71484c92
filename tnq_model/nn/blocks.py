"""Sums over neighbours as dense per-molecule block products (see neighbors.py for the block layout).

A sum over the neighbours j of the atoms i of a molecule is a product with its (n, n) pair block, so
it runs as batched matrix products per group of equally sized molecules instead of gathering and
scattering per-edge tensors. Pairs that are not edges (beyond the cutoff, self pairs) hold zeros.
Pair values are features-first, (F, g n n) per group, so that channels are a batch axis of the products.
"""

from typing import List, Optional

import torch
from torch import Tensor

from .cartesian import split_parts
from .neighbors import Blocks


def dense_blocks(upper: Tensor, lower: Optional[Tensor], blocks: Blocks, dim: int) -> List[Tensor]:
    """Edge values -> per group a tensor with the group's g n n pairs along ``dim``.

    Args:
        upper: values of the edges (i, j), i < j, E of them along ``dim``, in edge order.
        lower: values put at their mirrors (j, i), same shape; None leaves the mirrors zero.
        blocks: the edges' places in the blocks.
        dim: the pair axis, 0 (pairs-first) or 1 (features-first).
    """
    dense: List[Tensor] = []
    # split, not narrow: the backward of split is one cat, that of each narrow a zero-filled full tensor.
    uppers = upper.split(blocks.edges, dim=dim)
    lowers = lower.split(blocks.edges, dim=dim) if lower is not None else uppers
    start = 0
    for k, (n, g, count) in enumerate(zip(blocks.sizes, blocks.groups, blocks.edges)):
        values = uppers[k]
        index = blocks.upper.narrow(0, start, count)
        if lower is not None:
            values = torch.cat((values, lowers[k]), dim=dim)
            index = torch.cat((index, blocks.lower.narrow(0, start, count)))
        shape = [g * n * n, upper.shape[1]] if dim == 0 else [upper.shape[0], g * n * n]
        dense.append(upper.new_zeros(shape).index_copy_(dim, index, values))
        start += count
    return dense


def neighbour_sum(weights: List[Tensor], rows: Tensor, blocks: Blocks) -> Tensor:
    """M_i = sum_{j != i} w_ij[part(r)] Y_j[r] per row r and channel, for symmetric weights w_ij = w_ji.

    Args:
        weights: per group (3 C, g n n) weights of the ordered pairs, one per part (I, A, S) and channel.
        rows: (10, C, N) rows Y of the atoms, in block order.
        blocks: the groups.

    Returns:
        (10, C, N) rows M.
    """
    channels = rows.shape[1]
    sums: List[Tensor] = []
    start = 0
    atoms = [g * n for n, g in zip(blocks.sizes, blocks.groups)]
    for w, y, n, g in zip(weights, rows.split(atoms, dim=2), blocks.sizes, blocks.groups):
        y = y.reshape(10, channels * g, n).transpose(0, 1)  # (C g, 10, n)
        parts: List[Tensor] = []
        for w_part, y_part in zip(w.view(3, channels * g, n, n).unbind(0), split_parts(y, 1)):
            # (C g, rows, n): M^T = Y^T W (W symmetric).
            parts.append(torch.matmul(y_part, w_part))
        sums.append(torch.cat(parts, dim=1).transpose(0, 1).reshape(10, channels, g * n))
    return torch.cat(sums, dim=2)


def basis_sum(weights: List[Tensor], basis: List[Tensor], blocks: Blocks) -> Tensor:
    """X_i = sum_j w_ij[part(r), c] B_ij[r] per row r and channel c, for pair rows B without channels.

    Args:
        weights: per group (3 C, g n n), one weight per part and channel of each ordered pair.
        basis: per group (g n n, 10) rows of each ordered pair.
        blocks: the groups.

    Returns:
        (10, C, N) rows, atoms in block order.
    """
    sums: List[Tensor] = []
    for w, b, n, g in zip(weights, basis, blocks.sizes, blocks.groups):
        w = w.view(3, w.shape[0] // 3, g * n, n).transpose(1, 2)  # (3, g n, C, n): one (C, n) matrix per atom
        parts: List[Tensor] = []
        for w_part, b_part in zip(w.unbind(0), split_parts(b.view(g * n, n, 10), 2)):
            parts.append(torch.matmul(w_part, b_part))  # (g n, C, rows)
        sums.append(torch.cat(parts, dim=2).permute(2, 1, 0))
    return torch.cat(sums, dim=2)
