"""Checkpoint round trip, reading format versions 1 and 2, and TorchScript export.

Electron counts of the test molecules (conftest.SMILES, neutral formula): ethanol 26, benzoate C7H5O2 63,
isopropylamine 34; a state with N = sum(Z) - Q electrons needs 2S+1 of the parity opposite to N.
"""

import numpy as np
import pytest
import torch

import tnq_model
from tnq_core.errors import TnqError
from tnq_model import Potential, export_torchscript, save_checkpoint
from tnq_model.checkpoint import read_checkpoint

STATE = ("charge", "spin", "charges/am1bcc")
#: What format 3 added: config keys and state-dict buffers a version 2 checkpoint lacks.
V3_CONFIG = ("ref_multiplicities", "atom_ref_columns")
V3_BUFFERS = ("charge_offsets", "ref_multiplicities", "multiplicity_offsets")


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
    return float(energy[0].detach()), forces.detach().numpy()


def as_version_2(payload: dict, extra: dict) -> dict:
    """``payload`` (format 3) as format 2 wrote it: no offsets, references in the model's dtype."""
    config = {key: value for key, value in payload["config"].items() if key not in V3_CONFIG}
    dtype = getattr(torch, config["dtype"])
    weights = {name: value for name, value in payload["state_dict"].items() if name not in V3_BUFFERS}
    weights.update({name: weights[name].to(dtype) for name in ("atom_refs", "scale", "shift")})
    return dict(payload, format_version=2, config=config, state_dict=weights, extra=extra)


def test_round_trip_predicts_like_the_saved_potential(checkpoint, molecules) -> None:
    path, potential = checkpoint
    z, pos = molecules[1]  # benzoate with Q = -1: 64 electrons, a triplet is possible
    partial = torch.linspace(-0.3, 0.3, len(z), dtype=torch.float64)
    predictor = tnq_model.load(path)
    assert predictor.partial_charge_names == ["charges/am1bcc"]
    energy, forces = predictor.predict(z.numpy(), pos.numpy(), -1, 3, partial.numpy())
    expected = reference(potential, z, pos, -1, 3, partial)
    assert energy == pytest.approx(expected[0], abs=1e-10)
    np.testing.assert_allclose(forces, expected[1], atol=1e-10)
    assert torch.load(path, weights_only=True)["extra"] == {"epoch": 3, "config": {"lr": 1e-3}}


def test_version_1_checkpoint_is_read_with_its_old_parameter_names(checkpoint, molecules, tmp_path) -> None:
    path, potential = checkpoint
    payload = as_version_2(torch.load(path, weights_only=True), extra={})

    def as_v1(name: str) -> str:  # version 1 spelled radial.layers.K as nn.Sequential index radial.{2K}
        head, sep, tail = name.partition(".radial.layers.")
        return f"{head}.radial.{2 * int(tail[0])}{tail[1:]}" if sep else name

    old = {as_v1(name): value for name, value in payload["state_dict"].items()}
    assert any(".radial.4.weight" in name for name in old)
    v1 = dict(payload, format_version=1, state_dict=old, extra={"trainer": {"weights": old}})
    torch.save(v1, tmp_path / "v1.pt")
    assert read_checkpoint(tmp_path / "v1.pt")["extra"]["trainer"]["weights"].keys() == payload["state_dict"].keys()
    z, pos = molecules[0]
    partial = torch.zeros(len(z), dtype=torch.float64)
    energy, forces = tnq_model.load(tmp_path / "v1.pt").predict(z.numpy(), pos.numpy(), 0, 1, partial.numpy())
    expected = reference(potential, z, pos, 0, 1, partial)
    assert energy == pytest.approx(expected[0], abs=1e-10)
    np.testing.assert_allclose(forces, expected[1], atol=1e-10)


def test_version_2_checkpoint_keeps_its_per_charge_references(make_model, molecules, tmp_path) -> None:
    model = make_model(state=("charge", "charges/am1bcc"), state_mode="spooky", dtype=torch.float32)
    table = -0.25 * torch.arange(40, dtype=torch.float64).reshape(20, 2)  # column Q: exact in float32
    potential = Potential(model, table, ref_charges=[0, 1], scale=1.5, shift=0.25)
    payload = torch.load(save_checkpoint(tmp_path / "v3.pt", potential), weights_only=True)
    v2 = as_version_2(payload, extra={"epoch": 7, "train_state": {"step": torch.tensor(10)}})
    assert v2["state_dict"]["atom_refs"].dtype == torch.float32
    # Version 2 gave the per-atom embedding of the partial charges (electronic.1) a query and key too.
    channels = 16
    v2["state_dict"].update({
        "model.electronic.1.query.weight": torch.randn(channels, channels),
        "model.electronic.1.query.bias": torch.randn(channels),
        "model.electronic.1.key.weight": torch.randn(channels, 2),
    })
    assert "model.electronic.0.query.weight" in v2["state_dict"]  # the total charge keeps its attention
    torch.save(v2, tmp_path / "v2.pt")
    assert read_checkpoint(tmp_path / "v2.pt")["extra"] == {"epoch": 7, "train_state": None}

    predictor = tnq_model.load(tmp_path / "v2.pt")
    z, pos = molecules[0]  # ethanol: 26 electrons as Q = 0, 25 as Q = 1
    batch = torch.zeros(len(z), dtype=torch.long)
    partial = torch.linspace(-0.3, 0.3, len(z))
    energies = {}
    for charge, multiplicity in ((0, 1), (1, 2)):
        energies[charge], _ = predictor.predict(z.numpy(), pos.numpy(), charge, multiplicity, partial.numpy())
        with torch.no_grad():
            network = float(model(z, pos.float(), batch, torch.tensor([charge]), None, partial))
        expected = 1.5 * network + 0.25 * len(z) + float(table[z, charge].sum())
        assert energies[charge] == pytest.approx(expected, abs=1e-4)
    with pytest.raises(TnqError, match="total charge"):  # the per-charge table needs the charge
        predictor.predict(z.numpy(), pos.numpy(), None, 1, partial.numpy())


def test_version_2_constant_lambda_charge_spin_model_is_refused(make_model, tmp_path) -> None:
    potential = Potential(make_model(state=("charge", "spin"), lambda_mode="learnable"))
    v2 = as_version_2(torch.load(save_checkpoint(tmp_path / "v3.pt", potential), weights_only=True), extra={})
    v2["config"]["tensornet"] = dict(v2["config"]["tensornet"], lambda_mode="constant")
    path = tmp_path / "v2_constant.pt"
    torch.save(v2, path)
    with pytest.raises(TnqError) as error:
        tnq_model.load(path)
    message = str(error.value)
    assert str(path) in message and "lambda_mode='constant'" in message and "\n" not in message


def test_a_failed_save_keeps_the_previous_checkpoint_whole(checkpoint) -> None:
    path, potential = checkpoint
    before = path.read_bytes()
    with pytest.raises(Exception):  # a lambda cannot be pickled: torch.save fails part-way through
        save_checkpoint(path, potential, epoch=4, hook=lambda: None)
    assert path.read_bytes() == before and read_checkpoint(path)["extra"]["epoch"] == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"], "no temporary is left behind"
    save_checkpoint(path, potential, epoch=5)
    assert read_checkpoint(path)["extra"]["epoch"] == 5
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]


def test_not_a_checkpoint_is_an_error(tmp_path) -> None:
    with pytest.raises(TnqError, match="does not exist"):
        tnq_model.load(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(TnqError, match="not a tnq model checkpoint"):
        tnq_model.load(tmp_path / "other.pt")


def test_torchscript_export_equals_eager(checkpoint, molecules, tmp_path) -> None:
    path, potential = checkpoint
    scripted = torch.jit.load(str(export_torchscript(path, tmp_path / "model.ts")))
    z, pos = molecules[0]  # ethanol as Q = 1: 25 electrons, a doublet
    partial = torch.linspace(-0.3, 0.3, len(z), dtype=torch.float64)
    batch = torch.zeros(len(z), dtype=torch.long)
    args = (z, pos, batch, torch.tensor([1]), torch.tensor([2]), partial)
    torch.testing.assert_close(scripted(*args), potential(*args))
    torch.testing.assert_close(scripted.energy_and_forces(*args), potential.energy_and_forces(*args))
    with pytest.raises(torch.jit.Error, match="needs the total charge"):
        scripted(z, pos, batch, None, torch.tensor([2]), partial)
    with pytest.raises(torch.jit.Error, match="needs the multiplicity"):
        scripted(z, pos, batch, torch.tensor([1]), None, partial)


def test_torchscript_reference_offsets_need_a_known_charge(make_model, molecules, tmp_path) -> None:
    model = make_model(dtype=torch.float32)  # plain, float32 network; energies are float64 all the same
    potential = Potential(model, ref_charges=[0, 1], charge_offsets=[0.0, 7.5]).eval()
    path = save_checkpoint(tmp_path / "plain.pt", potential)
    scripted = torch.jit.load(str(export_torchscript(path, tmp_path / "plain.ts")))
    z, pos = molecules[0]
    pos, batch = pos.float(), torch.zeros(len(z), dtype=torch.long)
    energies = {}
    with torch.no_grad():
        for charge in (0, 1):
            energies[charge] = scripted(z, pos, batch, torch.tensor([charge]))
            assert energies[charge].dtype == torch.float64
            torch.testing.assert_close(energies[charge], potential(z, pos, batch, torch.tensor([charge])))
    assert float(energies[1] - energies[0]) == pytest.approx(7.5, abs=1e-12)
    with pytest.raises(torch.jit.Error, match="no reference energy"):
        scripted(z, pos, batch, torch.tensor([5]))
    with pytest.raises(torch.jit.Error, match="needs the total charge"):
        scripted(z, pos, batch)
