"""Per-atom charge head with exact conservation of each molecule's total charge."""

import torch
from torch import Tensor, nn

from .errors import ModelInputError


def conserve_charge(raw: Tensor, batch: Tensor, total_charge: Tensor) -> Tensor:
    """Uniform correction q_i = raw_i + (Q_b - sum_{j in b} raw_j) / n_b of charges (N,) in e.

    ``total_charge`` (B,) holds Q_b in e (any numeric dtype), ``batch`` (N,) the molecule of each atom.
    The correction is taken in float64; after the cast back to ``raw``'s dtype the rounding left over in
    each molecule (about sqrt(n_b) float32 roundings) is added to its last atom, so the exact sum of
    the float32 charges is Q_b to half a float32 rounding of one charge (< 1e-6 e for |q| < 8 e).
    Raw charges that already sum to Q_b come back unchanged. Molecules without atoms are ignored.

    Why uniform (SpookyNet's choice): it is exact, parameter-free, cheap and its gradient is simple.
    AIMNet2 instead spreads the excess with learned per-atom weights, which lets polarisable atoms take
    more of it; the choice can be revisited if learned charges of large ions need it.
    """
    num_molecules = total_charge.shape[0]
    if raw.shape != batch.shape:
        raise ModelInputError(f"`raw` charges have shape {list(raw.shape)}; expected ({batch.shape[0]},), one per atom")
    if total_charge.dim() != 1 or (batch.numel() > 0 and int(batch.max()) >= num_molecules):
        raise ModelInputError(
            f"`total_charge` has shape {list(total_charge.shape)}; expected ({int(batch.max()) + 1},), one per molecule"
        )
    wide = raw.to(torch.float64)
    sums = torch.zeros(num_molecules, dtype=torch.float64, device=raw.device).index_add(0, batch, wide)
    counts = torch.bincount(batch, minlength=num_molecules).clamp(min=1).to(torch.float64)
    target = total_charge.to(torch.float64)
    charges = (wide + ((target - sums) / counts).index_select(0, batch)).to(raw.dtype)
    if raw.dtype == torch.float64:
        return charges
    # The cast's rounding, summed per molecule, goes to one atom: a constant, it carries no gradient.
    rounding = target - torch.zeros_like(sums).index_add(0, batch, charges.detach().to(torch.float64))
    atom = torch.arange(batch.shape[0], device=batch.device)
    last = torch.full_like(rounding, -1, dtype=torch.long).scatter_reduce(0, batch, atom, "amax")
    present = last >= 0
    return charges.index_add(0, last[present], rounding[present].to(raw.dtype))


class ChargeHead(nn.Module):
    """Charges (N,) in e from invariant atom features (N, C): MLP C -> C/2 -> 1 (SiLU), then ``conserve_charge``.

    Each molecule's charges sum to its total charge (``conserve_charge`` says how exactly and why uniform).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 2:
            raise ModelInputError(f"ChargeHead needs `channels` >= 2; got {channels}")
        self.mlp = nn.Sequential(nn.Linear(channels, channels // 2), nn.SiLU(), nn.Linear(channels // 2, 1))

    def forward(self, features: Tensor, batch: Tensor, total_charge: Tensor) -> Tensor:
        """features (N, C), batch (N,), total_charge (B,) in e -> charges (N,) in e, features' dtype."""
        return conserve_charge(self.mlp(features).squeeze(-1), batch, total_charge)
