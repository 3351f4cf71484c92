"""TensorNet (Simeon and De Fabritiis, NeurIPS 2023) with charge and spin states (Simeon et al. 2024)."""

from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from .embedding import TensorEmbedding
from .interaction import Interaction
from .errors import ModelInputError
from .neighbors import DENSE_MIN_FILL, EDGE_CHUNK, block_edges, molecule_blocks
from .nonlocal_attention import NonlocalAttention
from .d4 import DEFAULT_FUNCTIONAL
from .physics import PhysicalTerms, validate_d4_functional, validate_physics
from .radial import ExpNormalBasis, cosine_cutoff
from .readout import ScalarReadout
from .state import (
    PARTIAL_CHARGE_PREFIX,
    ElectronicEmbedding,
    atom_attributes,
    check_state_inputs,
    validate_state,
)


class TensorNet(nn.Module):
    """O(3)-equivariant Cartesian tensor network predicting molecular energies.

    Args:
        hidden_channels: channels C of the node tensors.
        num_layers: number of interaction layers.
        num_rbf: number of exponential-normal radial functions.
        cutoff: neighbour cutoff r_c in Å.
        max_z: atomic numbers must be below this.
        trainable_rbf: learn the radial basis means and widths.
        state: attributes the model is conditioned on, in column order: ``"charge"`` (total charge,
            e), ``"spin"`` (unpaired electrons 2S), ``"charges/<scheme>"`` (partial charges, e).
            ``()`` is plain TensorNet.
        state_mode: ``"tensornet"`` (per-atom factor 1 + sum_k lambda_k a_ik in every layer) or
            ``"spooky"`` (SpookyNet electronic embeddings added to the atom embedding).
        lambda_mode: ``"channel"`` (per attribute, layer and channel; the default: it separates every
            state), ``"learnable"`` (per attribute and layer) or ``"constant"`` (0.1, torchmd-net 3.1's
            model; one attribute only); used by the ``"tensornet"`` state mode.
        physics: physical terms added to the network (nn/physics.py), any subset of ``"charges"``
            (per-atom charges from the final invariant atom features, summing exactly to the total
            charge, which must then be given), ``"coulomb"`` (damped Coulomb energy of those charges; switches
            ``"charges"`` on), ``"zbl"`` (ZBL nuclear repulsion, trainable), ``"d4"`` (DFT-D4 dispersion of
            the learned charges; the ``d4`` extra) and ``"nonlocal"`` (linear-scaling attention
            over each molecule's atoms added to the final invariant atom features, which the energy and
            charge heads read; nn/nonlocal_attention.py). ``()`` is the network alone.
        d4_functional: functional whose D4 damping parameters ``"d4"`` uses (a name of dftd4's table; the
            default is SPICE's ωB97M); only allowed to differ from it with ``"d4"`` on.
        dtype: parameter dtype (float32 or float64).

    Attributes ``dense_min_fill`` and ``edge_chunk`` tune speed only, never results: molecule-size groups
    whose edges fill at least ``dense_min_fill`` of their atom pairs sum over dense pair blocks, the
    others over edge lists, ``edge_chunk`` edges at a time (nn/blocks.py).
    """

    state: List[str]
    physics: List[str]

    def __init__(
        self,
        hidden_channels: int = 128,
        num_layers: int = 2,
        num_rbf: int = 32,
        cutoff: float = 5.0,
        max_z: int = 128,
        trainable_rbf: bool = False,
        state: Sequence[str] = (),
        state_mode: str = "tensornet",
        lambda_mode: str = "channel",
        physics: Sequence[str] = (),
        d4_functional: str = DEFAULT_FUNCTIONAL,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        names = validate_state(state, state_mode, lambda_mode)
        terms = validate_physics(physics)
        validate_d4_functional(d4_functional, terms)
        self.hparams: Dict[str, Any] = dict(
            hidden_channels=hidden_channels, num_layers=num_layers, num_rbf=num_rbf, cutoff=cutoff,
            max_z=max_z, trainable_rbf=trainable_rbf, state=list(names), state_mode=state_mode,
            lambda_mode=lambda_mode, physics=list(terms), d4_functional=d4_functional,
        )
        self.cutoff = float(cutoff)
        self.dense_min_fill = DENSE_MIN_FILL
        self.edge_chunk = EDGE_CHUNK
        self.max_z = max_z
        self.state = list(names)
        self.physics = list(terms)
        self.learns_charges = "charges" in terms
        self.conditioned_on_charge = "charge" in names
        self.atom_embedding = nn.Embedding(max_z, hidden_channels)
        self.rbf = ExpNormalBasis(num_rbf, cutoff, trainable_rbf)
        self.embedding = TensorEmbedding(hidden_channels, num_rbf)
        num_scaled = len(names) if state_mode == "tensornet" else 0
        self.layers = nn.ModuleList(
            [Interaction(hidden_channels, num_rbf, num_scaled, lambda_mode) for _ in range(num_layers)]
        )
        spooky = names if state_mode == "spooky" else ()
        self.electronic = nn.ModuleList([
            ElectronicEmbedding(hidden_channels, name != "spin", name.startswith(PARTIAL_CHARGE_PREFIX))
            for name in spooky
        ])
        self.readout = ScalarReadout(hidden_channels)
        self.terms = PhysicalTerms(terms, hidden_channels, cutoff, d4_functional)
        # Built last: the modules above get the same initial weights whether it is on or off.
        self.nonlocal_attention = NonlocalAttention(hidden_channels) if "nonlocal" in terms else None
        self.to(dtype)

    @torch.jit.unused
    def config(self) -> Dict[str, Any]:
        """Constructor arguments (without dtype) that rebuild this model."""
        return dict(self.hparams)

    @torch.jit.unused
    def partial_charge_names(self) -> List[str]:
        """State names of the partial-charge columns, in the column order of ``partial_charges``."""
        return [name for name in self.state if name.startswith(PARTIAL_CHARGE_PREFIX)]

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        total_charge: Optional[Tensor] = None,
        spin: Optional[Tensor] = None,
        partial_charges: Optional[Tensor] = None,
    ) -> Tensor:
        """Energies of a batch of molecules: the network's plus the physical terms' (see :meth:`energy_parts`).

        Args:
            z: (N,) atomic numbers.
            pos: (N, 3) positions in Å.
            batch: (N,) molecule index of each atom, 0..B-1.
            total_charge: (B,) total charges in e, if the state has ``"charge"`` or physics ``"charges"``.
            spin: (B,) numbers of unpaired electrons 2S, if the state has ``"spin"``.
            partial_charges: (N,) or (N, K) partial charges in e, one column per ``"charges/..."`` state.

        Returns:
            (B,) energies in the units of the training targets (eV in tnq).
        """
        parts = self.energy_parts(z, pos, batch, total_charge, spin, partial_charges)
        energy = parts["network"]
        for term in self.terms.energy_terms:
            energy = energy + parts[term]
        return energy

    @torch.jit.export
    def energy_parts(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor,
        total_charge: Optional[Tensor] = None,
        spin: Optional[Tensor] = None,
        partial_charges: Optional[Tensor] = None,
    ) -> Dict[str, Tensor]:
        """The parts of the energy, arguments as :meth:`forward`: ``"network"`` (B,) always; with the
        physical terms on, ``"charges"`` (N,) e in the atom order of ``z``, ``"coulomb"``, ``"zbl"`` and ``"d4"``
        (B,) eV.
        """
        num_molecules = int(batch.max()) + 1
        # With learned charges the total charge is needed even when the network is not conditioned on it.
        state_charge = total_charge if self.conditioned_on_charge or not self.learns_charges else None
        if self.learns_charges:
            self._check_total_charge(total_charge, num_molecules)
        if not torch.jit.is_scripting():
            check_state_inputs(self.state, z.shape[0], num_molecules, state_charge, spin, partial_charges)
        attributes = atom_attributes(self.state, batch, state_charge, spin, partial_charges, pos.dtype)
        # Work in block order (molecules sorted by size); energies are summed per molecule index.
        order, sizes, groups = molecule_blocks(batch)
        z, pos, batch, attributes = z[order], pos.index_select(0, order), batch[order], attributes[order]
        blocks = block_edges(pos, sizes, groups, self.cutoff, self.dense_min_fill, self.edge_chunk)
        vec = pos.index_select(0, blocks.receiver) - pos.index_select(0, blocks.sender)
        dist = torch.linalg.vector_norm(vec, dim=-1)
        unit = vec / dist.unsqueeze(-1)
        # Edges first (E, K) and (E, 1); the self pairs (TensorNet's self loops: distance 0, cutoff 1, the same
        # for every atom) get their own basis row (1, K), so that no layer splits its edge weights.
        rbf = self.rbf(dist)
        cut = cosine_cutoff(dist, self.cutoff).unsqueeze(1)
        self_rbf = self.rbf(pos.new_zeros(1))
        nuclear = self.atom_embedding(z)
        x = nuclear
        for k, electronic in enumerate(self.electronic):
            x = x + electronic(nuclear, attributes[:, k], batch, num_molecules)
        tensors = self.embedding(x, blocks, cut, rbf, self_rbf, unit)
        for layer in self.layers:
            tensors = layer(tensors, blocks, cut, rbf, self_rbf, attributes)
        features = self.readout.features(tensors)
        nonlocal_attention = self.nonlocal_attention
        if nonlocal_attention is not None:
            features = features + nonlocal_attention(features, batch)
        atom_energies = self.readout.energies(features)
        network = torch.zeros(num_molecules, dtype=pos.dtype, device=pos.device).index_add(0, batch, atom_energies)
        parts = self.terms(features, z, pos, batch, total_charge)
        parts["network"] = network
        if "charges" in parts:  # back from block order to the caller's atom order
            charges = parts["charges"]
            parts["charges"] = torch.zeros_like(charges).index_copy(0, order, charges)
        return parts

    def _check_total_charge(self, total_charge: Optional[Tensor], num_molecules: int) -> None:
        """Raise when the total charge the learned charges sum to is missing or of the wrong shape."""
        if total_charge is None or total_charge.shape != (num_molecules,):
            if torch.jit.is_scripting():
                raise RuntimeError("tnq: this model learns charges; pass total_charge as a (B,) tensor")
            got = "None" if total_charge is None else f"shape {list(total_charge.shape)}"
            raise ModelInputError(
                f"this model learns atomic charges (physics={self.physics}), which sum to each molecule's total "
                f"charge: pass total_charge as a ({num_molecules},) tensor in e (got {got})"
            )
