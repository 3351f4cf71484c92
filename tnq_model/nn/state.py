"""Electronic state of a molecule as model input: spin convention, attributes, lambda scaling, spooky.

State names a model can be conditioned on (the constructor's ``state`` tuple, in this order of columns):

- ``"charge"``: total charge Q of the molecule in e, given per molecule (B,), broadcast to its atoms.
- ``"spin"``: number of unpaired electrons 2S (the model's spin convention), per molecule (B,).
- ``"charges/<scheme>"``: per-atom partial charges in e from one scheme (the store's column name).

The store keeps multiplicity 2S+1; :func:`multiplicity_to_spin` is the one conversion.
"""

import math
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .errors import ModelInputError

MOLECULE_STATES = ("charge", "spin")
PARTIAL_CHARGE_PREFIX = "charges/"
STATE_MODES = ("tensornet", "spooky")
LAMBDA_MODES = ("constant", "learnable", "channel")
#: lambda of the constant mode, the value of Simeon et al. 2024.
CONSTANT_LAMBDA = 0.1


def multiplicity_to_spin(multiplicity: Tensor) -> Tensor:
    """Spin multiplicity 2S+1 (store convention) -> number of unpaired electrons 2S (model convention).

    Shape and dtype are kept; e.g. singlet 1 -> 0, doublet 2 -> 1, triplet 3 -> 2.
    """
    return multiplicity - 1


def validate_state(state: Sequence[str], state_mode: str, lambda_mode: str) -> tuple[str, ...]:
    """Check the state names and modes of a model; returns the names as a tuple."""
    names = tuple(state)
    if isinstance(state, str):
        raise ModelInputError(f"state={state!r} is a string; pass a tuple such as ({state!r},)")
    for name in names:
        scheme = name[len(PARTIAL_CHARGE_PREFIX):] if name.startswith(PARTIAL_CHARGE_PREFIX) else ""
        if name not in MOLECULE_STATES and not scheme:
            raise ModelInputError(
                f"unknown state {name!r} in TensorNet(state=...); use 'charge', 'spin' or "
                f"'{PARTIAL_CHARGE_PREFIX}<scheme>'"
            )
    if len(set(names)) != len(names):
        raise ModelInputError(f"state {names} names an attribute twice; list each once")
    if state_mode not in STATE_MODES:
        raise ModelInputError(f"unknown state_mode {state_mode!r}; use one of {STATE_MODES}")
    if lambda_mode not in LAMBDA_MODES:
        raise ModelInputError(f"unknown lambda_mode {lambda_mode!r}; use one of {LAMBDA_MODES}")
    if state_mode == "tensornet" and lambda_mode == "constant" and len(names) > 1:
        raise ModelInputError(
            f"lambda_mode='constant' adds the attributes {names} with one lambda, so states such as "
            "(Q=-1, doublet) and (Q=0, singlet) get the same energy; use lambda_mode='channel' (the default) "
            "or state_mode='spooky', or condition on one attribute"
        )
    return names


def check_state_inputs(
    state: Sequence[str],
    num_atoms: int,
    num_molecules: int,
    total_charge: Optional[Tensor],
    spin: Optional[Tensor],
    partial_charges: Optional[Tensor],
) -> None:
    """Raise ModelInputError when the state inputs do not match the state a model was built with."""
    given = {"charge": total_charge, "spin": spin}
    for name, value in given.items():
        argument = "total_charge" if name == "charge" else "spin"
        if name in state and value is None:
            raise ModelInputError(f"this model is conditioned on {name!r}: pass {argument} as a ({num_molecules},) tensor")
        if name not in state and value is not None:
            raise ModelInputError(
                f"this model (state={tuple(state)}) is not conditioned on {name!r}; pass {argument}=None "
                f"or train a model with {name!r} in its state"
            )
        if value is not None and tuple(value.shape) != (num_molecules,):
            raise ModelInputError(f"{argument} has shape {tuple(value.shape)}; expected ({num_molecules},), one per molecule")
    schemes = [name for name in state if name.startswith(PARTIAL_CHARGE_PREFIX)]
    if schemes and partial_charges is None:
        raise ModelInputError(f"this model needs partial charges {schemes}: pass partial_charges as ({num_atoms}, {len(schemes)})")
    if partial_charges is None:
        return
    if not schemes:
        raise ModelInputError("this model uses no partial charges; pass partial_charges=None")
    columns = 1 if partial_charges.dim() == 1 else partial_charges.shape[1]
    if partial_charges.shape[0] != num_atoms or partial_charges.dim() > 2 or columns != len(schemes):
        raise ModelInputError(
            f"partial_charges has shape {tuple(partial_charges.shape)}; expected ({num_atoms}, {len(schemes)}) "
            f"for the schemes {schemes}"
        )
    if bool(torch.isnan(partial_charges).any()):
        raise ModelInputError(f"partial_charges contain NaN (failed charge scheme?) for {schemes}; drop those conformers")


def atom_attributes(
    state: List[str],
    batch: Tensor,
    total_charge: Optional[Tensor],
    spin: Optional[Tensor],
    partial_charges: Optional[Tensor],
    dtype: torch.dtype,
) -> Tensor:
    """Per-atom attribute matrix a (N, K), one column per state name, molecule values broadcast by ``batch``."""
    columns: List[Tensor] = []
    scheme = 0
    for name in state:
        if name == "charge":
            assert total_charge is not None, "total_charge is required by this model"
            columns.append(total_charge.to(dtype)[batch])
        elif name == "spin":
            assert spin is not None, "spin is required by this model"
            columns.append(spin.to(dtype)[batch])
        else:
            assert partial_charges is not None, "partial_charges are required by this model"
            charges = partial_charges.to(dtype).view(batch.shape[0], -1)
            columns.append(charges[:, scheme])
            scheme += 1
    if len(columns) == 0:
        return torch.zeros(batch.shape[0], 0, dtype=dtype, device=batch.device)
    return torch.stack(columns, dim=1)


def channel_lambdas(num_attributes: int, channels: int) -> Tensor:
    """Initial lambda (K, C) of the channel mode: 0.1 (1 + cos(pi (k + 1) (c + 1/2) / C) / 2) for attribute k.

    Each attribute starts with its own cosine pattern over the channels, so for C >= 2 the K rows are
    linearly independent: a_i -> 1 + a_i lambda is one-to-one, and no two states (for example
    (Q = -1, 2S = 1) and (Q = 0, 2S = 0)) share a factor, even before training.
    """
    k = torch.arange(1, num_attributes + 1, dtype=torch.float64).unsqueeze(1)
    c = torch.arange(channels, dtype=torch.float64) + 0.5
    return CONSTANT_LAMBDA * (1.0 + 0.5 * torch.cos(math.pi * k * c / channels))


class StateScale(nn.Module):
    """Per-atom factor 1 + sum_k lambda_k a_ik of one interaction layer (Simeon et al. 2024).

    Modes: ``constant`` (lambda = 0.1, not trained; one attribute only), ``learnable`` (one lambda per
    attribute), ``channel`` (one lambda per attribute and channel, started apart by :func:`channel_lambdas`).
    """

    def __init__(self, num_attributes: int, channels: int, mode: str) -> None:
        super().__init__()
        if mode == "channel":
            lam = channel_lambdas(num_attributes, channels)
        else:
            lam = torch.full((num_attributes, 1), CONSTANT_LAMBDA, dtype=torch.float64)
        if mode == "constant":
            self.register_buffer("lam", lam)
        else:
            self.lam = nn.Parameter(lam)

    def forward(self, attributes: Tensor) -> Tensor:
        """Attributes (N, K) -> factor (1 or C, N), broadcastable over node rows (10, C, N)."""
        return (1.0 + attributes @ self.lam).t()


class ResidualMLP(nn.Module):
    """Bias-free residual block then a linear layer, SiLU activations: x + W2 s(W1 s(x)) -> W3 s(.)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.inner = nn.Sequential(
            nn.SiLU(), nn.Linear(channels, channels, bias=False), nn.SiLU(), nn.Linear(channels, channels, bias=False)
        )
        self.out = nn.Linear(channels, channels, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C) -> (N, C)."""
        return self.out(F.silu(x + self.inner(x)))


class ElectronicEmbedding(nn.Module):
    """SpookyNet's electronic embedding of one state value (Unke et al., Nat. Commun. 12, 7273, 2021).

    The value psi enters as e = (relu(psi), relu(-psi)) for signed values (separate weights for positive
    and negative charge) or |psi| for spin, with values v = W_v e. For a molecular value (Q or 2S),
    each atom attends to it: k = W_k e / max(e, 1), q_i = W_q x_i, a_i = softplus(k . q_i / sqrt(C)),
    and atom i receives MLP(a_i / sum_{j in molecule} a_j * v), so the state is shared out over the
    molecule by the atoms' environments. For a per-atom value (a partial charge) attention over a
    segment of one atom is the constant weight 1, so that path is the per-atom MLP(v) of the atom's own
    charge, with no query or key. The result is added to the nuclear embedding x_i; psi = 0 gives zero.
    """

    def __init__(self, channels: int, signed: bool, per_atom: bool = False) -> None:
        super().__init__()
        self.signed = signed
        self.per_atom = per_atom
        inputs = 2 if signed else 1
        self.query = None if per_atom else nn.Linear(channels, channels)
        self.key = None if per_atom else nn.Linear(inputs, channels, bias=False)
        self.value = nn.Linear(inputs, channels, bias=False)
        self.mlp = ResidualMLP(channels)

    def forward(self, x: Tensor, psi: Tensor, segment: Tensor, num_segments: int) -> Tensor:
        """Nuclear embedding x (N, C), per-atom value psi (N,), molecule index (N,) -> embedding (N, C)."""
        if self.signed:
            e = F.relu(torch.stack((psi, -psi), dim=-1))
        else:
            e = psi.abs().unsqueeze(-1)
        value = self.value(e)
        if self.query is None or self.key is None:
            return self.mlp(value)
        key = self.key(e / torch.clamp(e, min=1.0))
        score = (key * self.query(x)).sum(-1) / math.sqrt(x.shape[-1])
        weight = F.softplus(score)
        total = torch.zeros(num_segments, dtype=x.dtype, device=x.device).index_add(0, segment, weight)
        weight = weight / (total[segment] + 1e-8)
        return self.mlp(weight.unsqueeze(-1) * value)
