import itertools

import torch

from tnq_model.nn import neighbor_pairs


def brute_force(pos: torch.Tensor, batch: torch.Tensor, cutoff: float) -> set[tuple[int, int]]:
    pairs = set()
    for i, j in itertools.permutations(range(len(pos)), 2):
        if batch[i] == batch[j] and float(torch.linalg.norm(pos[i] - pos[j])) < cutoff:
            pairs.add((i, j))
    return pairs


def test_pairs_equal_brute_force_on_unsorted_batch() -> None:
    generator = torch.Generator().manual_seed(3)
    # Four molecules placed on top of each other, so a cross-molecule pair would be within the cutoff.
    counts = [5, 1, 9, 4]
    batch = torch.cat([torch.full((n,), b) for b, n in enumerate(counts)])
    batch = batch[torch.randperm(len(batch), generator=generator)]
    pos = 3.0 * torch.rand(len(batch), 3, generator=generator, dtype=torch.float64)
    edge_index, dist, vec = neighbor_pairs(pos, batch, cutoff=2.5)
    found = set(map(tuple, edge_index.t().tolist()))
    assert len(found) == edge_index.shape[1]
    assert found == brute_force(pos, batch, 2.5)
    i, j = edge_index
    torch.testing.assert_close(vec, pos[i] - pos[j])
    torch.testing.assert_close(dist, torch.linalg.norm(pos[i] - pos[j], dim=1))
    assert bool((batch[i] == batch[j]).all())


def test_single_atom_molecules_have_no_pairs() -> None:
    pos = torch.zeros(3, 3)
    edge_index, dist, vec = neighbor_pairs(pos, torch.tensor([0, 1, 2]), cutoff=5.0)
    assert edge_index.shape == (2, 0) and dist.shape == (0,) and vec.shape == (0, 3)
