"""Sums over neighbours as dense per-molecule block products (see neighbors.py for the block layout).

A sum over the edges j -> i of a molecule is a product of its (n, n) pair block with its n atoms, so
it runs as batched matrix products instead of gathering and scattering (E, 10, C) edge tensors.
Pairs that are not edges (beyond the cutoff) hold zero weights. Rows 0, 1-3 and 4-9 of the compact
layout (cartesian.py) are the I, A and S parts, each summed with its own weight.
"""

from typing import List

import torch
from torch import Tensor

from .neighbors import Blocks


def to_blocks(upper: Tensor, lower: Tensor, loops: Tensor, blocks: Blocks) -> List[Tensor]:
    """Pair values -> per size group (g, n, n, F), zero for pairs that are not edges.

    Args:
        upper: (E, F) values of the edges (i, j), i < j.
        lower: (E, F) values of their mirrors (j, i) (the same tensor for symmetric values).
        loops: (N, F) values of the self pairs.
        blocks: the edges' places among the block pairs.
    """
    sizes, groups = blocks.sizes, blocks.groups
    counts = [g * n * n for n, g in zip(sizes, groups)]
    dense = upper.new_zeros(sum(counts), upper.shape[1])
    dense.index_copy_(0, blocks.index, torch.cat((upper, lower, loops)))  # in place: no copy of the zeros
    return [block.view(g, n, n, -1) for block, n, g in zip(dense.split(counts), sizes, groups)]


def neighbour_sum(weights: List[Tensor], rows: Tensor) -> Tensor:
    """M_i = sum_j w_ij[part(r)] * Y_j[r] per row r and channel.

    Args:
        weights: per size group (g, n, n, 3 * C), one weight per part (I, A, S) and channel.
        rows: (N, 10, C) compact rows of the atoms, in block order.

    Returns:
        (N, 10, C) compact rows.
    """
    channels = rows.shape[2]
    sums: List[Tensor] = []
    for w, y in zip(weights, rows.split([w.shape[0] * w.shape[1] for w in weights])):
        g, n = w.shape[0], w.shape[1]
        w = w.view(g, n, n, 3, channels).permute(0, 3, 4, 1, 2)  # (g, part, C, i, j)
        y = y.view(g, n, 10, channels).permute(0, 3, 1, 2)  # (g, C, j, row)
        parts = [torch.matmul(wp, yp) for wp, yp in zip(w.unbind(1), y.split([1, 3, 6], dim=-1))]
        sums.append(torch.cat(parts, dim=-1).permute(0, 2, 3, 1).reshape(g * n, 10, channels))
    return torch.cat(sums)


def basis_sum(weights: List[Tensor], basis: List[Tensor]) -> Tensor:
    """X_i = sum_j w_ij[part(r)] * B_ij[r] per row r and channel, for pair rows B without channels.

    Args:
        weights: per size group (g, n, n, 3, C).
        basis: per size group (g, n, n, 10) compact rows of each pair.

    Returns:
        (N, 10, C) compact rows, atoms in block order.
    """
    sums: List[Tensor] = []
    for w, b in zip(weights, basis):
        g, n = w.shape[0], w.shape[1]
        w = w.view(g * n, n, 3, -1).permute(0, 2, 3, 1)  # (g n, part, C, j)
        b = b.reshape(g * n, n, 10)
        parts = [torch.matmul(wp, bp) for wp, bp in zip(w.unbind(1), b.split([1, 3, 6], dim=-1))]
        sums.append(torch.cat(parts, dim=-1).transpose(1, 2))
    return torch.cat(sums)
