"""torchmd-net 3.1 TensorNet checkpoints read by `from_torchmdnet` give torchmd-net's own energies and forces.

The checkpoints in tests/model/data/torchmdnet_checkpoints/ are real torchmd-net files (LNNP saved by a
Lightning Trainer after one optimiser step) and references.pt holds the energies and forces that
torchmd-net's `load_model` computed from them; bench/torchmdnet_checkpoints.py writes both (see there to
regenerate). The live tests run where torchmd-net is importable and compare with it directly.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

import tnq_model
from tnq_core.cli import run_app
from tnq_core.errors import TnqError
from tnq_model import cli as train_cli
from tnq_model import from_torchmdnet
from tnq_model.checkpoint import read_checkpoint

DATA = Path(__file__).parent / "data" / "torchmdnet_checkpoints"
REFERENCES = torch.load(DATA / "references.pt", weights_only=True)
HAS_TORCHMDNET = importlib.util.find_spec("torchmdnet") is not None
#: The issue's bound (eV, eV/Å) against torchmd-net's default (warp) kernels, about 1e-8 from exact.
WARP_TOLERANCE = 1e-6
#: Relative to the largest value, against torchmd-net's pure-PyTorch operations in float64.
TOLERANCE = 1e-12


def inputs(potential) -> tuple:
    """z, pos, batch and (when the potential takes it) the integer total charge of the reference molecules."""
    charge = REFERENCES["total_charge"].long() if potential.needs_charge else None
    return REFERENCES["z"], REFERENCES["pos"], REFERENCES["batch"], charge


def assert_close(actual: torch.Tensor, expected: torch.Tensor, relative: float) -> None:
    torch.testing.assert_close(actual, expected, rtol=0, atol=relative * float(expected.abs().max()))


def hyper_parameters(name: str) -> dict:
    return torch.load(DATA / f"{name}.ckpt", weights_only=True)["hyper_parameters"]


@pytest.mark.parametrize("name", sorted(REFERENCES["references"]))
def test_energies_and_forces_equal_torchmdnets(name: str) -> None:
    potential = from_torchmdnet(DATA / f"{name}.ckpt")
    reference = REFERENCES["references"][name]
    energy, forces = potential.energy_and_forces(*inputs(potential))
    assert energy.dtype == torch.float64 and potential.model.readout.linear.weight.dtype == torch.float64
    assert_close(energy, reference["energy"], TOLERANCE)
    assert_close(forces, reference["forces"], TOLERANCE)
    torch.testing.assert_close(energy, reference["energy_warp"], rtol=0, atol=WARP_TOLERANCE)
    torch.testing.assert_close(forces, reference["forces_warp"], rtol=0, atol=WARP_TOLERANCE)


def test_the_reference_set_covers_charge_prior_scale_and_layouts() -> None:
    assert REFERENCES["torchmdnet_version"].startswith("3.1")
    assert {"plain", "charge", "atomref", "std", "old_layout"} <= set(REFERENCES["references"])
    assert not torch.all(REFERENCES["total_charge"] == 0)
    assert "optimizer_states" in torch.load(DATA / "plain.ckpt", weights_only=True)  # a full training checkpoint
    assert "check_errors" in hyper_parameters("old_layout") and "check_errors" not in hyper_parameters("plain")


def test_charge_input_becomes_the_charge_state() -> None:
    for name in ("charge", "atomref"):
        potential = from_torchmdnet(DATA / f"{name}.ckpt")
        assert hyper_parameters(name)["charge"] is True
        assert potential.model.state == ["charge"] and potential.model.hparams["lambda_mode"] == "constant"
        z, pos, batch, charge = inputs(potential)
        assert not torch.equal(potential(z, pos, batch, charge), potential(z, pos, batch, torch.zeros_like(charge)))
    plain = from_torchmdnet(DATA / "plain.ckpt")
    assert plain.model.state == [] and not plain.needs_charge


def test_atomref_prior_is_carried_over() -> None:
    potential = from_torchmdnet(DATA / "atomref.ckpt")
    expected = torch.zeros(potential.model.max_z, dtype=torch.float64)
    for z, energy in REFERENCES["atomref"].items():
        expected[z] = energy
    torch.testing.assert_close(potential.atom_refs[:, 0], expected, rtol=0, atol=1e-12)
    assert torch.all(from_torchmdnet(DATA / "charge.ckpt").atom_refs == 0)
    # Most of each molecule's energy is its atoms' references, as the prior made it in torchmd-net.
    z, _, batch, _ = inputs(potential)
    references = torch.zeros(3, dtype=torch.float64).index_add(0, batch, expected[z])
    assert (REFERENCES["references"]["atomref"]["energy"] - references).abs().max() < 10


def test_standardize_std_becomes_the_scale() -> None:
    assert float(from_torchmdnet(DATA / "std.ckpt").scale) == 2.5
    assert float(from_torchmdnet(DATA / "plain.ckpt").scale) == 1.0


def test_float32_network_keeps_float64_references() -> None:
    potential = from_torchmdnet(DATA / "atomref.ckpt", dtype=torch.float32)
    assert potential.model.readout.linear.weight.dtype == torch.float32
    z, pos, batch, charge = inputs(potential)
    energy, _ = potential.energy_and_forces(z, pos.float(), batch, charge)
    assert energy.dtype == torch.float64
    torch.testing.assert_close(energy, REFERENCES["references"]["atomref"]["energy"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("name, words", [
    ("so3", "equivariance_invariance_group='SO(3)'"),
    ("dipole", "output_model='DipoleMoment'"),
    ("mean", "mean=-3.0"),
])
def test_unsupported_checkpoints_are_refused_in_one_line(name: str, words: str) -> None:
    with pytest.raises(TnqError) as caught:
        from_torchmdnet(DATA / f"{name}.ckpt")
    message = str(caught.value)
    assert words in message and f"{name}.ckpt" in message and "\n" not in message


def edited(tmp_path: Path, change) -> Path:
    """A copy of charge.ckpt with `change(checkpoint)` applied."""
    checkpoint = torch.load(DATA / "charge.ckpt", weights_only=True)
    change(checkpoint)
    path = tmp_path / "edited.ckpt"
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("options, words", [
    ({"model": "equivariant-transformer"}, "model='equivariant-transformer'"),
    ({"model": "tensornet2"}, "model='tensornet2'"),
    ({"rbf_type": "gauss"}, "rbf_type='gauss'"),
    ({"activation": "tanh"}, "activation='tanh'"),
    ({"cutoff_lower": 0.5}, "cutoff_lower=0.5"),
    ({"reduce_op": "mean"}, "reduce_op='mean'"),
    ({"box_vecs": [[10.0, 0, 0], [0, 10.0, 0], [0, 0, 10.0]]}, "box_vecs=[[10.0"),
    ({"atom_filter": 1}, "atom_filter=1"),
    # torchmd-net pairs prior_model with prior_args (the priors' init arguments), as torchmd-train saves them.
    ({"prior_model": "ZBL", "prior_args": [{}]}, "prior_model 'ZBL'"),
    ({"prior_model": ["Atomref", "D2"], "prior_args": [{"max_z": 10}, {}]}, "prior_model 'D2'"),
])
def test_unsupported_options_are_refused_naming_them(tmp_path, options: dict, words: str) -> None:
    path = edited(tmp_path, lambda checkpoint: checkpoint["hyper_parameters"].update(options))
    with pytest.raises(TnqError) as caught:
        from_torchmdnet(path)
    message = str(caught.value)
    assert words in message and "\n" not in message


def test_a_prior_without_its_table_is_refused(tmp_path) -> None:
    path = edited(tmp_path, lambda c: c["hyper_parameters"].update(prior_model="Atomref", prior_args=[{"max_z": 10}]))
    with pytest.raises(TnqError, match="prior_model.0.atomref.weight.*missing"):
        from_torchmdnet(path)


def test_weights_that_do_not_fit_are_refused(tmp_path) -> None:
    extra = edited(tmp_path, lambda c: c["state_dict"].update({"model.representation_model.layers.2.linear.weight":
                                                               torch.zeros(2, 2, dtype=torch.float64)}))
    with pytest.raises(TnqError, match="no place in tnq's TensorNet"):
        from_torchmdnet(extra)
    missing = edited(tmp_path, lambda c: c["state_dict"].pop("model.representation_model.linear.weight"))
    with pytest.raises(TnqError, match="representation_model.linear.weight.*missing"):
        from_torchmdnet(missing)
    wider = edited(tmp_path, lambda c: c["hyper_parameters"].update(embedding_dimension=16))
    with pytest.raises(TnqError, match="do not fit"):
        from_torchmdnet(wider)


def test_files_that_are_not_torchmdnet_checkpoints_are_refused(tmp_path) -> None:
    with pytest.raises(TnqError, match="does not exist"):
        from_torchmdnet(tmp_path / "absent.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(TnqError, match="cannot read .* as a torchmd-net checkpoint"):
        from_torchmdnet(tmp_path / "junk.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "partial.ckpt")
    with pytest.raises(TnqError, match="not a torchmd-net checkpoint"):
        from_torchmdnet(tmp_path / "partial.ckpt")
    sizeless = edited(tmp_path, lambda c: c["hyper_parameters"].pop("num_rbf"))
    with pytest.raises(TnqError, match="hyper_parameters lack num_rbf"):
        from_torchmdnet(sizeless)


def run(args: list, capsys) -> tuple[int, str, str]:
    code = run_app(train_cli.app, [str(a) for a in args], prog_name="tnq-train")
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_import_command_writes_a_run_that_load_and_ase_use(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    code, out, err = run(["import-torchmdnet", DATA / "atomref.ckpt", "--out", run_dir], capsys)
    assert code == 0, err
    assert out.strip() == str(run_dir / "best.pt")
    extra = read_checkpoint(run_dir / "best.pt")["extra"]
    assert extra["source"] == "torchmdnet" and extra["hyper_parameters"]["prior_model"] == [{"Atomref": {"max_z": 10}}]
    assert "config" not in extra and sorted(p.name for p in run_dir.iterdir()) == ["best.pt"]

    predictor = tnq_model.load(run_dir / "best.pt")
    reference = REFERENCES["references"]["atomref"]
    z, pos, batch, charge = (REFERENCES[key].numpy() for key in ("z", "pos", "batch", "total_charge"))
    for b in range(int(batch.max()) + 1):
        atoms = batch == b
        energy, forces = predictor.predict(z[atoms], pos[atoms], int(charge[b]))
        assert abs(energy - float(reference["energy_warp"][b])) < WARP_TOLERANCE
        np.testing.assert_allclose(forces, reference["forces_warp"][torch.from_numpy(atoms)].numpy(), rtol=0,
                                   atol=WARP_TOLERANCE)
        from tnq_model.ase import TNQCalculator

        molecule = Atoms(numbers=z[atoms], positions=pos[atoms])
        molecule.info["charge"] = int(charge[b])
        molecule.calc = TNQCalculator(run_dir / "best.pt")
        assert molecule.get_potential_energy() == pytest.approx(float(reference["energy"][b]), abs=WARP_TOLERANCE)

    before = (run_dir / "best.pt").read_bytes()
    code, _, err = run(["import-torchmdnet", DATA / "plain.ckpt", "--out", run_dir], capsys)
    assert code == 1 and "already exists" in err and "--out" in err and len(err.strip().splitlines()) == 1
    assert (run_dir / "best.pt").read_bytes() == before

    code, _, err = run(["eval", run_dir, "--store", tmp_path / "store"], capsys)
    assert code == 1 and "source: torchmdnet" in err and len(err.strip().splitlines()) == 1


def test_import_command_refuses_in_one_line_and_writes_nothing(tmp_path, capsys) -> None:
    code, out, err = run(["import-torchmdnet", DATA / "so3.ckpt", "--out", tmp_path / "run"], capsys)
    assert code == 1 and out == "" and "equivariance_invariance_group='SO(3)'" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not HAS_TORCHMDNET, reason="torchmd-net is not importable (see bench/torchmdnet_checkpoints.py)")
@pytest.mark.parametrize("name", sorted(REFERENCES["references"]))
def test_matches_live_torchmdnet(name: str) -> None:
    """The installed torchmd-net reads the same files and gives the same energies and forces."""
    from torchmdnet.models.model import load_model

    potential = from_torchmdnet(DATA / f"{name}.ckpt")
    z, pos, batch, charge = inputs(potential)
    reference = load_model(str(DATA / f"{name}.ckpt"), derivative=True).eval()
    energy, forces = reference(z, pos.clone(), batch, q=None if charge is None else charge.double())
    tnq_energy, tnq_forces = potential.energy_and_forces(z, pos, batch, charge)
    torch.testing.assert_close(tnq_energy, energy.detach().squeeze(-1), rtol=0, atol=WARP_TOLERANCE)
    torch.testing.assert_close(tnq_forces, forces.detach(), rtol=0, atol=WARP_TOLERANCE)


@pytest.mark.skipif(not HAS_TORCHMDNET, reason="torchmd-net is not importable (see bench/torchmdnet_checkpoints.py)")
def test_trained_radial_basis_and_shape_options_live(tmp_path) -> None:
    """trainable_rbf with moved means and widths (read from the file, not computed), static_shapes and the spin
    flag (TensorNet 3.1 ignores spin) give torchmd-net's energies and forces."""
    from torchmdnet.models.model import create_model, load_model
    from torchmdnet.scripts.train import get_argparse

    hparams = vars(get_argparse().parse_args([]))
    hparams.update(model="tensornet", embedding_dimension=8, num_layers=1, num_rbf=6, max_z=10, cutoff_upper=3.5,
                   precision=64, derivative=True, trainable_rbf=True, static_shapes=True, spin=True, prior_args=[])
    torch.manual_seed(3)
    model = create_model(dict(hparams))
    with torch.no_grad():
        model.representation_model.distance_expansion.means.mul_(1.1)
        model.representation_model.distance_expansion.betas.mul_(0.9)
    path = tmp_path / "trained.ckpt"
    torch.save({"hyper_parameters": hparams, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}},
               path)
    potential = from_torchmdnet(path)
    z, pos, batch, _ = inputs(potential)
    energy, forces = load_model(str(path), derivative=True).eval()(z, pos.clone(), batch)
    tnq_energy, tnq_forces = potential.energy_and_forces(z, pos, batch)
    torch.testing.assert_close(tnq_energy, energy.detach().squeeze(-1), rtol=0, atol=WARP_TOLERANCE)
    torch.testing.assert_close(tnq_forces, forces.detach(), rtol=0, atol=WARP_TOLERANCE)
    assert potential.model.hparams["trainable_rbf"] and isinstance(potential.model.rbf.means, torch.nn.Parameter)
