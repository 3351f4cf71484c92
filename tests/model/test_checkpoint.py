"""Checkpoint round trip, Predictor, TorchScript export and the ASE calculator."""

import numpy as np
import pytest
import torch
from ase import Atoms

import tnq_model
from tnq_data.errors import TnqError
from tnq_model import Potential, export_torchscript, save_checkpoint
from tnq_model.ase import TNQCalculator

STATE = ("charge", "spin", "charges/am1bcc")


@pytest.fixture
def checkpoint(make_model, tmp_path):
    refs = torch.linspace(-3.0, -1.0, 20, dtype=torch.float64)
    potential = Potential(make_model(state=STATE, lambda_mode="learnable"), refs, scale=1.5, shift=0.1)
    with torch.no_grad():  # make the learnable lambdas differ from their initial value
        for layer in potential.model.layers:
            layer.state_scale.lam.add_(0.05)
    path = save_checkpoint(tmp_path / "model.pt", potential, epoch=3, config={"lr": 1e-3})
    return path, potential


def reference(potential, z, pos, charge, multiplicity, partial):
    batch = torch.zeros(len(z), dtype=torch.long)
    energy, forces = potential.energy_and_forces(
        z, pos, batch, torch.tensor([charge]), torch.tensor([multiplicity]), partial
    )
    return float(energy[0]), forces.detach().numpy()


def test_round_trip_predicts_like_the_saved_potential(checkpoint, molecules) -> None:
    path, potential = checkpoint
    z, pos = molecules[1]
    partial = torch.linspace(-0.3, 0.3, len(z), dtype=torch.float64)
    predictor = tnq_model.load(path)
    assert predictor.partial_charge_names == ["charges/am1bcc"]
    energy, forces = predictor.predict(z.numpy(), pos.numpy(), -1, 2, partial.numpy())
    expected = reference(potential, z, pos, -1, 2, partial)
    assert energy == pytest.approx(expected[0], abs=1e-10)
    np.testing.assert_allclose(forces, expected[1], atol=1e-10)
    assert torch.load(path, weights_only=True)["extra"] == {"epoch": 3, "config": {"lr": 1e-3}}


def test_version_1_checkpoint_is_read_with_its_old_parameter_names(checkpoint, molecules, tmp_path) -> None:
    path, potential = checkpoint
    payload = torch.load(path, weights_only=True)

    def as_v1(name: str) -> str:  # version 1 spelled radial.layers.K as nn.Sequential index radial.{2K}
        head, sep, tail = name.partition(".radial.layers.")
        return f"{head}.radial.{2 * int(tail[0])}{tail[1:]}" if sep else name

    old = {as_v1(name): value for name, value in payload["state_dict"].items()}
    assert any(".radial.4.weight" in name for name in old)
    v1 = dict(payload, format_version=1, state_dict=old, extra={"trainer": {"weights": old}})
    torch.save(v1, tmp_path / "v1.pt")
    assert tnq_model.checkpoint.read_checkpoint(tmp_path / "v1.pt")["extra"]["trainer"]["weights"].keys() == (
        payload["state_dict"].keys()
    )
    z, pos = molecules[0]
    partial = torch.zeros(len(z), dtype=torch.float64)
    energy, forces = tnq_model.load(tmp_path / "v1.pt").predict(z.numpy(), pos.numpy(), 0, 1, partial.numpy())
    expected = reference(potential, z, pos, 0, 1, partial)
    assert energy == pytest.approx(expected[0], abs=1e-10)
    np.testing.assert_allclose(forces, expected[1], atol=1e-10)


def test_batched_prediction_equals_single(checkpoint, molecules) -> None:
    predictor = tnq_model.load(checkpoint[0])
    (z0, pos0), (z1, pos1) = molecules[0], molecules[2]
    q0 = np.linspace(-0.2, 0.2, len(z0))
    q1 = np.linspace(0.1, -0.1, len(z1))
    batch = np.repeat([0, 1], [len(z0), len(z1)])
    energies, forces = predictor.predict_batch(
        np.concatenate([z0, z1]), np.concatenate([pos0, pos1]), batch, [0, 1], [1, 2], np.concatenate([q0, q1])
    )
    single = predictor.predict(z1.numpy(), pos1.numpy(), 1, 2, q1)
    assert energies[1] == pytest.approx(single[0], abs=1e-10)
    np.testing.assert_allclose(forces[len(z0) :], single[1], atol=1e-10)


def test_torchscript_export_equals_eager(checkpoint, molecules, tmp_path) -> None:
    path, potential = checkpoint
    out = export_torchscript(path, tmp_path / "model.ts")
    scripted = torch.jit.load(str(out))
    z, pos = molecules[0]
    partial = torch.linspace(-0.3, 0.3, len(z), dtype=torch.float64)
    batch = torch.zeros(len(z), dtype=torch.long)
    args = (z, pos, batch, torch.tensor([1]), torch.tensor([2]), partial)
    torch.testing.assert_close(scripted(*args), potential(*args))
    torch.testing.assert_close(scripted.energy_and_forces(*args), potential.energy_and_forces(*args))


def test_ase_calculator_equals_model(checkpoint, molecules) -> None:
    path, potential = checkpoint
    z, pos = molecules[1]
    atoms = Atoms(numbers=z.numpy(), positions=pos.numpy())
    atoms.calc = TNQCalculator(path)
    with pytest.raises(TnqError, match=r"atoms.info\['charge'\] is missing"):
        atoms.get_potential_energy()
    atoms.info.update(charge=-1, multiplicity=1)
    with pytest.raises(TnqError, match="charges/am1bcc"):
        atoms.get_potential_energy()
    partial = np.linspace(-0.3, 0.3, len(z))
    atoms.arrays["charges/am1bcc"] = partial
    expected = reference(potential, z, pos, -1, 1, torch.tensor(partial))
    assert atoms.get_potential_energy() == pytest.approx(expected[0], abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), expected[1], atol=1e-10)


def test_not_a_checkpoint_is_an_error(tmp_path) -> None:
    with pytest.raises(TnqError, match="does not exist"):
        tnq_model.load(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(TnqError, match="not a tnq model checkpoint"):
        tnq_model.load(tmp_path / "other.pt")
