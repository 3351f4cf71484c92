"""The toy datasets of Simeon et al. 2024: identical geometries whose energy depends on the state only.

Without state a model can at best predict each geometry's mean over states; with state it fits the set.
"""

import pytest
import torch

# Dataset A: total charge -> energy offset (eV); dataset B: unpaired electrons 2S -> offset (eV).
DATASETS = {"charge": {-1: -0.8, 0: 0.0, 1: 1.2}, "spin": {0: 0.0, 2: 1.2}}
GEOMETRIES = 4


def toy_dataset(z, pos, attribute: str):
    """z, pos, batch, per-molecule state values and energies (eV) for every geometry x state."""
    generator = torch.Generator().manual_seed(1)
    offsets = DATASETS[attribute]
    geometries = [pos + 0.05 * torch.randn(pos.shape, generator=generator, dtype=pos.dtype) for _ in range(GEOMETRIES)]
    positions, states, energies = [], [], []
    for geometry in geometries:
        base = 0.5 * torch.exp(-torch.pdist(geometry)).sum()
        for value, offset in offsets.items():
            positions.append(geometry)
            states.append(value)
            energies.append(base + offset)
    count = len(positions)
    batch = torch.repeat_interleave(torch.arange(count), len(z))
    return z.repeat(count), torch.cat(positions), batch, torch.tensor(states), torch.stack(energies)


def state_free_floor(attribute: str) -> float:
    """Lowest RMSE (eV) of any model blind to the state: the spread of the offsets about their mean."""
    offsets = torch.tensor(list(DATASETS[attribute].values()))
    return float((offsets - offsets.mean()).pow(2).mean().sqrt())


def train_rmse(model, z, pos, batch, states, energies, steps: int) -> float:
    """RMSE (eV) after a short full-batch Adam training on energies (learning rate annealed to zero, so the
    end of training does not land on one of Adam's loss spikes); states go to the model's first state."""
    inputs = {}
    if model.state:
        inputs = {"total_charge" if model.state[0] == "charge" else "spin": states}
    mean = energies.mean()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (model(z, pos, batch, **inputs) - (energies - mean)).pow(2).mean()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        return float((model(z, pos, batch, **inputs) + mean - energies).pow(2).mean().sqrt())


def test_tensornet_without_state_stays_at_the_floor(make_model, molecules) -> None:
    data = toy_dataset(*molecules[0], "charge")
    assert train_rmse(make_model(), *data, steps=150) > 0.95 * state_free_floor("charge")


def check_state_fits(make_model, molecules, attribute: str, mode: dict, steps: int) -> None:
    data = toy_dataset(*molecules[0], attribute)
    model = make_model(state=(attribute,), **mode)
    assert train_rmse(model, *data, steps=steps) < 0.1 * state_free_floor(attribute)


FAST = [
    ("charge", dict(state_mode="tensornet", lambda_mode="channel")),
    ("charge", dict(state_mode="tensornet", lambda_mode="learnable")),
    ("spin", dict(state_mode="spooky")),
]
SLOW = [
    ("spin", dict(state_mode="tensornet", lambda_mode="channel")),
    ("spin", dict(state_mode="tensornet", lambda_mode="learnable")),
    ("charge", dict(state_mode="spooky")),
]


@pytest.mark.parametrize("attribute, mode", FAST, ids=lambda value: str(value))
def test_state_fits_the_toy_set(make_model, molecules, attribute: str, mode: dict) -> None:
    check_state_fits(make_model, molecules, attribute, mode, steps=150)


@pytest.mark.slow
@pytest.mark.parametrize("attribute, mode", SLOW, ids=lambda value: str(value))
def test_state_fits_the_toy_set_more_modes(make_model, molecules, attribute: str, mode: dict) -> None:
    check_state_fits(make_model, molecules, attribute, mode, steps=150)


@pytest.mark.slow
@pytest.mark.parametrize("attribute", ["charge", "spin"])
def test_constant_lambda_fits_the_toy_set_with_longer_training(make_model, molecules, attribute: str) -> None:
    # lambda = 0.1 modulates the layers by only 10% per unit of state: it needs more steps.
    check_state_fits(make_model, molecules, attribute, dict(state_mode="tensornet", lambda_mode="constant"), steps=600)
