"""Smooth switch between two distances, shared by the short-range physical terms (zbl, coulomb)."""

import torch
from torch import Tensor


def _bump(t: Tensor) -> Tensor:
    """exp(-1/t) for t > 0, else 0: smooth at t = 0 with every derivative zero there."""
    positive = t > 0
    safe = torch.where(positive, t, torch.ones_like(t))  # keeps 1/t and its gradient finite
    return torch.where(positive, torch.exp(-1.0 / safe), torch.zeros_like(t))


def smooth_switch(dist: Tensor, switch_on: float, switch_off: float) -> Tensor:
    """s(d): 1 for d <= switch_on, 0 for d >= switch_off, C-infinity in between (d in Å, shape kept).

    With x = (d - on) / (off - on) and g(t) = exp(-1/t) (t > 0, else 0), s = g(1 - x) / (g(x) + g(1 - x)).
    Every derivative of s vanishes at both ends, so a term multiplied by s, its forces and its
    Hessian all stay continuous at the ends; it is the switch SpookyNet uses for the same purpose.
    """
    x = (dist - switch_on) / (switch_off - switch_on)
    inner, outer = _bump(1.0 - x), _bump(x)
    total = inner + outer  # > 0 everywhere: at least one of x, 1 - x is positive
    return inner / total
