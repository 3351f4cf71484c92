"""Sums over the edge lists of nn/blocks.py, ``chunk`` edges at a time so that the (chunk, 10, C) temporaries
stay in cache: M_i = sum_j w_ij[part(r)] y_j[r] (``pair_sum``, the messages) and X_i = sum_j f_ij[part(r)] B_ij[r]
(``basis_sum``, the embedding), over the edges (i, j) and their mirrors.

Both are partial derivatives of trilinear forms over the edges (``_PairForm``, ``_BasisForm``). In eager mode
each runs as one autograd node (``_FormGradient``) that saves only its (E, 3, C), (E, 2, 10) or (N, 10, C)
inputs, never the (chunk, 10, C) gathers and products of every chunk: its derivatives are partial derivatives
of the same form, so forces and their own gradients (double backward, force training) keep that memory.
TorchScript runs the same chunked sums under plain autograd.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .cartesian import per_row, split_parts


def _part_sums(rows: Tensor, out: Tensor) -> None:
    """Sums of the rows of each part into ``out``: (E, 10, C) -> (E, 3, C)."""
    for k, part in enumerate(split_parts(rows, 1)):
        torch.sum(part, dim=1, out=out[:, k])


def _scale_parts(rows: Tensor, w: Tensor) -> Tensor:
    """rows (E, 10, C) times the weight of their part, w (E, 3, C): in place, except under TorchScript, whose
    autograd records these kernels (eager runs them inside ``_FormGradient``, where nothing is recorded)."""
    if torch.jit.is_scripting():
        return rows * per_row(w, 1)
    for k, part in enumerate(split_parts(rows, 1)):
        part.mul_(w[:, k : k + 1])
    return rows


def _times(a: Tensor, b: Tensor) -> Tensor:
    """a * b, in place into ``a`` except under TorchScript (see ``_scale_parts``)."""
    if torch.jit.is_scripting():
        return a * b
    return a.mul_(b)


def _pair_scatter(w: Tensor, y: Tensor, receiver: Tensor, sender: Tensor, chunk: int) -> Tensor:
    """M_i = sum_j w_ij[part(r)] y_j[r] over the edges (i, j) and their mirrors, ``chunk`` edges at a time.

    Args:
        w: (E, 3, C) weights of the edges, per part and channel; y: (N, 10, C) atom rows.
        receiver, sender: (E,) atoms i and j of the edges.

    Returns:
        (N, 10, C) rows M.
    """
    total = torch.zeros_like(y)
    for w_chunk, i, j in zip(w.split(chunk), receiver.split(chunk), sender.split(chunk)):
        total.index_add_(0, i, _scale_parts(y.index_select(0, j), w_chunk))
        total.index_add_(0, j, _scale_parts(y.index_select(0, i), w_chunk))
    return total


def _basis_scatter(f: Tensor, basis: Tensor, receiver: Tensor, sender: Tensor, atoms: int, chunk: int) -> Tensor:
    """X_i = sum_j f_ij[part(r)] B_ij[r] over the edges (i, j) and their mirrors, ``chunk`` edges at a time.

    Args:
        f: (E, 2, 3, C) weights of each edge (i, j) then of its mirror (j, i), per part and channel.
        basis: (E, 2, 10) rows B_ij then B_ji of each edge.
        receiver, sender: (E,) atoms i and j of the edges; atoms: N.

    Returns:
        (N, 10, C) rows X.
    """
    total = f.new_zeros(atoms, 10, f.shape[3])
    for f_chunk, b_chunk, i, j in zip(f.split(chunk), basis.split(chunk), receiver.split(chunk), sender.split(chunk)):
        total.index_add_(0, i, _times(per_row(f_chunk[:, 0], 1), b_chunk[:, 0].unsqueeze(2)))
        total.index_add_(0, j, _times(per_row(f_chunk[:, 1], 1), b_chunk[:, 1].unsqueeze(2)))
    return total


class _PairForm:
    """Psi(w, y, m) = sum_edges sum_{r, c} w_ij[part(r), c] (m_i[r, c] y_j[r, c] + m_j[r, c] y_i[r, c]).

    Its gradient in m is ``_pair_scatter(w, y)``, in y ``_pair_scatter(w, m)``, in w the per-part row sums
    of m_i y_j + m_j y_i (E, 3, C). Shapes as ``_pair_scatter``.
    """

    def __init__(self, receiver: Tensor, sender: Tensor, chunk: int) -> None:
        self.receiver, self.sender, self.chunk = receiver, sender, chunk

    def gradient(self, which: int, args: List[Optional[Tensor]]) -> Tensor:
        w, y, m = args
        i, j, chunk = self.receiver, self.sender, self.chunk
        if which == 0:
            assert y is not None and m is not None
            out = y.new_empty(i.shape[0], 3, y.shape[2])
            for out_chunk, i_c, j_c in zip(out.split(chunk), i.split(chunk), j.split(chunk)):
                rows = m.index_select(0, i_c).mul_(y.index_select(0, j_c))
                _part_sums(rows.addcmul_(m.index_select(0, j_c), y.index_select(0, i_c)), out_chunk)
            return out
        assert w is not None
        other = m if which == 1 else y
        assert other is not None
        return _pair_scatter(w, other, i, j, chunk)

    def edge_and_atom_gradients(self, w: Tensor, y: Tensor, m: Tensor) -> Tuple[Tensor, Tensor]:
        """The gradients in w and in y together, from one gather of each of m_i, m_j, y_i, y_j per chunk."""
        i, j, chunk = self.receiver, self.sender, self.chunk
        grad_w = y.new_empty(i.shape[0], 3, y.shape[2])
        grad_y = torch.zeros_like(y)
        for w_chunk, out_chunk, i_c, j_c in zip(w.split(chunk), grad_w.split(chunk), i.split(chunk), j.split(chunk)):
            m_i, m_j = m.index_select(0, i_c), m.index_select(0, j_c)
            rows = y.index_select(0, j_c).mul_(m_i)
            _part_sums(rows.addcmul_(m_j, y.index_select(0, i_c)), out_chunk)
            grad_y.index_add_(0, j_c, _scale_parts(m_i, w_chunk))
            grad_y.index_add_(0, i_c, _scale_parts(m_j, w_chunk))
        return grad_w, grad_y


class _BasisForm:
    """Phi(f, B, x) = sum_edges sum_{r, c} (f_ij[part(r), c] B_ij[r] x_i[r, c] + f_ji[part(r), c] B_ji[r] x_j[r, c]).

    Its gradient in x is ``_basis_scatter(f, B)``; in f and B the matching per-edge contractions.
    Shapes as ``_basis_scatter``.
    """

    def __init__(self, receiver: Tensor, sender: Tensor, atoms: int, chunk: int) -> None:
        self.receiver, self.sender, self.atoms, self.chunk = receiver, sender, atoms, chunk

    def gradient(self, which: int, args: List[Optional[Tensor]]) -> Tensor:
        f, basis, x = args
        if which == 2:
            assert f is not None and basis is not None
            return _basis_scatter(f, basis, self.receiver, self.sender, self.atoms, self.chunk)
        assert x is not None
        # The other edge argument, in chunks: B for the gradient in f, f for the gradient in B.
        edge_values = basis if which == 0 else f
        assert edge_values is not None
        edges = edge_values.shape[0]
        out = x.new_empty([edges, 2, 3, x.shape[2]] if which == 0 else [edges, 2, 10])  # (E, 2, 3, C) or (E, 2, 10)
        for out_chunk, values, i, j in zip(
            out.split(self.chunk), edge_values.split(self.chunk), self.receiver.split(self.chunk), self.sender.split(self.chunk)
        ):
            for direction, atoms in enumerate((i, j)):
                rows = x.index_select(0, atoms)  # (chunk, 10, C)
                if which == 0:
                    _part_sums(rows.mul_(values[:, direction].unsqueeze(2)), out_chunk[:, direction])
                else:
                    torch.sum(_scale_parts(rows, values[:, direction]), dim=2, out=out_chunk[:, direction])
        return out

    def edge_and_atom_gradients(self, f: Tensor, basis: Tensor, x: Tensor) -> Tuple[Tensor, Tensor]:
        """The gradients in f and in B together, from one gather of each of x_i, x_j per chunk."""
        edges, channels = f.shape[0], x.shape[2]
        grad_f, grad_basis = x.new_empty(edges, 2, 3, channels), x.new_empty(edges, 2, 10)
        chunk = self.chunk
        pieces = zip(grad_f.split(chunk), grad_basis.split(chunk), f.split(chunk), basis.split(chunk),
                     self.receiver.split(chunk), self.sender.split(chunk))
        for f_out, b_out, f_chunk, b_chunk, i, j in pieces:
            for direction, atoms in enumerate((i, j)):
                rows = x.index_select(0, atoms)  # (chunk, 10, C)
                torch.sum(rows * per_row(f_chunk[:, direction], 1), dim=2, out=b_out[:, direction])
                _part_sums(rows.mul_(b_chunk[:, direction].unsqueeze(2)), f_out[:, direction])
        return grad_f, grad_basis


class _FormGradient(torch.autograd.Function):
    """The gradient of a trilinear ``form`` in its argument ``which`` (given as None), as one autograd node.

    It saves only the other two arguments; its own derivatives are gradients of the same form, so it
    is differentiable to any order. A backward that builds no graph (plain forces) computes the two
    gradients of the sum (``which`` = 2) in one pass over the edges (``edge_and_atom_gradients``).
    """

    @staticmethod
    def forward(ctx, form, which: int, a: Optional[Tensor], b: Optional[Tensor], c: Optional[Tensor]) -> Tensor:
        ctx.form, ctx.which = form, which
        ctx.save_for_backward(a, b, c)
        return form.gradient(which, [a, b, c])

    @staticmethod
    def backward(ctx, grad: Tensor):
        args = list(ctx.saved_tensors)
        grads: List[Optional[Tensor]] = [None, None, None]
        if ctx.which == 2 and all(ctx.needs_input_grad[2:4]) and not torch.is_grad_enabled():
            grads[0], grads[1] = ctx.form.edge_and_atom_gradients(args[0], args[1], grad)
            return (None, None, *grads)
        for other in range(3):
            if other != ctx.which and ctx.needs_input_grad[2 + other]:
                inputs = list(args)
                inputs[ctx.which], inputs[other] = grad, None
                grads[other] = _FormGradient.apply(ctx.form, other, *inputs)
        return (None, None, *grads)


def pair_sum(w: Tensor, y: Tensor, receiver: Tensor, sender: Tensor, chunk: int) -> Tensor:
    """M_i = sum_j w_ij[part(r)] y_j[r] over the edges (i, j) and their mirrors, as one autograd node.

    Args:
        w: (E, 3, C) weights of the edges, per part and channel; y: (N, 10, C) atom rows.
        receiver, sender: (E,) atoms i and j of the edges; chunk: edges per gather/scatter step.

    Returns:
        (N, 10, C) rows M.
    """
    if torch.jit.is_scripting():
        return _pair_scatter(w, y, receiver, sender, chunk)
    return _FormGradient.apply(_PairForm(receiver, sender, chunk), 2, w, y, None)


def basis_sum(f: Tensor, basis: Tensor, receiver: Tensor, sender: Tensor, atoms: int, chunk: int) -> Tensor:
    """X_i = sum_j f_ij[part(r)] B_ij[r] over the edges (i, j) and their mirrors, as one autograd node.

    Args:
        f: (E, 2, 3, C) weights of each edge (i, j) then of its mirror (j, i), per part and channel.
        basis: (E, 2, 10) rows B_ij then B_ji of each edge.
        receiver, sender: (E,) atoms i and j of the edges; atoms: N; chunk: edges per gather/scatter step.

    Returns:
        (N, 10, C) rows X.
    """
    if torch.jit.is_scripting():
        return _basis_scatter(f, basis, receiver, sender, atoms, chunk)
    return _FormGradient.apply(_BasisForm(receiver, sender, atoms, chunk), 2, f, basis, None)
