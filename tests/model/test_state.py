"""Charge, spin and partial-charge states: degeneracy lifting, exact reduction to TensorNet, input checks."""

import pytest
import torch

from tnq_data.errors import TnqError
from tnq_model import TensorNet

MODES = [
    dict(state_mode="tensornet", lambda_mode="constant"),
    dict(state_mode="tensornet", lambda_mode="learnable"),
    dict(state_mode="tensornet", lambda_mode="channel"),
    dict(state_mode="spooky"),
]
MODE_IDS = ["constant", "learnable", "channel", "spooky"]


def twice(z, pos):
    """The same molecule twice in one batch."""
    return torch.cat([z, z]), torch.cat([pos, pos]), torch.repeat_interleave(torch.tensor([0, 1]), len(z))


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
    same_state = model(z, pos, batch, torch.tensor([-1, -1]), torch.tensor([1, 1]))
    assert abs(float(charge_only[0] - charge_only[1])) > 1e-6
    assert abs(float(spin_only[0] - spin_only[1])) > 1e-6
    torch.testing.assert_close(same_state[0], same_state[1])


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
    with pytest.raises(TnqError, match="conditioned on 'charge'"):
        make_model(state=("charge",))(z, pos, batch)
    with pytest.raises(TnqError, match="not conditioned on 'spin'"):
        make_model(state=("charge",))(z, pos, batch, torch.zeros(3), torch.zeros(3))
    with pytest.raises(TnqError, match=r"expected \(3,\)"):
        make_model(state=("spin",))(z, pos, batch, spin=torch.zeros(2))
    model = make_model(state=("charges/a", "charges/b"))
    with pytest.raises(TnqError, match="partial_charges has shape"):
        model(z, pos, batch, partial_charges=torch.zeros(len(z)))
    with pytest.raises(TnqError, match="NaN"):
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
    with pytest.raises(TnqError, match=message):
        TensorNet(**options)
