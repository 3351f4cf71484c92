"""Nonlocal attention of SpookyNet (Unke et al. 2021): linear-scaling softmax attention over each molecule's atoms.

Softmax attention, y_i = sum_j exp(q_i . k_j / sqrt(C)) v_j / sum_j exp(q_i . k_j / sqrt(C)) over the atoms j of
atom i's molecule, costs O(n^2) per molecule. Performer's positive random features (FAVOR+, Choromanski et al.
2021) write the kernel as an average, exp(x . y) = E_w[exp(w . x - |x|^2 / 2) exp(w . y - |y|^2 / 2)] for
w ~ N(0, I), and estimate it with m fixed directions w_a: with phi(x)_a = exp(w_a . x - |x|^2 / 2),

    y_i = phi(q_i) . S_b / phi(q_i) . z_b,   S_b = sum_{j in b} phi(k_j) v_j^T (m, C),   z_b = sum_{j in b} phi(k_j) (m,),

so each molecule b needs one (m, C) sum: O(n m C) time and O(n (m + C) + m C) memory for n atoms, linear in
the atom count, where exact attention takes O(n^2 C) time and O(n^2) memory.
"""

from typing import List, Optional

import torch
from torch import Tensor, nn

from .errors import ModelInputError
from .neighbors import molecule_blocks


def orthogonal_gaussian_directions(
    num_features: int, dim: int, generator: Optional[torch.Generator] = None
) -> Tensor:
    """(num_features, dim) float64 rows w_a, each marginally N(0, I_dim), orthogonal within blocks of ``dim`` rows.

    Each block is a Haar-random orthogonal matrix (QR of a Gaussian matrix, signs fixed by R's diagonal) whose
    rows are rescaled to the lengths of independent Gaussian vectors (Performer's orthogonal random features:
    the same mean as independent rows, a smaller variance).
    """
    blocks = []
    for _ in range(-(-num_features // dim)):
        q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
        blocks.append((q * torch.sign(torch.diagonal(r))).t())
    rows = torch.cat(blocks)[:num_features]
    lengths = torch.linalg.vector_norm(torch.randn(num_features, dim, generator=generator, dtype=torch.float64), dim=1)
    return rows * lengths.unsqueeze(1)


def log_positive_features(x: Tensor, directions: Tensor) -> Tensor:
    """log phi(x) (N, m): w_a . x - |x|^2 / 2 for x (N, d) and directions w (m, d)."""
    return x @ directions.t() - 0.5 * (x * x).sum(-1, keepdim=True)


def random_feature_attention(queries: Tensor, keys: Tensor, values: Tensor, batch: Tensor, directions: Tensor) -> Tensor:
    """Random-feature estimate (N, C) of softmax attention exp(q_i . k_j) within each molecule (module docstring).

    queries and keys (N, d) already carry any temperature; values (N, C); batch (N,) molecule of each atom
    (any order); directions (m, d). The molecules of each size n form a group of g (block order,
    neighbors.py) whose sums S_b are g batched (m, n) x (n, C) matrix products: the loop is over distinct
    sizes, never over molecules or atoms. Both shifts below cancel exactly between numerator and
    denominator, so they carry no gradient: each query's features are divided by their largest, each
    molecule's key features by the largest of that molecule (Performer's guard against under- and
    overflow of exp).
    """
    order, sizes, groups = molecule_blocks(batch)
    log_q = log_positive_features(queries.index_select(0, order), directions)
    log_k = log_positive_features(keys.index_select(0, order), directions)
    phi_q = torch.exp(log_q - log_q.detach().amax(dim=1, keepdim=True))
    atoms = [n * g for n, g in zip(sizes, groups)]
    num_features, channels = directions.shape[0], values.shape[1]
    parts: List[Tensor] = []
    for q, k, v, n, g in zip(phi_q.split(atoms), log_k.split(atoms), values.index_select(0, order).split(atoms),
                             sizes, groups):
        k = k.view(g, n, num_features)
        phi_k = torch.exp(k - k.detach().amax(dim=[1, 2], keepdim=True))
        q = q.view(g, n, num_features)
        sums = torch.bmm(phi_k.transpose(1, 2), v.view(g, n, channels))  # (g, m, C)
        denominator = (q * phi_k.sum(dim=1, keepdim=True)).sum(-1, keepdim=True)
        # The floor is reached only if every feature of a query underflows (0 / 0 would give NaN).
        parts.append((torch.bmm(q, sums) / denominator.clamp_min(1e-30)).view(g * n, channels))
    return torch.zeros_like(values).index_copy(0, order, torch.cat(parts))


class NonlocalAttention(nn.Module):
    """Attention update (N, C) of invariant atom features (N, C) over the atoms of each molecule.

    q_i = W_q x_i + b_q, k_i = W_k x_i, v_i = W_v x_i + b_v (C -> C; a key bias would only shift each
    query's logits by a constant) and y_i the random-feature softmax attention of q_i / C^(1/4) and
    k_j / C^(1/4) (``random_feature_attention``), in the units of the features. Atoms of different
    molecules never interact. The m directions are drawn once (``orthogonal_gaussian_directions``, from
    ``generator`` or torch's global generator) and kept as the buffer ``directions``: the model is
    deterministic and its checkpoints carry them. Invariant inputs give invariant outputs; permuting
    atoms permutes the rows.

    Args:
        channels: width C of the atom features.
        num_features: number m of random features (SpookyNet's choice m = C by default); time is O(N m C)
            for N atoms.
        generator: source of the random directions.
    """

    def __init__(self, channels: int, num_features: Optional[int] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        num_features = channels if num_features is None else num_features
        if channels < 1 or num_features < 1:
            raise ModelInputError(
                f"NonlocalAttention needs `channels` >= 1 and `num_features` >= 1; got {channels} and {num_features}"
            )
        self.query = nn.Linear(channels, channels)
        self.key = nn.Linear(channels, channels, bias=False)
        self.value = nn.Linear(channels, channels)
        self.register_buffer("directions", orthogonal_gaussian_directions(num_features, channels, generator))
        self.temperature = channels ** -0.25

    def forward(self, features: Tensor, batch: Tensor) -> Tensor:
        """features (N, C), batch (N,) molecule of each atom (any order) -> attention update (N, C)."""
        queries = self.query(features) * self.temperature
        keys = self.key(features) * self.temperature
        directions = self.directions.to(features.dtype)
        return random_feature_attention(queries, keys, self.value(features), batch, directions)
