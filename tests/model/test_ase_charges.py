"""Learned charges and the dipole through the Predictor and the ASE calculator (issue 12)."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.data import atomic_masses

from tnq_core.errors import TnqError
from tnq_model import Potential, load, save_checkpoint
from tnq_model.ase import TNQCalculator


@pytest.fixture
def physics_checkpoint(make_model, tmp_path):
    return save_checkpoint(tmp_path / "physics.pt", Potential(make_model(physics=("charges", "coulomb", "zbl"))))


def test_ase_charges_sum_to_the_charge_and_the_dipole_is_about_the_centre_of_mass(physics_checkpoint, molecules):
    z, pos = molecules[0]
    def doublet_or_singlet(charge: int) -> int:  # the lowest multiplicity the electron count allows
        return 1 + (int(z.sum()) - charge) % 2

    atoms = Atoms(numbers=z.numpy(), positions=pos.numpy(), info={"charge": 1, "multiplicity": doublet_or_singlet(1)})
    atoms.calc = TNQCalculator(physics_checkpoint)
    charges = atoms.get_charges()
    assert charges.shape == (len(atoms),) and abs(charges.sum() - 1.0) < 1e-9
    masses = atomic_masses[atoms.numbers]  # independent of tnq: plain numpy about the centre of mass
    com = (masses[:, None] * atoms.positions).sum(0) / masses.sum()
    np.testing.assert_allclose(atoms.get_dipole_moment(), (charges[:, None] * (atoms.positions - com)).sum(0),
                               atol=1e-10)
    shifted = atoms.copy()
    shifted.positions += [3.0, -2.0, 5.0]
    shifted.calc = TNQCalculator(physics_checkpoint)
    np.testing.assert_allclose(shifted.get_dipole_moment(), atoms.get_dipole_moment(), atol=1e-8)
    atoms.info["charge"] = -1  # a new total charge is a new calculation
    atoms.info["multiplicity"] = doublet_or_singlet(-1)
    assert abs(atoms.get_charges().sum() + 1.0) < 1e-9


def test_models_without_learned_charges_have_none(make_model, molecules, tmp_path):
    path = save_checkpoint(tmp_path / "plain.pt", Potential(make_model()))
    z, pos = molecules[0]
    atoms = Atoms(numbers=z.numpy(), positions=pos.numpy())
    atoms.calc = TNQCalculator(path)
    assert np.isfinite(atoms.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_charges()
    with pytest.raises(TnqError, match="learns no atomic charges"):
        load(path).charges_and_dipole(z.numpy(), pos.numpy(), 0)


def test_charges_and_dipole_refuse_an_impossible_state_as_predict_does(physics_checkpoint, molecules):
    z, pos = molecules[0]
    wrong_parity = 2 - (int(z.sum()) - 1) % 2  # the multiplicity the electron count of the cation rules out
    with pytest.raises(TnqError, match="cannot have multiplicity"):
        load(physics_checkpoint).charges_and_dipole(z.numpy(), pos.numpy(), 1, wrong_parity)
