"""Neighbour lists of batched molecules in plain torch (no cross-molecule pairs)."""

import torch
from torch import Tensor


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
    order = torch.argsort(batch, stable=True)
    mol = batch[order]
    counts = torch.bincount(mol)
    mol_start = torch.cumsum(counts, 0) - counts
    per_atom = counts[mol]
    first = torch.cumsum(per_atom, 0) - per_atom
    i_sorted = torch.repeat_interleave(torch.arange(mol.shape[0], device=pos.device), per_atom)
    offset = torch.arange(i_sorted.shape[0], device=pos.device) - first[i_sorted]
    j_sorted = mol_start[mol[i_sorted]] + offset
    distinct = i_sorted != j_sorted
    i = order[i_sorted[distinct]]
    j = order[j_sorted[distinct]]
    vec = pos.index_select(0, i) - pos.index_select(0, j)
    close = (vec * vec).sum(-1) < cutoff * cutoff
    vec = vec[close]
    edge_index = torch.stack((i[close], j[close]))
    return edge_index, torch.linalg.vector_norm(vec, dim=-1), vec
