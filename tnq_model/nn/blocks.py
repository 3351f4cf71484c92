"""Sums over neighbours, per group of equally sized molecules (see neighbors.py for the block layout).

Two ways to sum, chosen per group by how densely its edges fill the g n^2 atom pairs
(``Blocks.dense``, see TensorNet.dense_min_fill):

- dense: the sum over the neighbours j of the atoms i of a molecule is a product with its (n, n) pair
  block, run as batched matrix products; pairs that are not edges hold zeros. Pair values are features
  first, (F, g n n), so that channels are a batch axis of the products.
- edges: gather the neighbours' rows, multiply, scatter-add into the atoms, ``Blocks.chunk`` edges at a
  time so that the (chunk, 10, C) temporaries stay in cache. Large or spread-out molecules fill few pairs.

Every input is split with ``split``, whose backward is one concatenation (a narrow or slice per group
would allocate a zero-filled full-size gradient each), and not split at all when there is one group.
Edge values come edges first, (E, F): the edge lists view them without a copy.

The edge-list sums themselves are in edge_sums.py.
"""

from typing import List

import torch
from torch import Tensor

from .cartesian import split_parts
from .edge_sums import basis_sum, pair_sum
from .neighbors import Blocks


def _dense(upper: Tensor, lower: Tensor, upper_index: Tensor, lower_index: Tensor, pairs: int, dim: int) -> Tensor:
    """Edge values (E_k along ``dim``) at their pairs and mirrors of a (pairs along ``dim``) zero block."""
    shape = [pairs, upper.shape[1]] if dim == 0 else [upper.shape[0], pairs]
    values = torch.cat((upper, lower), dim=dim)
    return upper.new_zeros(shape).index_copy_(dim, torch.cat((upper_index, lower_index)), values)


def _groups(blocks: Blocks) -> List[int]:
    """Number of atoms g n of each group."""
    return [g * n for n, g in zip(blocks.sizes, blocks.groups)]


def split(x: Tensor, sizes: List[int], dim: int) -> List[Tensor]:
    """x split into ``sizes`` along ``dim``; one group is x itself (its split's backward would copy the gradient)."""
    if len(sizes) == 1:
        return [x]
    return x.split(sizes, dim=dim)


def neighbour_sum(weights: Tensor, rows: Tensor, blocks: Blocks) -> Tensor:
    """M_i = sum_{j != i} w_ij[part(r)] Y_j[r] per row r and channel, for symmetric weights w_ij = w_ji.

    Args:
        weights: (E, 3 C) weights of the edges i < j, one per part (I, A, S) and channel.
        rows: (10, C, N) rows Y of the atoms, in block order.
        blocks: the edges and groups.

    Returns:
        (10, C, N) rows M.
    """
    channels = rows.shape[1]
    sums: List[Tensor] = []
    groups = zip(split(weights, blocks.edges, 0), split(rows, _groups(blocks), 2), blocks.sizes, blocks.groups)
    for k, (w, y, n, g) in enumerate(groups):
        if blocks.dense[k]:
            w = _dense(w.t(), w.t(), blocks.upper[k], blocks.lower[k], g * n * n, 1).view(3, channels * g, n, n)
            y = y.reshape(10, channels * g, n).transpose(0, 1)  # (C g, 10, n)
            parts: List[Tensor] = []
            for w_part, y_part in zip(w.unbind(0), split_parts(y, 1)):
                parts.append(torch.matmul(y_part, w_part))  # (C g, rows, n): M^T = Y^T W (W symmetric)
            sums.append(torch.cat(parts, dim=1).transpose(0, 1).reshape(10, channels, g * n))
        else:
            atoms = y.permute(2, 0, 1).contiguous()  # (g n, 10, C)
            w = w.view(-1, 3, channels)  # edges first: a view
            total = pair_sum(w, atoms, blocks.local_receiver[k], blocks.local_sender[k], blocks.chunk)
            sums.append(total.permute(1, 2, 0))
    return torch.cat(sums, dim=2)


def embedding_sum(radial: Tensor, left: Tensor, right: Tensor, basis: Tensor, mirror: Tensor, blocks: Blocks) -> Tensor:
    """X_i = sum_{j != i} f_ij[part(r), c] B_ij[r], f_ij = radial_ij (left_i + right_j), per row r and channel c.

    Args:
        radial: (E, 3 C) symmetric radial weights of the edges i < j, per part and channel.
        left, right: (C, N) per-atom terms of the pair embedding, atoms in block order.
        basis: (E, 10) rows B_ij of the edges i < j; mirror: (E, 10) rows B_ji of their mirrors.
        blocks: the edges and groups.

    Returns:
        (10, C, N) rows, atoms in block order.
    """
    channels = left.shape[0]
    sums: List[Tensor] = []
    atom_groups = _groups(blocks)
    groups = zip(
        split(radial, blocks.edges, 0), split(basis, blocks.edges, 0), split(mirror, blocks.edges, 0),
        split(left, atom_groups, 1), split(right, atom_groups, 1), blocks.sizes, blocks.groups,
    )
    for k, (w, b, b_mirror, lw, rw, n, g) in enumerate(groups):
        if blocks.dense[k]:
            pairs = g * n * n
            w = _dense(w.t(), w.t(), blocks.upper[k], blocks.lower[k], pairs, 1).view(3, channels, g, n, n)
            w = w * (lw.reshape(channels, g, n, 1) + rw.reshape(channels, g, 1, n))
            w = w.view(3, channels, g * n, n).transpose(1, 2)  # (3, g n, C, n): one (C, n) matrix per atom
            b = _dense(b, b_mirror, blocks.upper[k], blocks.lower[k], pairs, 0).view(g * n, n, 10)
            parts: List[Tensor] = []
            for w_part, b_part in zip(w.unbind(0), split_parts(b, 2)):
                parts.append(torch.matmul(w_part, b_part))  # (g n, C, rows)
            sums.append(torch.cat(parts, dim=2).permute(2, 1, 0))
        else:
            lw, rw = lw.t(), rw.t()  # (g n, C)
            i, j = blocks.local_receiver[k], blocks.local_sender[k]
            # (E, 2, C) pair terms left_i + right_j of each edge, then of its mirror.
            pair = torch.stack(
                (lw.index_select(0, i) + rw.index_select(0, j), lw.index_select(0, j) + rw.index_select(0, i)), 1
            )
            f = w.view(-1, 1, 3, channels) * pair.unsqueeze(2)
            pair_basis = torch.stack((b, b_mirror), dim=1)
            total = basis_sum(f, pair_basis, i, j, g * n, blocks.chunk)
            sums.append(total.permute(1, 2, 0))
    return torch.cat(sums, dim=2)
