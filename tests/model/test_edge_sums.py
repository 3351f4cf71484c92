"""Edge-list sums (nn/edge_sums.py): values against dense sums, first and second derivatives against finite
differences, and what they keep for backward (float64)."""

import torch
from torch.autograd import gradcheck, gradgradcheck

from tnq_model.nn.edge_sums import basis_sum, pair_sum
from tnq_model.nn.cartesian import per_row

ATOMS, CHANNELS, CHUNK = 6, 3, 4  # chunks smaller than the edge list


def edges() -> tuple[torch.Tensor, torch.Tensor]:
    """Receivers i and senders j (i < j) of all but two atom pairs."""
    i, j = torch.triu_indices(ATOMS, ATOMS, 1)
    keep = torch.ones(i.shape[0], dtype=torch.bool)
    keep[[2, 9]] = False
    return i[keep], j[keep]


def dense(upper: torch.Tensor, lower: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """(N, N, ...) zeros holding the values of each edge at (i, j) and of its mirror at (j, i)."""
    full = upper.new_zeros(ATOMS, ATOMS, *upper.shape[1:])
    full = full.index_put((i, j), upper)
    return full.index_put((j, i), lower)


def inputs(seed: int, *shapes: tuple[int, ...]) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True) for shape in shapes]


def test_pair_sum_equals_dense_sum_and_differentiates_twice() -> None:
    i, j = edges()
    w, y = inputs(0, (len(i), 3, CHANNELS), (ATOMS, 10, CHANNELS))
    weights = dense(per_row(w, 1), per_row(w, 1), i, j)  # (N, N, 10, C), symmetric
    torch.testing.assert_close(pair_sum(w, y, i, j, CHUNK), torch.einsum("abrc,brc->arc", weights, y))
    assert gradcheck(lambda w, y: pair_sum(w, y, i, j, CHUNK), (w, y))
    assert gradgradcheck(lambda w, y: pair_sum(w, y, i, j, CHUNK), (w, y))


def test_basis_sum_equals_dense_sum_and_differentiates_twice() -> None:
    i, j = edges()
    f, basis = inputs(1, (len(i), 2, 3, CHANNELS), (len(i), 2, 10))
    weights = dense(per_row(f[:, 0], 1), per_row(f[:, 1], 1), i, j)  # (N, N, 10, C)
    rows = dense(basis[:, 0], basis[:, 1], i, j)  # (N, N, 10)
    expected = torch.einsum("abrc,abr->arc", weights, rows)
    torch.testing.assert_close(basis_sum(f, basis, i, j, ATOMS, CHUNK), expected)
    assert gradcheck(lambda f, b: basis_sum(f, b, i, j, ATOMS, CHUNK), (f, basis))
    assert gradgradcheck(lambda f, b: basis_sum(f, b, i, j, ATOMS, CHUNK), (f, basis))


def test_force_training_keeps_no_per_edge_rows() -> None:
    # The sums and their gradients save their inputs only, never (chunk, 10, C) gathers or products.
    i, j = edges()
    chunk = len(i)
    w, y, f, basis = inputs(2, (len(i), 3, CHANNELS), (ATOMS, 10, CHANNELS), (len(i), 2, 3, CHANNELS), (len(i), 2, 10))
    largest = max(w.numel(), y.numel(), f.numel(), basis.numel())
    assert chunk * 10 * CHANNELS > largest
    saved: list[int] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        energy = (pair_sum(w, y, i, j, chunk) * basis_sum(f, basis, i, j, ATOMS, chunk)).square().sum()
        gradients = torch.autograd.grad(energy, (w, y, f, basis), create_graph=True)
        sum(g.square().sum() for g in gradients).backward()
    assert saved and max(saved) <= largest
