"""Neighbour lists of batched molecules in plain torch (no cross-molecule pairs), on molecule blocks.

Atoms are put in *block order*: molecules sorted by size, each molecule's atoms contiguous. Molecules of
one size n form a group of g molecules whose g * n * n ordered atom pairs (self pairs included) are laid
out as a dense (g, n, n) block; the blocks of all groups, concatenated, number the pairs 0..P-1.
"""

from typing import List

import torch
from torch import Tensor


def molecule_blocks(batch: Tensor) -> tuple[Tensor, List[int], List[int]]:
    """Block order of the atoms of ``batch`` (N,) (need not be sorted).

    Returns:
        order (N,) atom indices in block order, then the distinct molecule sizes n (ascending) and how
        many molecules g have each size.
    """
    counts = torch.bincount(batch)
    # Sort key: molecule size first, then molecule index (stable keeps the atom order inside).
    key = counts[batch] * counts.shape[0] + batch
    order = torch.argsort(key, stable=True)
    sizes, groups = torch.unique(counts[counts > 0], return_counts=True)
    size_list: List[int] = sizes.tolist()
    group_list: List[int] = groups.tolist()
    return order, size_list, group_list


def block_pairs(sizes: List[int], groups: List[int], device: torch.device) -> tuple[Tensor, Tensor]:
    """Atoms (i, j), in block order, of every pair of the blocks; two (P,) int64 tensors."""
    receivers: List[Tensor] = []
    senders: List[Tensor] = []
    start = 0
    for n, g in zip(sizes, groups):
        atoms = torch.arange(start, start + g * n, device=device).view(g, n)
        receivers.append(atoms.unsqueeze(2).expand(g, n, n).flatten())
        senders.append(atoms.unsqueeze(1).expand(g, n, n).flatten())
        start += g * n
    return torch.cat(receivers), torch.cat(senders)


def block_edges(pos: Tensor, sizes: List[int], groups: List[int], cutoff: float) -> tuple[Tensor, Tensor, Tensor]:
    """Pairs (i, j), i != j, with |r_i - r_j| < cutoff, of atoms in block order (pos (N, 3) Å).

    Returns:
        pair (E,) index of each edge among the P block pairs, and its atoms i (E,) and j (E,).
    """
    receiver, sender = block_pairs(sizes, groups, pos.device)
    coords = pos.detach()  # the search itself needs no gradient
    vec = coords.index_select(0, receiver) - coords.index_select(0, sender)
    close = ((vec * vec).sum(-1) < cutoff * cutoff) & (receiver != sender)
    pair = close.nonzero().squeeze(1)
    return pair, receiver[pair], sender[pair]


def block_diagonal(sizes: List[int], groups: List[int], device: torch.device) -> Tensor:
    """Index among the P block pairs of each self pair (a, a), atoms a in block order; (N,) int64."""
    diagonals: List[Tensor] = []
    start = 0
    for n, g in zip(sizes, groups):
        local = torch.arange(g * n, device=device)
        diagonals.append(start + local * n + local % n)
        start += g * n * n
    return torch.cat(diagonals)


def neighbor_pairs(pos: Tensor, batch: Tensor, cutoff: float) -> tuple[Tensor, Tensor, Tensor]:
    """All ordered pairs (i, j), i != j, of atoms in the same molecule with |r_i - r_j| < cutoff.

    Only pairs inside each molecule are ever formed (sum over molecules of n_b^2 candidates, never
    the (N, N) matrix of the whole batch), so it is fast for molecules up to a few hundred atoms.
    ``batch`` need not be sorted.

    Args:
        pos: (N, 3) positions in Å.
        batch: (N,) int64 molecule index of each atom.
        cutoff: r_c in Å.

    Returns:
        edge_index (2, E) int64 with rows (i, j), distances (E,) in Å and vectors r_i - r_j (E, 3).
    """
    order, sizes, groups = molecule_blocks(batch)
    _, receiver, sender = block_edges(pos.index_select(0, order), sizes, groups, cutoff)
    i, j = order[receiver], order[sender]
    vec = pos.index_select(0, i) - pos.index_select(0, j)
    return torch.stack((i, j)), torch.linalg.vector_norm(vec, dim=-1), vec
