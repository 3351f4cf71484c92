"""Sums over neighbours, per group of equally sized molecules (see neighbors.py for the block layout).

Two ways to sum, chosen per group by how densely its edges fill the g n^2 atom pairs
(``Blocks.dense``, see TensorNet.dense_min_fill):

- dense: the sum over the neighbours j of the atoms i of a molecule is a product with its (n, n) pair
  block, run as batched matrix products; pairs that are not edges hold zeros. Pair values are features
  first, (F, g n n), so that channels are a batch axis of the products.
- edges: gather the neighbours' rows, multiply, scatter-add into the atoms, ``Blocks.chunk`` edges at a
  time so that the (chunk, 10, C) temporaries stay in cache. Large or spread-out molecules fill few pairs.

Every input is split with ``split``, whose backward is one concatenation (a narrow or slice per group
would allocate a zero-filled full-size gradient each).
"""

from typing import List

import torch
from torch import Tensor

from .cartesian import per_row, split_parts
from .neighbors import Blocks

def _dense(upper: Tensor, lower: Tensor, upper_index: Tensor, lower_index: Tensor, pairs: int, dim: int) -> Tensor:
    """Edge values (E_k along ``dim``) at their pairs and mirrors of a (pairs along ``dim``) zero block."""
    shape = [pairs, upper.shape[1]] if dim == 0 else [upper.shape[0], pairs]
    values = torch.cat((upper, lower), dim=dim)
    return upper.new_zeros(shape).index_copy_(dim, torch.cat((upper_index, lower_index)), values)


def _groups(blocks: Blocks) -> List[int]:
    """Number of atoms g n of each group."""
    return [g * n for n, g in zip(blocks.sizes, blocks.groups)]


def neighbour_sum(weights: Tensor, rows: Tensor, blocks: Blocks) -> Tensor:
    """M_i = sum_{j != i} w_ij[part(r)] Y_j[r] per row r and channel, for symmetric weights w_ij = w_ji.

    Args:
        weights: (3 C, E) weights of the edges i < j, one per part (I, A, S) and channel.
        rows: (10, C, N) rows Y of the atoms, in block order.
        blocks: the edges and groups.

    Returns:
        (10, C, N) rows M.
    """
    channels = rows.shape[1]
    sums: List[Tensor] = []
    groups = zip(weights.split(blocks.edges, dim=1), rows.split(_groups(blocks), dim=2), blocks.sizes, blocks.groups)
    for k, (w, y, n, g) in enumerate(groups):
        if blocks.dense[k]:
            w = _dense(w, w, blocks.upper[k], blocks.lower[k], g * n * n, 1).view(3, channels * g, n, n)
            y = y.reshape(10, channels * g, n).transpose(0, 1)  # (C g, 10, n)
            parts: List[Tensor] = []
            for w_part, y_part in zip(w.unbind(0), split_parts(y, 1)):
                parts.append(torch.matmul(y_part, w_part))  # (C g, rows, n): M^T = Y^T W (W symmetric)
            sums.append(torch.cat(parts, dim=1).transpose(0, 1).reshape(10, channels, g * n))
        else:
            atoms = y.permute(2, 0, 1).contiguous()  # (g n, 10, C)
            total = torch.zeros_like(atoms)
            chunks = zip(w.t().split(blocks.chunk), blocks.local_receiver[k].split(blocks.chunk),
                         blocks.local_sender[k].split(blocks.chunk))
            for w_chunk, i, j in chunks:
                w_rows = per_row(w_chunk.reshape(-1, 3, channels), 1)
                total.index_add_(0, i, atoms.index_select(0, j) * w_rows)
                total.index_add_(0, j, atoms.index_select(0, i) * w_rows)
            sums.append(total.permute(1, 2, 0))
    return torch.cat(sums, dim=2)


def embedding_sum(radial: Tensor, left: Tensor, right: Tensor, basis: Tensor, mirror: Tensor, blocks: Blocks) -> Tensor:
    """X_i = sum_{j != i} f_ij[part(r), c] B_ij[r], f_ij = radial_ij (left_i + right_j), per row r and channel c.

    Args:
        radial: (3 C, E) symmetric radial weights of the edges i < j, per part and channel.
        left, right: (C, N) per-atom terms of the pair embedding, atoms in block order.
        basis: (E, 10) rows B_ij of the edges i < j; mirror: (E, 10) rows B_ji of their mirrors.
        blocks: the edges and groups.

    Returns:
        (10, C, N) rows, atoms in block order.
    """
    channels = left.shape[0]
    sums: List[Tensor] = []
    groups = zip(
        radial.split(blocks.edges, dim=1), basis.split(blocks.edges), mirror.split(blocks.edges),
        left.split(_groups(blocks), dim=1), right.split(_groups(blocks), dim=1), blocks.sizes, blocks.groups,
    )
    for k, (w, b, b_mirror, lw, rw, n, g) in enumerate(groups):
        if blocks.dense[k]:
            pairs = g * n * n
            w = _dense(w, w, blocks.upper[k], blocks.lower[k], pairs, 1).view(3, channels, g, n, n)
            w = w * (lw.reshape(channels, g, n, 1) + rw.reshape(channels, g, 1, n))
            w = w.view(3, channels, g * n, n).transpose(1, 2)  # (3, g n, C, n): one (C, n) matrix per atom
            b = _dense(b, b_mirror, blocks.upper[k], blocks.lower[k], pairs, 0).view(g * n, n, 10)
            parts: List[Tensor] = []
            for w_part, b_part in zip(w.unbind(0), split_parts(b, 2)):
                parts.append(torch.matmul(w_part, b_part))  # (g n, C, rows)
            sums.append(torch.cat(parts, dim=2).permute(2, 1, 0))
        else:
            lw, rw = lw.t().contiguous(), rw.t().contiguous()  # (g n, C)
            total = lw.new_zeros(lw.shape[0], 10, channels)
            chunks = zip(w.t().split(blocks.chunk), b.split(blocks.chunk), b_mirror.split(blocks.chunk),
                         blocks.local_receiver[k].split(blocks.chunk), blocks.local_sender[k].split(blocks.chunk))
            for w_chunk, b_chunk, b_mirror_chunk, i, j in chunks:
                w_chunk = w_chunk.reshape(-1, 3, channels)
                f_ij = per_row(w_chunk * (lw.index_select(0, i) + rw.index_select(0, j)).unsqueeze(1), 1)
                f_ji = per_row(w_chunk * (lw.index_select(0, j) + rw.index_select(0, i)).unsqueeze(1), 1)
                total.index_add_(0, i, f_ij * b_chunk.unsqueeze(2))
                total.index_add_(0, j, f_ji * b_mirror_chunk.unsqueeze(2))
            sums.append(total.permute(1, 2, 0))
    return torch.cat(sums, dim=2)
