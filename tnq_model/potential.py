"""Potential: TensorNet plus reference energies per element and per electronic state, in float64 (eV)."""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from tnq_core.errors import TnqError

from .nn.state import multiplicity_to_spin
from .nn.tensornet import TensorNet


def _table(values: Optional[Any], length: int, name: str) -> Tensor:
    """A float64 (length,) table of reference values, zeros when ``values`` is None."""
    if values is None:
        return torch.zeros(length, dtype=torch.float64)
    table = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if table.numel() != length:
        raise TnqError(f"{name} has {table.numel()} values; expected {length}, one per listed state")
    return table


class Potential(nn.Module):
    """Molecular energies in eV from the store's conventions (total charge in e, multiplicity 2S+1).

    E_b = scale * TensorNet_b + shift * n_b + sum_{i in b} e_ref[Z_i] + o_Q[Q_b] + o_M[M_b] + Coulomb_b + ZBL_b.

    The physical terms of the model (``model.physics``; Coulomb and ZBL, in eV) are added unscaled: ``scale``
    multiplies the network's energy only.

    The network may run in float32; the references, the sum and the returned energies are float64, so
    totals of -1e5 eV keep sub-meV precision. A total charge (multiplicity) missing from ``ref_charges``
    (``ref_multiplicities``) has no reference energy and is an error, in TorchScript too; empty lists
    accept any value. A state the network is conditioned on, or that the references depend on, must be
    given (a model with learned charges needs the total charge); only a model that is conditioned on neither
    and knows only Q = 0 (M = 1) needs none.

    Args:
        model: the network.
        atom_refs: per-element reference energies in eV, (max_z,); zeros when omitted. Checkpoints of
            format 2 may hold one column per total charge, (max_z, len(ref_charges)).
        ref_charges: the total charges with a reference energy (empty: any).
        charge_offsets: o_Q in eV, one per ``ref_charges``; zeros when omitted.
        ref_multiplicities: the multiplicities 2S+1 with a reference energy (empty: any).
        multiplicity_offsets: o_M in eV, one per ``ref_multiplicities``; zeros when omitted.
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
        charge_offsets: Optional[Any] = None,
        ref_multiplicities: Sequence[int] = (),
        multiplicity_offsets: Optional[Any] = None,
    ) -> None:
        super().__init__()
        self.model = model
        refs = torch.zeros(model.max_z, 1, dtype=torch.float64)
        if atom_refs is not None:
            given = torch.as_tensor(atom_refs, dtype=torch.float64)
            columns = given.shape[1] if given.dim() == 2 else 1
            if given.shape[0] != model.max_z or given.dim() > 2 or columns not in (1, max(1, len(ref_charges))):
                raise TnqError(
                    f"atom_refs has shape {tuple(given.shape)}; expected ({model.max_z},) or "
                    f"({model.max_z}, {len(ref_charges)}) for ref_charges={list(ref_charges)}"
                )
            refs = given.reshape(model.max_z, columns)
        self.register_buffer("atom_refs", refs)
        self.register_buffer("ref_charges", torch.tensor(list(ref_charges), dtype=torch.long))
        self.register_buffer("charge_offsets", _table(charge_offsets, len(ref_charges), "charge_offsets"))
        self.register_buffer("ref_multiplicities", torch.tensor(list(ref_multiplicities), dtype=torch.long))
        self.register_buffer(
            "multiplicity_offsets", _table(multiplicity_offsets, len(ref_multiplicities), "multiplicity_offsets")
        )
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float64))
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float64))
        self.uses_charge = "charge" in model.state
        self.uses_spin = "spin" in model.state
        self.learns_charges = "charges" in model.physics
        self.needs_charge = self.uses_charge or self.learns_charges or _depends_on_state(list(ref_charges), 0)
        self.needs_multiplicity = self.uses_spin or _depends_on_state(list(ref_multiplicities), 1)

    @torch.jit.unused
    def config(self) -> Dict[str, Any]:
        """Everything besides the state dict needed to rebuild this potential."""
        dtype = str(self.model.readout.linear.weight.dtype).removeprefix("torch.")
        return {"tensornet": self.model.config(), "ref_charges": self.ref_charges.tolist(),
                "ref_multiplicities": self.ref_multiplicities.tolist(),
                "atom_ref_columns": int(self.atom_refs.shape[1]), "dtype": dtype}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Potential":
        """An untrained potential with the architecture of ``config`` (see :meth:`config`)."""
        dtype = getattr(torch, config["dtype"])
        model = TensorNet(**config["tensornet"], dtype=dtype)
        refs = torch.zeros(model.max_z, config["atom_ref_columns"], dtype=torch.float64)
        return cls(model, refs, config["ref_charges"], ref_multiplicities=config["ref_multiplicities"])

    @torch.jit.unused
    def _unknown_state(self, name: str, values: Tensor, known: Tensor) -> None:
        """Raise the TnqError naming the values of ``name`` that have no reference energy."""
        missing = sorted({int(v) for v in values[~(values.unsqueeze(1) == known.unsqueeze(0)).any(1)].tolist()})
        raise TnqError(
            f"no reference energy for {name} {missing}: this potential knows {known.tolist()} (its training "
            "data); train on data with those states"
        )

    def _state_index(self, values: Tensor, known: Tensor, name: str) -> Tensor:
        """Index of each molecule's state in ``known`` (B,) -> (B,); zeros when ``known`` is empty."""
        if known.numel() == 0:
            return torch.zeros_like(values, dtype=torch.long)
        match = values.to(torch.long).unsqueeze(1) == known.unsqueeze(0)
        if not bool(match.any(1).all()):
            if torch.jit.is_scripting():
                raise RuntimeError("tnq: a " + name + " has no reference energy in this potential; see "
                                   "ref_charges and ref_multiplicities in its tnq_config.json")
            self._unknown_state(name, values, known)
        return match.to(torch.long).argmax(1)

    def _required(self, value: Optional[Tensor], needed: bool, name: str, default: int, batch: Tensor) -> Tensor:
        """``value``, or ``default`` for every molecule of ``batch`` when this potential does not need the state."""
        if value is not None:
            return value
        if needed:
            if torch.jit.is_scripting():
                raise RuntimeError("tnq: this potential needs the " + name + " of every molecule; pass it")
            raise TnqError(f"this potential needs the {name} of every molecule (it is conditioned on it, its learned "
                           f"charges sum to it, or its reference energies depend on it); pass {name.replace(' ', '_')} as a (B,) tensor")
        return torch.full((int(batch.max()) + 1,), default, dtype=torch.long, device=batch.device)

    def reference_energy(self, z: Tensor, batch: Tensor, total_charge: Tensor, multiplicity: Tensor) -> Tensor:
        """Float64 (B,) eV: sum of the atoms' references plus the molecule's state offsets."""
        charge_index = self._state_index(total_charge, self.ref_charges, "total charge")
        multiplicity_index = self._state_index(multiplicity, self.ref_multiplicities, "multiplicity")
        column = charge_index if self.atom_refs.shape[1] > 1 else torch.zeros_like(charge_index)
        atoms = self.atom_refs[z, column[batch]] + self.shift
        energy = torch.zeros(total_charge.shape[0], dtype=torch.float64, device=z.device).index_add(0, batch, atoms)
        if self.charge_offsets.numel() > 0:
            energy = energy + self.charge_offsets[charge_index]
        if self.multiplicity_offsets.numel() > 0:
            energy = energy + self.multiplicity_offsets[multiplicity_index]
        return energy

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        total_charge: Optional[Tensor] = None,
        multiplicity: Optional[Tensor] = None,
        partial_charges: Optional[Tensor] = None,
    ) -> Tensor:
        """Float64 energies (B,) in eV; z (N,), pos (N, 3) Å, batch (N,), total_charge (B,) e, multiplicity (B,) 2S+1."""
        return self.energy_and_parts(z, pos, batch, total_charge, multiplicity, partial_charges)[0]

    @torch.jit.export
    def energy_and_parts(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        total_charge: Optional[Tensor] = None,
        multiplicity: Optional[Tensor] = None,
        partial_charges: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Dict[str, Tensor]]:
        """`forward`'s energies and the network's `energy_parts` (e.g. learned "charges" (N,) e)."""
        total_charge = self._required(total_charge, self.needs_charge, "total charge", 0, batch)
        multiplicity = self._required(multiplicity, self.needs_multiplicity, "multiplicity", 1, batch)
        charge = total_charge if self.uses_charge or self.learns_charges else None
        spin = multiplicity_to_spin(multiplicity) if self.uses_spin else None
        parts = self.model.energy_parts(z, pos, batch, charge, spin, partial_charges)
        energy = self.scale * parts["network"].to(torch.float64)
        for term in self.model.terms.energy_terms:
            energy = energy + parts[term].to(torch.float64)
        return energy + self.reference_energy(z, batch, total_charge, multiplicity), parts

    @torch.jit.export
    def energy_and_forces(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        total_charge: Optional[Tensor] = None,
        multiplicity: Optional[Tensor] = None,
        partial_charges: Optional[Tensor] = None,
        create_graph: bool = False,
    ) -> Tuple[Tensor, Tensor]:
        """Float64 energies (B,) in eV and forces -dE/dpos (N, 3) in eV/Å, in the dtype of ``pos``."""
        if not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        energy = self.forward(z, pos, batch, total_charge, multiplicity, partial_charges)
        grads = torch.autograd.grad([energy.sum()], [pos], create_graph=create_graph)
        gradient = grads[0]
        assert gradient is not None, "energy does not depend on positions"
        return energy, -gradient


def _depends_on_state(known: List[int], neutral: int) -> bool:
    """Whether references listed for ``known`` states need the state given (anything beyond ``neutral``)."""
    return len(known) > 0 and known != [neutral]
