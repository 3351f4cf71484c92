"""Physical terms of TensorNet (SpookyNet's analytical corrections): learned charges, Coulomb, ZBL and D4."""

from typing import Dict, List, Optional, Sequence

from torch import Tensor, nn

from .charges import ChargeHead
from .coulomb import DampedCoulomb
from .d4 import DEFAULT_FUNCTIONAL, D4Dispersion
from .errors import ModelInputError
from .zbl import ZBLRepulsion

#: The physical terms TensorNet can add, in the order they are listed.
PHYSICS_TERMS = ("charges", "coulomb", "zbl", "d4", "nonlocal")
#: Terms that give a (B,) energy in eV, added to the network's.
ENERGY_TERMS = ("coulomb", "zbl", "d4")
#: Terms that read the learned charges: naming one switches "charges" on.
CHARGE_READERS = ("coulomb", "d4")


def validate_physics(physics: Sequence[str]) -> tuple[str, ...]:
    """Check the names of the physical terms of a model; returns them in ``PHYSICS_TERMS`` order, with
    "charges" added when a term that reads them (``CHARGE_READERS``) is named."""
    if isinstance(physics, str):
        raise ModelInputError(f"physics={physics!r} is a string; pass a list such as [{physics!r}]")
    names = tuple(physics)
    for name in names:
        if name not in PHYSICS_TERMS:
            raise ModelInputError(f"unknown physics term {name!r} in `physics`; use a subset of {list(PHYSICS_TERMS)}")
    if len(set(names)) != len(names):
        raise ModelInputError(f"`physics` {list(names)} names a term twice; list each once")
    if any(name in CHARGE_READERS for name in names):
        names = names + ("charges",)
    return tuple(name for name in PHYSICS_TERMS if name in names)


def validate_d4_functional(functional: str, physics: Sequence[str]) -> str:
    """Check that a D4 functional other than the default comes with "d4" among the (validated) ``physics``."""
    if functional != DEFAULT_FUNCTIONAL and "d4" not in physics:
        raise ModelInputError(
            f"d4_functional {functional!r} needs d4 in physics {list(physics)}; add d4 or drop d4_functional"
        )
    return functional


class PhysicalTerms(nn.Module):
    """The physical terms of a model, each optional (None when off; parameters: the charge head's, ZBL's).

    D4 needs the optional tad-dftd4 (``D4Dispersion``); a model with it cannot be scripted by TorchScript.

    Args:
        physics: a subset of ``PHYSICS_TERMS`` (checked by ``validate_physics``).
        channels: width C of the invariant atom features the charge head reads.
        cutoff: the model's neighbour cutoff r_c in Å. ZBL is switched off between r_c / 2 and r_c; the
            Coulomb damping ends between r_c / 4 and 3 r_c / 4 (SpookyNet's choices).
        d4_functional: the functional whose D4 damping parameters the "d4" term uses (``D4Dispersion``).
    """

    energy_terms: List[str]

    def __init__(
        self, physics: Sequence[str], channels: int, cutoff: float, d4_functional: str = DEFAULT_FUNCTIONAL
    ) -> None:
        super().__init__()
        names = validate_physics(physics)
        #: The terms that are on and give an energy, added to the network's in this order.
        self.energy_terms = [name for name in ENERGY_TERMS if name in names]
        self.charge_head = ChargeHead(channels) if "charges" in names else None
        self.coulomb = DampedCoulomb(cutoff / 4, 3 * cutoff / 4) if "coulomb" in names else None
        self.zbl = ZBLRepulsion(cutoff, cutoff / 2, trainable=True) if "zbl" in names else None
        self.d4 = D4Dispersion(d4_functional) if "d4" in names else None

    def forward(
        self, features: Tensor, z: Tensor, pos: Tensor, batch: Tensor, total_charge: Optional[Tensor]
    ) -> Dict[str, Tensor]:
        """The terms that are on: "charges" (N,) e, "coulomb", "zbl" and "d4" (B,) eV, B = max(batch) + 1.

        features (N, C) invariant atom features, z (N,), pos (N, 3) Å, batch (N,), total_charge (B,) e
        (needed with charges); all atom inputs in one (any) order, charges come back in that order.
        """
        parts: Dict[str, Tensor] = {}
        charge_head = self.charge_head
        if charge_head is not None:
            assert total_charge is not None, "learned charges need total_charge"
            charges = charge_head(features, batch, total_charge)
            parts["charges"] = charges
            coulomb = self.coulomb
            if coulomb is not None:
                parts["coulomb"] = coulomb(charges, pos, batch)
            d4 = self.d4
            if d4 is not None:
                parts["d4"] = d4(z, pos, batch, total_charge, charges)
        zbl = self.zbl
        if zbl is not None:
            parts["zbl"] = zbl(z, pos, batch)
        return parts
