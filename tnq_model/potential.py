"""Potential: TensorNet plus per-element reference energies and an energy scale and shift (eV)."""

from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from tnq_data.errors import TnqError

from .nn.state import multiplicity_to_spin
from .nn.tensornet import TensorNet


class Potential(nn.Module):
    """Molecular energies in eV from the store's conventions (total charge in e, multiplicity 2S+1).

    E_b = scale * TensorNet_b + shift * n_b + sum_{i in b} e_ref[Z_i, Q_b], n_b atoms in molecule b.

    Args:
        model: the network.
        atom_refs: reference energies in eV, (max_z,) per element, or (max_z, len(ref_charges)) per
            element and total charge; zeros when omitted.
        ref_charges: the total charges of the columns of ``atom_refs`` (empty: one charge-free column).
        scale: multiplies the network energy (eV per network unit).
        shift: per-atom energy offset in eV.
    """

    def __init__(
        self,
        model: TensorNet,
        atom_refs: Optional[Any] = None,
        ref_charges: Sequence[int] = (),
        scale: float = 1.0,
        shift: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        dtype = model.readout.linear.weight.dtype
        columns = max(1, len(ref_charges))
        refs = torch.zeros(model.max_z, columns, dtype=dtype)
        if atom_refs is not None:
            given = torch.as_tensor(atom_refs, dtype=dtype)
            if given.numel() != refs.numel() or given.shape[0] != model.max_z:
                raise TnqError(
                    f"atom_refs has shape {tuple(given.shape)}; expected ({model.max_z},) or "
                    f"({model.max_z}, {len(ref_charges)}) for ref_charges={list(ref_charges)}"
                )
            refs = given.reshape(model.max_z, columns)
        self.register_buffer("atom_refs", refs)
        self.register_buffer("ref_charges", torch.tensor(list(ref_charges), dtype=torch.long))
        self.register_buffer("scale", torch.tensor(scale, dtype=dtype))
        self.register_buffer("shift", torch.tensor(shift, dtype=dtype))
        self.uses_charge = "charge" in model.state
        self.uses_spin = "spin" in model.state

    @torch.jit.unused
    def config(self) -> Dict[str, Any]:
        """Everything besides the state dict needed to rebuild this potential."""
        dtype = str(self.atom_refs.dtype).removeprefix("torch.")
        return {"tensornet": self.model.config(), "ref_charges": self.ref_charges.tolist(), "dtype": dtype}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Potential":
        """An untrained potential with the architecture of ``config`` (see :meth:`config`)."""
        dtype = getattr(torch, config["dtype"])
        return cls(TensorNet(**config["tensornet"], dtype=dtype), ref_charges=config["ref_charges"])

    def _reference_column(self, total_charge: Tensor) -> Tensor:
        """Column of ``atom_refs`` for each molecule's total charge; (B,) -> (B,)."""
        if self.ref_charges.numel() == 0:
            return torch.zeros_like(total_charge, dtype=torch.long)
        match = total_charge.to(torch.long).unsqueeze(1) == self.ref_charges.unsqueeze(0)
        if not torch.jit.is_scripting() and not bool(match.any(1).all()):
            missing = sorted(set(total_charge[~match.any(1)].tolist()))
            raise TnqError(
                f"no reference energies for total charge(s) {missing}; this potential has them for "
                f"{self.ref_charges.tolist()}: refit the reference energies on data with those charges"
            )
        return match.to(torch.long).argmax(1)

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        total_charge: Tensor,
        multiplicity: Tensor,
        partial_charges: Optional[Tensor] = None,
    ) -> Tensor:
        """Energies (B,) in eV; z (N,), pos (N, 3) Å, batch (N,), total_charge (B,) e, multiplicity (B,) 2S+1."""
        charge = total_charge if self.uses_charge else None
        spin = multiplicity_to_spin(multiplicity) if self.uses_spin else None
        energy = self.model(z, pos, batch, charge, spin, partial_charges)
        column = self._reference_column(total_charge)
        atom_refs = self.atom_refs[z, column[batch]] + self.shift
        return self.scale * energy + torch.zeros_like(energy).index_add(0, batch, atom_refs)

    @torch.jit.export
    def energy_and_forces(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        total_charge: Tensor,
        multiplicity: Tensor,
        partial_charges: Optional[Tensor] = None,
        create_graph: bool = False,
    ) -> Tuple[Tensor, Tensor]:
        """Energies (B,) in eV and forces -dE/dpos (N, 3) in eV/Å; ``create_graph`` for force training."""
        if not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        energy = self.forward(z, pos, batch, total_charge, multiplicity, partial_charges)
        grads = torch.autograd.grad([energy.sum()], [pos], create_graph=create_graph)
        gradient = grads[0]
        assert gradient is not None, "energy does not depend on positions"
        return energy, -gradient
