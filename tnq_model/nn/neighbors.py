"""Neighbour lists of batched molecules in plain torch (no cross-molecule pairs), on molecule blocks.

Atoms are put in *block order*: molecules sorted by size, each molecule's atoms contiguous. Molecules of
one size n form a group of g molecules whose g * n * n ordered atom pairs (self pairs included) are laid
out as a dense (g, n, n) block; the blocks of all groups, concatenated, number the pairs 0..P-1.
"""

from typing import List, NamedTuple

import torch
from torch import Tensor


class Blocks(NamedTuple):
    """Where the edges lie among the P block pairs, and the groups of molecules of one size.

    index (2 E + N,) holds the pairs (i, j), i < j, of the E edges, then their mirrors (j, i), then the
    self pair (a, a) of each atom; sizes are the molecule sizes n (ascending), groups the number g of
    molecules of each size.
    """

    index: Tensor
    sizes: List[int]
    groups: List[int]


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


def block_pairs(sizes: List[int], groups: List[int], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Atoms i and j (block order) of every block pair (i, j), and the index of its mirror (j, i); (P,) each."""
    receivers: List[Tensor] = []
    senders: List[Tensor] = []
    mirrors: List[Tensor] = []
    start, pairs = 0, 0
    for n, g in zip(sizes, groups):
        atoms = torch.arange(start, start + g * n, device=device).view(g, n)
        receivers.append(atoms.unsqueeze(2).expand(g, n, n).flatten())
        senders.append(atoms.unsqueeze(1).expand(g, n, n).flatten())
        mirrors.append(pairs + torch.arange(g * n * n, device=device).view(g, n, n).transpose(1, 2).flatten())
        start += g * n
        pairs += g * n * n
    return torch.cat(receivers), torch.cat(senders), torch.cat(mirrors)


def block_edges(pos: Tensor, sizes: List[int], groups: List[int], cutoff: float) -> tuple[Blocks, Tensor, Tensor]:
    """Pairs (i, j), i < j, with |r_i - r_j| < cutoff, of atoms in block order (pos (N, 3) Å).

    Each unordered pair appears once; ``Blocks.index`` also places its mirror (j, i).

    Returns:
        the blocks, and atoms i (E,) and j (E,) of each edge.
    """
    receiver, sender, mirror = block_pairs(sizes, groups, pos.device)
    coords = pos.detach()  # the search itself needs no gradient
    vec = coords.index_select(0, receiver) - coords.index_select(0, sender)
    close = ((vec * vec).sum(-1) < cutoff * cutoff) & (receiver < sender)
    upper = close.nonzero().squeeze(1)
    # Self pair of local atom k of a group: start + (k // n) n^2 + (k % n) (n + 1) = start + k n + k % n.
    diagonals: List[Tensor] = []
    pairs = 0
    for n, g in zip(sizes, groups):
        local = torch.arange(g * n, device=pos.device)
        diagonals.append(pairs + local * n + local % n)
        pairs += g * n * n
    blocks = Blocks(torch.cat([upper, mirror[upper]] + diagonals), sizes, groups)
    return blocks, receiver[upper], sender[upper]


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
    _, upper, lower = block_edges(pos.index_select(0, order), sizes, groups, cutoff)
    i, j = order[torch.cat((upper, lower))], order[torch.cat((lower, upper))]
    vec = pos.index_select(0, i) - pos.index_select(0, j)
    return torch.stack((i, j)), torch.linalg.vector_norm(vec, dim=-1), vec
