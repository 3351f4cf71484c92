"""Potential: reference energies per element and per state in float64, scale and shift, required states."""

import pytest
import torch

from tnq_core.errors import TnqError
from tnq_model import Potential, multiplicity_to_spin


def test_multiplicity_to_spin_gives_unpaired_electrons() -> None:
    assert multiplicity_to_spin(torch.tensor([1, 2, 3, 4])).tolist() == [0, 1, 2, 3]


def test_energy_adds_references_scale_and_shift(make_model, batched) -> None:
    z, pos, batch = batched
    model = make_model(state=("charge", "spin"))
    refs = -torch.arange(20.0, dtype=torch.float64)
    potential = Potential(model, refs, ref_charges=[-1, 0, 1], scale=2.0, shift=-0.5,
                          charge_offsets=[-1.5, 0.0, 7.25], ref_multiplicities=[1, 2, 3],
                          multiplicity_offsets=[0.0, 0.5, 2.0])
    charge, multiplicity = torch.tensor([1, 0, -1]), torch.tensor([2, 1, 3])
    energy = potential(z, pos, batch, charge, multiplicity)
    network = model(z, pos, batch, charge, multiplicity - 1)
    atoms = torch.bincount(batch).double()
    refs_sum = torch.zeros(3, dtype=torch.float64).index_add(0, batch, refs[z])
    offsets = torch.tensor([7.25 + 0.5, 0.0, -1.5 + 2.0], dtype=torch.float64)
    torch.testing.assert_close(energy, 2.0 * network - 0.5 * atoms + refs_sum + offsets)
    with pytest.raises(TnqError, match=r"no reference energy for total charge \[2\]: this potential knows \[-1, 0, 1\]"):
        potential(z, pos, batch, torch.tensor([2, 0, 1]), multiplicity)
    with pytest.raises(TnqError, match=r"no reference energy for multiplicity \[4\]"):
        potential(z, pos, batch, charge, torch.tensor([4, 1, 3]))


def test_per_charge_reference_columns_of_format_2_still_apply(make_model, batched) -> None:
    z, pos, batch = batched
    model = make_model(state=("charge",), lambda_mode="constant")
    refs = torch.stack([-torch.arange(20.0), -2 * torch.arange(20.0)], dim=1).double()
    potential = Potential(model, refs, ref_charges=[0, 1])
    charge = torch.tensor([1, 0, 1])
    energy = potential(z, pos, batch, charge)
    refs_sum = torch.zeros(3, dtype=torch.float64).index_add(0, batch, refs[z, charge[batch]])
    torch.testing.assert_close(energy, model(z, pos, batch, charge) + refs_sum)


def test_a_needed_state_must_be_given(make_model, batched) -> None:
    z, pos, batch = batched
    conditioned = Potential(make_model(state=("charge", "spin")))
    with pytest.raises(TnqError, match="needs the total charge"):
        conditioned(z, pos, batch, multiplicity=torch.ones(3, dtype=torch.long))
    with pytest.raises(TnqError, match="needs the multiplicity"):
        conditioned(z, pos, batch, total_charge=torch.zeros(3, dtype=torch.long))
    with_ions = Potential(make_model(), ref_charges=[0, 1], charge_offsets=[0.0, 6.0])
    with pytest.raises(TnqError, match="needs the total charge"):
        with_ions(z, pos, batch)
    neutral = Potential(make_model(), ref_charges=[0], ref_multiplicities=[1])
    assert not neutral.needs_charge and not neutral.needs_multiplicity
    torch.testing.assert_close(neutral(z, pos, batch), neutral(z, pos, batch, torch.zeros(3), torch.ones(3)))
    with pytest.raises(TnqError, match="total charge \\[1\\]"):
        neutral(z, pos, batch, torch.tensor([0, 1, 0]))


def test_total_energies_are_exact_with_a_float32_network(make_model) -> None:
    """A 62-atom molecule below -5e4 eV: a float32 network and the same weights in float64 agree to 0.1 meV."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("ClCC(Cl)CC(Cl)CCCCCCCCCCCCCCC(Cl)CCl"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    z = torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()])
    pos = torch.tensor(mol.GetConformer().GetPositions())
    batch = torch.zeros(len(z), dtype=torch.long)
    refs = torch.zeros(20, dtype=torch.float64)
    refs[[1, 6, 17]] = torch.tensor([-13.6057, -1029.4711, -12523.6132], dtype=torch.float64)  # ~ wB97 atoms, eV
    model64 = make_model(state=("charge", "spin"))
    exact = Potential(model64, refs, ref_charges=[0], ref_multiplicities=[1], scale=1.7, shift=0.013)
    single = Potential(make_model(state=("charge", "spin"), dtype=torch.float32), refs, ref_charges=[0],
                       ref_multiplicities=[1], scale=1.7, shift=0.013)
    single.load_state_dict(exact.state_dict())
    state = (torch.tensor([0]), torch.tensor([1]))
    e64 = exact(z, pos, batch, *state)
    e32 = single(z, pos.float(), batch, *state)
    assert len(z) >= 60 and float(e64) < -5e4
    assert e32.dtype == torch.float64
    assert abs(float(e32 - e64)) < 1e-4, float(e32 - e64)


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
