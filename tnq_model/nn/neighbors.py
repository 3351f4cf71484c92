"""Neighbour lists of batched molecules in plain torch (no cross-molecule pairs), on molecule blocks.

Atoms are put in *block order*: molecules sorted by size, each molecule's atoms contiguous. Molecules of
one size n form a group of g molecules whose g * n * n ordered atom pairs (self pairs included) are laid
out as a dense (g, n, n) block (blocks.py).
"""

from typing import List, NamedTuple

import torch
from torch import Tensor

#: Default of TensorNet.dense_min_fill: a group whose edges fill less than this fraction of its g n^2
#: block pairs sums over edge lists (blocks.py): dense blocks of sparse molecules cost more than
#: gathering and scattering their edges.
DENSE_MIN_FILL = 0.5
#: Default of TensorNet.edge_chunk: edges per gather/scatter step of the edge-list sums.
EDGE_CHUNK = 2048


class Blocks(NamedTuple):
    """Where the edges lie in the dense (g, n, n) pair blocks of the molecule-size groups.

    sizes are the molecule sizes n (ascending), groups the number g of molecules of each size and
    edges the number of edges (i, j), i < j, of each group; the edges are ordered by group. receiver (E,)
    and sender (E,) are the atoms i and j in block order. Per group: upper holds each edge's pair index
    b n^2 + i n + j inside the group's block (b: molecule in the group, i, j: atoms in the molecule),
    lower that of its mirror (j, i), and local_receiver, local_sender its atoms counted from the group's
    first atom. dense tells, per group, whether its sums use the dense blocks (edges fill at least
    ``dense_min_fill`` of them) or the edge lists, ``chunk`` edges at a time.
    """

    sizes: List[int]
    groups: List[int]
    edges: List[int]
    receiver: Tensor
    sender: Tensor
    upper: List[Tensor]
    lower: List[Tensor]
    local_receiver: List[Tensor]
    local_sender: List[Tensor]
    dense: List[bool]
    chunk: int


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


def block_edges(
    pos: Tensor, sizes: List[int], groups: List[int], cutoff: float, dense_min_fill: float, chunk: int
) -> Blocks:
    """Pairs (i, j), i < j, with |r_i - r_j| < cutoff, of atoms in block order (pos (N, 3) Å).

    Each unordered pair appears once (``Blocks.receiver`` i, ``Blocks.sender`` j); ``Blocks.lower``
    places its mirror (j, i) in the dense blocks. A group is dense when its edges fill at least
    ``dense_min_fill`` of its pairs; edge-list sums take ``chunk`` edges at a time.
    """
    coords = pos.detach()  # the search itself needs no gradient
    uppers: List[Tensor] = []
    lowers: List[Tensor] = []
    receivers: List[Tensor] = []
    senders: List[Tensor] = []
    edges: List[int] = []
    dense: List[bool] = []
    starts: List[int] = []
    start = 0
    for n, g in zip(sizes, groups):
        starts.append(start)
        first, second = torch.triu_indices(n, n, 1, device=pos.device).unbind(0)
        molecule = torch.arange(g, device=pos.device).unsqueeze(1)
        receiver = (molecule * n + first).flatten()
        sender = (molecule * n + second).flatten()
        vec = coords.index_select(0, start + receiver) - coords.index_select(0, start + sender)
        close = ((vec * vec).sum(-1) < cutoff * cutoff).nonzero().squeeze(1)
        uppers.append((molecule * (n * n) + first * n + second).flatten()[close])
        lowers.append((molecule * (n * n) + second * n + first).flatten()[close])
        receivers.append(receiver[close])
        senders.append(sender[close])
        edges.append(int(close.shape[0]))
        dense.append(2 * edges[-1] >= dense_min_fill * g * n * n)
        start += g * n
    receiver = torch.cat([local + first_atom for local, first_atom in zip(receivers, starts)])
    sender = torch.cat([local + first_atom for local, first_atom in zip(senders, starts)])
    return Blocks(sizes, groups, edges, receiver, sender, uppers, lowers, receivers, senders, dense, chunk)


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
    blocks = block_edges(pos.index_select(0, order), sizes, groups, cutoff, DENSE_MIN_FILL, EDGE_CHUNK)
    receiver, sender = blocks.receiver, blocks.sender
    i, j = order[torch.cat((receiver, sender))], order[torch.cat((sender, receiver))]
    vec = pos.index_select(0, i) - pos.index_select(0, j)
    return torch.stack((i, j)), torch.linalg.vector_norm(vec, dim=-1), vec
