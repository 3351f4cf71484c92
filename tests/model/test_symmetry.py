"""Invariance of energies, equivariance of forces, gradients and batching of TensorNet (float64)."""

import numpy as np
import pytest
import torch

CHARGE = torch.tensor([1, 0, -1])
SPIN = torch.tensor([1, 0, 2])


def random_rotation(seed: int, reflect: bool) -> torch.Tensor:
    """A random orthogonal 3x3 matrix (float64) with determinant -1 if ``reflect`` else +1."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if (np.linalg.det(q) < 0) != reflect:
        q[:, 0] = -q[:, 0]
    return torch.tensor(q)


def energy_and_forces(model, z, pos, batch, first=0, create_graph=False):
    """Energies and forces of a batch whose molecule 0 is molecule ``first`` of CHARGE and SPIN."""
    pos = pos.clone().requires_grad_(True)
    stop = first + int(batch.max()) + 1
    energy = model(z, pos, batch, CHARGE[first:stop], SPIN[first:stop])
    (gradient,) = torch.autograd.grad(energy.sum(), pos, create_graph=create_graph)
    return energy, -gradient


@pytest.fixture
def model(make_model):
    return make_model(state=("charge", "spin"), lambda_mode="channel")


@pytest.mark.parametrize("reflect", [False, True])
def test_rotation_and_reflection(model, batched, reflect: bool) -> None:
    z, pos, batch = batched
    rotation = random_rotation(11, reflect)
    assert torch.linalg.det(rotation) == pytest.approx(-1.0 if reflect else 1.0)
    energy, forces = energy_and_forces(model, z, pos, batch)
    energy_rot, forces_rot = energy_and_forces(model, z, pos @ rotation.T, batch)
    torch.testing.assert_close(energy_rot, energy)
    torch.testing.assert_close(forces_rot, forces @ rotation.T)


def test_translation_and_permutation(model, batched) -> None:
    z, pos, batch = batched
    energy, forces = energy_and_forces(model, z, pos, batch)
    perm = torch.randperm(len(z), generator=torch.Generator().manual_seed(5))
    shift = torch.tensor([3.0, -20.0, 7.5], dtype=torch.float64)
    energy_p, forces_p = energy_and_forces(model, z[perm], pos[perm] + shift, batch[perm])
    torch.testing.assert_close(energy_p, energy)
    torch.testing.assert_close(forces_p, forces[perm])


def test_forces_are_minus_finite_difference_gradient(model, molecules) -> None:
    z, pos = molecules[1]
    batch = torch.zeros(len(z), dtype=torch.long)
    _, forces = energy_and_forces(model, z, pos, batch, first=1)
    step = 1e-5
    for atom, axis in [(0, 0), (5, 1), (len(z) - 1, 2)]:
        shifted = [pos.clone(), pos.clone()]
        shifted[0][atom, axis] += step
        shifted[1][atom, axis] -= step
        with torch.no_grad():
            e_plus, e_minus = (model(z, p, batch, CHARGE[1:2], SPIN[1:2])[0] for p in shifted)
        torch.testing.assert_close(forces[atom, axis], -(e_plus - e_minus) / (2 * step), rtol=1e-6, atol=1e-8)


def test_molecule_alone_equals_molecule_in_batch(model, molecules, batched) -> None:
    energy, forces = energy_and_forces(model, *batched)
    start = 0
    for b, (z_b, pos_b) in enumerate(molecules):
        alone = torch.zeros(len(z_b), dtype=torch.long)
        e_b, f_b = energy_and_forces(model, z_b, pos_b, alone, first=b)
        torch.testing.assert_close(e_b[0], energy[b])
        torch.testing.assert_close(f_b, forces[start : start + len(z_b)])
        start += len(z_b)


def test_molecules_of_one_size_batched_together(make_model, molecules) -> None:
    # Molecules of equal size share a dense block group (nn/neighbors.py): mix two groups of two
    # with another size, atoms shuffled, and compare each molecule with itself alone.
    model = make_model()
    generator = torch.Generator().manual_seed(5)
    copies = [molecules[0], molecules[1], molecules[0], molecules[2], molecules[1]]
    copies = [(z, pos + 0.1 * torch.randn(pos.shape, generator=generator, dtype=pos.dtype)) for z, pos in copies]
    z = torch.cat([m[0] for m in copies])
    pos = torch.cat([m[1] for m in copies]).requires_grad_(True)
    batch = torch.cat([torch.full((len(m[0]),), b) for b, m in enumerate(copies)])
    shuffle = torch.randperm(len(z), generator=generator)
    energy = model(z[shuffle], pos[shuffle], batch[shuffle])
    (gradient,) = torch.autograd.grad(energy.sum(), pos)
    start = 0
    for b, (z_b, pos_b) in enumerate(copies):
        pos_b = pos_b.clone().requires_grad_(True)
        alone = model(z_b, pos_b, torch.zeros(len(z_b), dtype=torch.long))
        (gradient_b,) = torch.autograd.grad(alone.sum(), pos_b)
        torch.testing.assert_close(alone[0], energy[b])
        torch.testing.assert_close(gradient_b, gradient[start : start + len(z_b)])
        start += len(z_b)


def test_force_loss_reaches_every_parameter(model, batched) -> None:
    _, forces = energy_and_forces(model, *batched, create_graph=True)
    forces.pow(2).mean().backward()
    for name, parameter in model.named_parameters():
        if name == "readout.head.2.bias":  # a constant energy offset: no force depends on it
            assert parameter.grad is None
            continue
        assert parameter.grad is not None and bool(torch.isfinite(parameter.grad).all()), name
        assert float(parameter.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("state", [(), ("charge", "spin")])
def test_edge_lists_equal_dense_blocks(make_model, batched, state: tuple) -> None:
    # Each size group sums over dense pair blocks or, when its edges fill few pairs, over edge lists in
    # chunks (nn/blocks.py). Force each way on the whole batch, with chunks smaller than a group.
    model = make_model(state=state)
    z, pos, batch = batched
    inputs = dict(total_charge=CHARGE, spin=SPIN) if state else {}

    def energy_forces_and_force_loss_gradient():
        p = pos.clone().requires_grad_(True)
        energy = model(z, p, batch, **inputs)
        (gradient,) = torch.autograd.grad(energy.sum(), p, create_graph=True)
        (weight,) = torch.autograd.grad(gradient.pow(2).sum(), model.layers[0].mix_in)
        return energy, gradient, weight

    model.dense_min_fill = 0.0
    dense = energy_forces_and_force_loss_gradient()
    model.dense_min_fill, model.edge_chunk = 2.0, 7
    edges = energy_forces_and_force_loss_gradient()
    torch.testing.assert_close(edges, dense)
