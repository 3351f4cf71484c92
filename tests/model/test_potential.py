"""Potential: reference energies per element (and total charge), scale and shift, multiplicity input."""

import pytest
import torch

from tnq_data.errors import TnqError
from tnq_model import Potential, multiplicity_to_spin


def test_multiplicity_to_spin_gives_unpaired_electrons() -> None:
    assert multiplicity_to_spin(torch.tensor([1, 2, 3, 4])).tolist() == [0, 1, 2, 3]


def test_energy_adds_references_scale_and_shift(make_model, batched) -> None:
    z, pos, batch = batched
    model = make_model(state=("charge", "spin"))
    refs = torch.zeros(20, 2, dtype=torch.float64)
    refs[:, 0] = -torch.arange(20.0)  # total charge 0
    refs[:, 1] = -2 * torch.arange(20.0)  # total charge +1
    potential = Potential(model, refs, ref_charges=[0, 1], scale=2.0, shift=-0.5)
    charge, multiplicity = torch.tensor([1, 0, 1]), torch.tensor([2, 1, 3])
    energy = potential(z, pos, batch, charge, multiplicity)
    network = model(z, pos, batch, charge, multiplicity - 1)
    atoms = torch.bincount(batch).double()
    column = charge[batch]
    refs_sum = torch.zeros(3, dtype=torch.float64).index_add(0, batch, refs[z, column])
    torch.testing.assert_close(energy, 2.0 * network - 0.5 * atoms + refs_sum)
    with pytest.raises(TnqError, match=r"total charge\(s\) \[-1\]"):
        potential(z, pos, batch, torch.tensor([-1, 0, 1]), multiplicity)


def test_energy_and_forces_support_force_training(make_model, batched) -> None:
    z, pos, batch = batched
    potential = Potential(make_model(state=("spin",)))
    charge, multiplicity = torch.zeros(3, dtype=torch.long), torch.tensor([1, 3, 2])
    energy, forces = potential.energy_and_forces(z, pos, batch, charge, multiplicity, create_graph=True)
    p = pos.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(potential(z, p, batch, charge, multiplicity).sum(), p)
    torch.testing.assert_close(forces, -gradient)
    forces.pow(2).sum().backward()
    assert potential.model.readout.linear.weight.grad is not None


def test_atom_refs_of_the_wrong_shape_are_an_error(make_model) -> None:
    with pytest.raises(TnqError, match="atom_refs has shape"):
        Potential(make_model(), torch.zeros(20, 2), ref_charges=[0, 1, 2])
