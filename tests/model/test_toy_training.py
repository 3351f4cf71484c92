"""The toy datasets of Simeon et al. 2024: identical geometries whose energy depends on the state only.

Without state a model can at best predict each geometry's mean over states; with state it fits the set.
"""

import pytest
import torch

# Dataset A: total charge -> energy offset (eV); dataset B: unpaired electrons 2S -> offset (eV).
DATASETS = {"charge": {-1: 1.0, 0: 0.0, 1: 1.5}, "spin": {0: 0.0, 2: 1.2}}
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


def train_rmse(model, z, pos, batch, states, energies, use_state: bool, steps: int = 150) -> float:
    """RMSE (eV) after a short full-batch training on energies."""
    attribute = model.state[0] if use_state else None
    inputs = {"total_charge" if attribute == "charge" else "spin": states} if use_state else {}
    mean = energies.mean()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (model(z, pos, batch, **inputs) - (energies - mean)).pow(2).mean()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float((model(z, pos, batch, **inputs) + mean - energies).pow(2).mean().sqrt())


def check_training(make_model, molecules, attribute: str, mode: dict) -> None:
    z, pos = molecules[0]
    data = toy_dataset(z, pos, attribute)
    floor = state_free_floor(attribute)
    plain = train_rmse(make_model(), *data, use_state=False)
    with_state = train_rmse(make_model(state=(attribute,), **mode), *data, use_state=True)
    assert plain > 0.95 * floor
    assert with_state < 0.1 * floor


@pytest.mark.parametrize("attribute", ["charge", "spin"])
@pytest.mark.parametrize(
    "mode", [dict(state_mode="tensornet", lambda_mode="constant"), dict(state_mode="spooky")], ids=["constant", "spooky"]
)
def test_state_fits_what_tensornet_cannot(make_model, molecules, attribute: str, mode: dict) -> None:
    check_training(make_model, molecules, attribute, mode)


@pytest.mark.slow
@pytest.mark.parametrize("attribute", ["charge", "spin"])
@pytest.mark.parametrize("lambda_mode", ["learnable", "channel"])
def test_learnable_lambdas_fit_what_tensornet_cannot(make_model, molecules, attribute: str, lambda_mode: str) -> None:
    check_training(make_model, molecules, attribute, dict(state_mode="tensornet", lambda_mode=lambda_mode))
