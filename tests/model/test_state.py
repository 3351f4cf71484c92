"""Charge, spin and partial-charge states: degeneracy lifting, exact reduction to TensorNet, input checks."""

import pytest
import torch

from tnq_model import ModelInputError
from tnq_model import TensorNet

MODES = [
    dict(state_mode="tensornet", lambda_mode="learnable"),
    dict(state_mode="tensornet", lambda_mode="channel"),
    dict(state_mode="spooky"),
]
MODE_IDS = ["learnable", "channel", "spooky"]
#: States that separate every (Q, 2S+1) pair: the default (channel lambda) and spooky.
SEPARATING = [dict(), dict(state_mode="spooky")]


def twice(z, pos):
    """The same molecule twice in one batch."""
    return torch.cat([z, z]), torch.cat([pos, pos]), torch.repeat_interleave(torch.tensor([0, 1]), len(z))


def possible_states(z: torch.Tensor, charges=range(-2, 3), max_multiplicity: int = 5) -> list[tuple[int, int]]:
    """Every (total charge, multiplicity) the composition z can have for these charges (parity of the electrons)."""
    electrons = int(z.sum())
    return [(q, m) for q in charges for m in range(1, max_multiplicity + 1) if (electrons - q + m) % 2 == 1]


def state_energies(model, z, pos, states, partial=None) -> torch.Tensor:
    """Energies of one molecule in each (Q, 2S+1) state, one batch."""
    batch = torch.repeat_interleave(torch.arange(len(states)), len(z))
    charge = torch.tensor([q for q, _ in states])
    spin = torch.tensor([m - 1 for _, m in states])
    inputs = dict(total_charge=charge if "charge" in model.state else None,
                  spin=spin if "spin" in model.state else None)
    if partial is not None:
        inputs["partial_charges"] = partial.repeat(len(states), 1)
    return model(z.repeat(len(states)), pos.repeat(len(states), 1), batch, **inputs)


@pytest.mark.parametrize("options", SEPARATING, ids=["default", "spooky"])
@pytest.mark.parametrize("state", [("charge", "spin"), ("spin", "charge"), ("charge", "spin", "charges/am1bcc")])
@torch.no_grad()
def test_every_state_of_a_composition_has_its_own_energy(make_model, molecules, options, state) -> None:
    """(Q=-1, doublet) vs (Q=0, singlet), (Q=+1, doublet) vs (Q=0, triplet) vs (Q=+2, singlet), ...: all apart."""
    z, pos = molecules[0]
    states = possible_states(z)
    assert (-1, 2) in states and (0, 1) in states and (0, 3) in states and (2, 1) in states
    partial = torch.linspace(-0.3, 0.3, len(z), dtype=torch.float64).unsqueeze(1) if len(state) == 3 else None
    energy = state_energies(make_model(state=state, **options), z, pos, states, partial)
    gaps = (energy.unsqueeze(0) - energy.unsqueeze(1)).abs() + torch.eye(len(states), dtype=energy.dtype)
    assert float(gaps.min()) > 1e-6, states


@torch.no_grad()
def test_channel_lambdas_start_linearly_independent(make_model) -> None:
    model = make_model(state=("charge", "spin", "charges/a"))
    for layer in model.layers:
        lam = layer.state_scale.lam
        assert lam.shape == (3, 16) and torch.linalg.matrix_rank(lam) == 3


@torch.no_grad()
def test_constant_lambda_is_torchmdnet_for_one_attribute(make_model, molecules) -> None:
    """One attribute with the letter's lambda = 0.1: the factor is 1 + 0.1 Q, as in torchmd-net 3.1."""
    model = make_model(state=("charge",), lambda_mode="constant")
    assert all(float(layer.state_scale.lam) == 0.1 for layer in model.layers)
    z, pos = molecules[0]
    energy = state_energies(model, z, pos, [(0, 1), (1, 2), (-1, 2)])
    assert len(set(energy.tolist())) == 3


def test_constant_lambda_with_several_attributes_is_refused(make_model) -> None:
    for state in [("charge", "spin"), ("charge", "charges/am1bcc")]:
        with pytest.raises(ModelInputError, match="lambda_mode='channel'") as info:
            make_model(state=state, lambda_mode="constant")
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
@torch.no_grad()
def test_state_lifts_degeneracy(make_model, molecules, mode) -> None:
    z, pos, batch = twice(*molecules[0])
    plain = make_model()
    same = plain(z, pos, batch)
    assert same[0] == same[1]
    model = make_model(state=("charge", "spin"), **mode)
    charge_only = model(z, pos, batch, torch.tensor([0, 1]), torch.tensor([0, 0]))
    spin_only = model(z, pos, batch, torch.tensor([0, 0]), torch.tensor([0, 2]))
    assert abs(float(charge_only[0] - charge_only[1])) > 1e-6
    assert abs(float(spin_only[0] - spin_only[1])) > 1e-6


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
@torch.no_grad()
def test_partial_charges_of_several_schemes(make_model, molecules, mode) -> None:
    z, pos, batch = twice(*molecules[1])
    model = make_model(state=("charges/am1bcc", "charge", "charges/mbis"), **mode)
    charges = torch.linspace(-0.5, 0.5, len(z) // 2, dtype=torch.float64)
    columns = torch.stack([charges, 0.3 * charges.roll(1)], dim=1).repeat(2, 1)
    energy = model(z, pos, batch, total_charge=torch.tensor([-1, -1]), partial_charges=columns)
    torch.testing.assert_close(energy[0], energy[1])
    other = columns.clone()
    other[: len(z) // 2, 1] = 0.0  # change the second scheme of molecule 0 only
    changed = model(z, pos, batch, total_charge=torch.tensor([-1, -1]), partial_charges=other)
    assert abs(float(changed[0] - energy[0])) > 1e-6
    torch.testing.assert_close(changed[1], energy[1])


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_zero_state_is_exactly_tensornet(make_model, batched, mode) -> None:
    z, pos, batch = batched
    plain = make_model()
    model = make_model(state=("charge", "spin"), **mode)
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected
    assert all(".state_scale." in name or name.startswith("electronic.") for name in missing)
    zeros = torch.zeros(3, dtype=torch.long)
    assert torch.equal(model(z, pos, batch, zeros, zeros), plain(z, pos, batch))


def test_empty_state_has_the_parameters_of_plain_tensornet(make_model) -> None:
    plain = make_model()
    for mode in MODES:
        model = make_model(state=(), **mode)
        assert model.state_dict().keys() == plain.state_dict().keys()


def test_missing_or_undeclared_state_is_an_error(make_model, batched) -> None:
    z, pos, batch = batched
    with pytest.raises(ModelInputError, match="conditioned on 'charge'"):
        make_model(state=("charge",))(z, pos, batch)
    with pytest.raises(ModelInputError, match="not conditioned on 'spin'"):
        make_model(state=("charge",))(z, pos, batch, torch.zeros(3), torch.zeros(3))
    with pytest.raises(ModelInputError, match=r"expected \(3,\)"):
        make_model(state=("spin",))(z, pos, batch, spin=torch.zeros(2))
    model = make_model(state=("charges/a", "charges/b"))
    with pytest.raises(ModelInputError, match="partial_charges has shape"):
        model(z, pos, batch, partial_charges=torch.zeros(len(z)))
    with pytest.raises(ModelInputError, match="NaN"):
        model(z, pos, batch, partial_charges=torch.full((len(z), 2), float("nan")))


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(state=("charges",)), "unknown state"),
        (dict(state=("charge", "charge")), "twice"),
        (dict(state="charge"), "is a string"),
        (dict(state_mode="physnet"), "state_mode"),
        (dict(lambda_mode="global"), "lambda_mode"),
    ],
)
def test_invalid_state_options(options, message) -> None:
    with pytest.raises(ModelInputError, match=message):
        TensorNet(**options)
