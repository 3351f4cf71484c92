"""No assumed state: the Predictor and the ASE calculator need exactly the states a model depends on.

Electron counts of the test molecules (conftest.SMILES, neutral formula): ethanol 26, benzoate C7H5O2 63,
isopropylamine 34; a state with N = sum(Z) - Q electrons needs 2S+1 of the parity opposite to N.
"""

import numpy as np
import pytest
import torch
from ase import Atoms

import tnq_model
from tnq_core.errors import TnqError
from tnq_model import Potential, save_checkpoint
from tnq_model.ase import TNQCalculator

STATE = ("charge", "spin", "charges/am1bcc")


@pytest.fixture
def stateful(make_model, tmp_path):
    """A checkpoint of a model conditioned on charge, spin and AM1-BCC charges, and its Potential."""
    refs = torch.linspace(-3.0, -1.0, 20, dtype=torch.float64)
    potential = Potential(make_model(state=STATE), refs, scale=1.5, shift=0.1)
    return save_checkpoint(tmp_path / "stateful.pt", potential), potential


@pytest.fixture
def plain(make_model, tmp_path):
    """Checkpoints of one plain model (state=()): without state references, and with offsets for Q = 0, 1."""
    model = make_model()
    bare = Potential(model, torch.linspace(-3.0, -1.0, 20, dtype=torch.float64))
    offsets = Potential(model, bare.atom_refs, ref_charges=[0, 1], charge_offsets=[0.0, 7.5])
    return save_checkpoint(tmp_path / "bare.pt", bare), save_checkpoint(tmp_path / "offsets.pt", offsets), bare


def reference(potential, z, pos, charge=None, multiplicity=None, partial=None):
    """Energy and forces of one molecule from the Potential itself."""
    def state(value):
        return None if value is None else torch.tensor([value])

    batch = torch.zeros(len(z), dtype=torch.long)
    energy, forces = potential.energy_and_forces(z, pos, batch, state(charge), state(multiplicity), partial)
    return float(energy[0].detach()), forces.detach().numpy()


def test_predictor_needs_every_state_of_a_conditioned_model(stateful, molecules) -> None:
    predictor = tnq_model.load(stateful[0])
    z, pos = molecules[0]
    partial = np.zeros(len(z))
    with pytest.raises(TnqError, match="needs the total charge"):
        predictor.predict(z.numpy(), pos.numpy(), None, 1, partial)
    with pytest.raises(TnqError, match="needs the multiplicity"):
        predictor.predict(z.numpy(), pos.numpy(), 0, None, partial)
    batch = np.zeros(len(z), dtype=np.int64)
    with pytest.raises(TnqError, match="needs the total charge"):
        predictor.predict_batch(z.numpy(), pos.numpy(), batch, None, [1], partial)
    with pytest.raises(TnqError, match="needs the multiplicity"):
        predictor.predict_batch(z.numpy(), pos.numpy(), batch, [0], None, partial)


@pytest.mark.parametrize(
    "charge, multiplicity, reason",
    [(0, 0, "below 1"), (0, 2, "parity: 26 electrons"), (1, 1, "parity: 25 electrons"),
     (0, 29, "2S = 28 > 26 electrons"), (0, -1, "negative")],
)
def test_predictor_refuses_impossible_states(stateful, molecules, charge, multiplicity, reason) -> None:
    predictor = tnq_model.load(stateful[0])
    (z0, pos0), (z1, pos1) = molecules[2], molecules[0]  # isopropylamine, neutral singlet, then ethanol
    partial = np.zeros(len(z1))
    with pytest.raises(TnqError, match=f"cannot have multiplicity {multiplicity} with total charge {charge}"):
        predictor.predict(z1.numpy(), pos1.numpy(), charge, multiplicity, partial)
    batch = np.repeat([0, 1], [len(z0), len(z1)])
    with pytest.raises(TnqError, match="molecule 1 cannot have"):
        predictor.predict_batch(np.concatenate([z0, z1]), np.concatenate([pos0, pos1]), batch,
                                [0, charge], [1, multiplicity], np.zeros(len(batch)))


def test_predictor_accepts_the_possible_states_next_to_impossible_ones(stateful, molecules) -> None:
    path, potential = stateful
    predictor = tnq_model.load(path)
    z, pos = molecules[0]
    partial = torch.linspace(-0.2, 0.2, len(z), dtype=torch.float64)
    for charge, multiplicity in ((0, 27), (-2, 29), (1, 2), (0, 3)):  # 26, 28, 25, 26 electrons
        energy, forces = predictor.predict(z.numpy(), pos.numpy(), charge, multiplicity, partial.numpy())
        expected = reference(potential, z, pos, charge, multiplicity, partial)
        assert energy == pytest.approx(expected[0], abs=1e-10)
        np.testing.assert_allclose(forces, expected[1], atol=1e-10)


def test_batched_prediction_equals_single(stateful, molecules) -> None:
    predictor = tnq_model.load(stateful[0])
    (z0, pos0), (z1, pos1) = molecules[0], molecules[2]
    q0 = np.linspace(-0.2, 0.2, len(z0))
    q1 = np.linspace(0.1, -0.1, len(z1))
    batch = np.repeat([0, 1], [len(z0), len(z1)])
    energies, forces = predictor.predict_batch(  # ethanol singlet; isopropylamine cation (33 electrons) doublet
        np.concatenate([z0, z1]), np.concatenate([pos0, pos1]), batch, [0, 1], [1, 2], np.concatenate([q0, q1])
    )
    single = predictor.predict(z1.numpy(), pos1.numpy(), 1, 2, q1)
    assert energies.dtype == np.float64
    assert energies[1] == pytest.approx(single[0], abs=1e-10)
    np.testing.assert_allclose(forces[len(z0) :], single[1], atol=1e-10)


def test_plain_model_needs_a_state_only_for_its_references(plain, molecules) -> None:
    bare, offsets, potential = plain
    z, pos = molecules[0]
    predictor = tnq_model.load(bare)
    energy, forces = predictor.predict(z.numpy(), pos.numpy())
    assert energy == pytest.approx(reference(potential, z, pos)[0], abs=1e-10)
    assert predictor.predict(z.numpy(), pos.numpy(), 0, 1)[0] == energy
    np.testing.assert_array_equal(predictor.predict(z.numpy(), pos.numpy(), 0, 1)[1], forces)

    predictor = tnq_model.load(offsets)
    with pytest.raises(TnqError, match="needs the total charge"):
        predictor.predict(z.numpy(), pos.numpy())
    assert predictor.predict(z.numpy(), pos.numpy(), 0)[0] == pytest.approx(energy, abs=1e-10)
    assert predictor.predict(z.numpy(), pos.numpy(), 1, 2)[0] == pytest.approx(energy + 7.5, abs=1e-10)
    with pytest.raises(TnqError, match=r"no reference energy for total charge \[5\]"):
        predictor.predict(z.numpy(), pos.numpy(), 5)


def test_ase_calculator_needs_the_state_of_a_conditioned_model(stateful, molecules) -> None:
    z, pos = molecules[1]
    atoms = Atoms(numbers=z.numpy(), positions=pos.numpy())
    atoms.calc = TNQCalculator(stateful[0])
    atoms.arrays["charges/am1bcc"] = np.zeros(len(z))
    names_both = r"atoms.info\['charge'\] .*atoms.info\['multiplicity'\]"
    with pytest.raises(TnqError, match=r"atoms.info\['charge'\] is missing.*" + names_both):
        atoms.get_potential_energy()
    atoms.info["charge"] = -1
    with pytest.raises(TnqError, match=r"atoms.info\['multiplicity'\] is missing.*" + names_both):
        atoms.get_potential_energy()
    atoms.info["multiplicity"] = 1
    del atoms.arrays["charges/am1bcc"]
    with pytest.raises(TnqError, match="charges/am1bcc"):
        atoms.get_potential_energy()


def test_ase_calculator_recomputes_when_the_state_changes(stateful, molecules) -> None:
    path, potential = stateful
    z, pos = molecules[1]  # benzoate: 64 electrons as Q = -1, 63 as Q = 0
    atoms = Atoms(numbers=z.numpy(), positions=pos.numpy(), info={"charge": -1, "multiplicity": 1})
    atoms.arrays["charges/am1bcc"] = np.linspace(-0.3, 0.3, len(z))
    atoms.calc = TNQCalculator(path)
    energies = []

    def check(charge, multiplicity):
        expected = reference(potential, z, pos, charge, multiplicity, torch.tensor(atoms.arrays["charges/am1bcc"]))
        energies.append(atoms.get_potential_energy())
        assert energies[-1] == pytest.approx(expected[0], abs=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), expected[1], atol=1e-10)
        assert all(abs(energies[-1] - before) > 1e-6 for before in energies[:-1])  # a cached value would fail

    check(-1, 1)
    atoms.info["multiplicity"] = 3
    check(-1, 3)
    atoms.info.update(charge=0, multiplicity=2)
    check(0, 2)
    atoms.arrays["charges/am1bcc"] = np.linspace(0.3, -0.3, len(z))
    check(0, 2)
    atoms.arrays["charges/am1bcc"][0] += 0.1  # changed in place
    check(0, 2)


def test_ase_calculator_of_a_plain_model_needs_no_state(plain, molecules) -> None:
    bare, offsets, potential = plain
    z, pos = molecules[1]
    atoms = Atoms(numbers=z.numpy(), positions=pos.numpy())
    atoms.calc = TNQCalculator(bare)
    expected = reference(potential, z, pos)
    assert atoms.get_potential_energy() == pytest.approx(expected[0], abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), expected[1], atol=1e-10)

    atoms.calc = TNQCalculator(offsets)  # references for Q = 0, 1: the charge is needed, not the multiplicity
    with pytest.raises(TnqError, match=r"atoms.info\['charge'\] is missing"):
        atoms.get_potential_energy()
    atoms.info["charge"] = 1
    assert atoms.get_potential_energy() == pytest.approx(expected[0] + 7.5, abs=1e-10)
    atoms.info["charge"] = 0
    assert atoms.get_potential_energy() == pytest.approx(expected[0], abs=1e-10)
