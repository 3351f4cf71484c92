"""Every atom pair of every molecule of a batch, built with tensor operations (no loop over atoms)."""

import torch
from torch import Tensor


def molecule_pairs(batch: Tensor) -> Tensor:
    """All unordered pairs (i, j) of atoms in the same molecule, each once; ``batch`` (N,) need not be sorted.

    The sum over molecules of n_b (n_b - 1) / 2 pairs is built directly (never the (N, N) matrix of the
    whole batch): after a stable sort by molecule, atom k has ``end(k) - k - 1`` later partners in its
    molecule, laid out with one repeat_interleave.

    Returns:
        (2, P) int64 atom indices into the original order.
    """
    order = torch.argsort(batch, stable=True)
    sorted_batch = batch.index_select(0, order)
    num_atoms = batch.shape[0]
    ends = torch.cumsum(torch.bincount(sorted_batch), 0)
    atom = torch.arange(num_atoms, device=batch.device)
    partners = ends.index_select(0, sorted_batch) - atom - 1
    first = torch.repeat_interleave(atom, partners)
    starts = torch.cumsum(partners, 0) - partners
    pair = torch.arange(first.shape[0], device=batch.device)
    second = first + 1 + pair - starts.index_select(0, first)
    return torch.stack((order.index_select(0, first), order.index_select(0, second)))
