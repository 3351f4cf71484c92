"""Same weights, same energies and forces as torchmd-net 3.1's TensorNet, at several cutoffs.

Plain TensorNet and TensorNet with the single state attribute ``"charge"`` and constant lambda are
torchmd-net 3.1's TensorNet without and with its total-charge input ``q``. torchmd-net's weights are
mapped onto tnq's parameters by ``tnq_model.torchmdnet.tensornet_weights``, the mapping of
``from_torchmdnet`` (tests/model/test_from_torchmdnet.py reads whole checkpoints); tnq computes its radial
basis itself and that basis must equal torchmd-net's too.

The CI tests compare with tests/model/data/torchmdnet_reference.pt, written by torchmd-net 3.1 through
bench/torchmdnet_reference.py (see there, and docs/model.md, to regenerate it). The live tests build
torchmd-net models here and run only where torchmd-net is importable.

The float64 comparison is with torchmd-net's pure-PyTorch TensorNet operations, within TOLERANCE of
the largest value. Its default warp kernels are compared too, within WARP_TOLERANCE: torchmd-net 3.1's
``tensor_norm3`` kernel uses a float32 1/3 even in float64, which moves its energies by about 1e-8.
"""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from tnq_model import Potential, TensorNet
from tnq_model.checkpoint import load_potential, save_checkpoint
from tnq_model.torchmdnet import BASIS, tensornet_weights

REFERENCE = Path(__file__).parent / "data" / "torchmdnet_reference.pt"
HAS_TORCHMDNET = importlib.util.find_spec("torchmdnet") is not None
#: Relative to the largest energy or force: tnq and torchmd-net agree to about 1e-15, with and without
#: the charge input (the constant lambda is built in float64, exactly torchmd-net's 0.1).
TOLERANCE = 1e-12
WARP_TOLERANCE = 1e-7
CASES = [(case["cutoff"], case["with_charge"]) for case in torch.load(REFERENCE, weights_only=True)["cases"]]


def tnq_model(hparams: dict, cutoff: float, with_charge: bool, reference: dict[str, torch.Tensor]) -> TensorNet:
    """float64 tnq TensorNet with torchmd-net's weights and its own radial basis."""
    model = TensorNet(
        hidden_channels=hparams["hidden_channels"], num_layers=hparams["num_layers"], num_rbf=hparams["num_rbf"],
        cutoff=cutoff, max_z=hparams["max_z"], state=("charge",) if with_charge else (),
        state_mode="tensornet", lambda_mode="constant", dtype=torch.float64,
    )
    missing, unexpected = model.load_state_dict(tensornet_weights(reference, hparams["num_layers"]), strict=False)
    assert not unexpected
    # Left to tnq: its radial basis and the constant lambda buffers of the charge state.
    lambdas = {f"layers.{k}.state_scale.lam" for k in range(len(model.layers))}
    assert {"rbf.means", "rbf.betas"} <= set(missing) <= {"rbf.means", "rbf.betas"} | lambdas
    return model


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tolerance: float) -> None:
    """Every element within ``tolerance`` times the largest magnitude of ``expected``."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=tolerance * float(expected.abs().max()))


def energies_forces(model: TensorNet, z, pos, batch, charge) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies (B,) and forces -dE/dpos (N, 3)."""
    pos = pos.clone().requires_grad_(True)
    energy = model(z, pos, batch, total_charge=charge)
    (gradient,) = torch.autograd.grad(energy.sum(), pos)
    return energy.detach(), -gradient


@pytest.fixture(scope="module")
def reference() -> dict:
    """The committed torchmd-net 3.1 reference (inputs, weights, energies and forces per case)."""
    return torch.load(REFERENCE, map_location="cpu", weights_only=True)


def test_reference_file_covers_cutoffs_and_charge(reference) -> None:
    assert reference["torchmdnet_version"].startswith("3.1")
    cases = {(case["cutoff"], case["with_charge"]) for case in reference["cases"]}
    cutoffs = {cutoff for cutoff, _ in cases}
    assert len(cutoffs) >= 3 and 5.0 in cutoffs and cases == {(c, q) for c in cutoffs for q in (False, True)}
    # The cutoffs matter: each drops pairs that the next larger one keeps.
    pos, batch = reference["pos"], reference["batch"]
    same = batch.unsqueeze(0) == batch.unsqueeze(1)
    distances = torch.cdist(pos, pos)[same]
    counts = [int((distances < cutoff).sum()) for cutoff in sorted(cutoffs)]
    assert counts == sorted(set(counts)) and counts[-1] < same.sum()
    assert not torch.all(reference["total_charge"] == 0)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"cutoff{c}-{'charge' if q else 'plain'}" for c, q in CASES])
def test_matches_torchmdnet_reference_file(reference, index: int) -> None:
    """tnq's own radial basis, energies and forces equal torchmd-net 3.1's (stored) to float64 precision."""
    case = reference["cases"][index]
    model = tnq_model(reference["hparams"], case["cutoff"], case["with_charge"], reference["state_dict"])
    torch.testing.assert_close(model.rbf.means, case["means"], rtol=1e-12, atol=0)
    torch.testing.assert_close(model.rbf.betas, case["betas"], rtol=1e-12, atol=0)
    charge = reference["total_charge"] if case["with_charge"] else None
    energy, forces = energies_forces(model, reference["z"], reference["pos"], reference["batch"], charge)
    assert_close(energy, case["energy"], TOLERANCE)
    assert_close(forces, case["forces"], TOLERANCE)
    assert_close(energy, case["energy_warp"], WARP_TOLERANCE)
    assert_close(forces, case["forces_warp"], WARP_TOLERANCE)


def test_checkpoint_keeps_its_radial_basis(reference, tmp_path) -> None:
    """A checkpoint written before the basis followed torchmd-net (means from exp(-5) at any cutoff)
    restores its own means and widths, so an old trained model gives the same energies."""
    cutoff, num_rbf = 4.0, reference["hparams"]["num_rbf"]
    model = tnq_model(reference["hparams"], cutoff, True, reference["state_dict"])
    start = math.exp(-5.0)  # the old start, for every cutoff (as the old code computed it)
    old_means = torch.linspace(start, 1.0, num_rbf).double()
    old_betas = torch.full((num_rbf,), (2.0 / num_rbf * (1.0 - start)) ** -2).double()
    assert not torch.allclose(old_means, model.rbf.means)
    model.rbf.means.copy_(old_means)
    model.rbf.betas.copy_(old_betas)
    z, pos, batch, charge = reference["z"], reference["pos"], reference["batch"], reference["total_charge"]
    old_energy, old_forces = energies_forces(model, z, pos, batch, charge)
    path = save_checkpoint(tmp_path / "old.pt", Potential(model))
    loaded = load_potential(path).model
    assert torch.equal(loaded.rbf.means, old_means) and torch.equal(loaded.rbf.betas, old_betas)
    energy, forces = energies_forces(loaded, z, pos, batch, charge)
    assert torch.equal(energy, old_energy) and torch.equal(forces, old_forces)


@pytest.mark.skipif(not HAS_TORCHMDNET, reason="torchmd-net is not importable (see docs/model.md)")
@pytest.mark.parametrize("with_charge", [False, True])
@pytest.mark.parametrize("cutoff", [3.0, 4.5, 5.0, 6.0])
def test_matches_live_torchmdnet(batched, monkeypatch, cutoff: float, with_charge: bool) -> None:
    """The same comparison against the installed torchmd-net, with its own fresh weights."""
    from torchmdnet.models import tensornet as reference_module
    from torchmdnet.models.model import TorchMD_Net
    from torchmdnet.models.output_modules import Scalar

    z, pos, batch = batched
    hparams = dict(hidden_channels=16, num_layers=2, num_rbf=8, max_z=20)
    torch.manual_seed(0)
    representation = reference_module.TensorNet(
        **hparams, cutoff_lower=0.0, cutoff_upper=cutoff, static_shapes=False, dtype=torch.float64
    )
    reference = TorchMD_Net(
        representation, Scalar(hparams["hidden_channels"], dtype=torch.float64), derivative=True, dtype=torch.float64
    ).eval()
    with torch.no_grad():  # constant-initialised tensors (LayerNorms, head biases) get noise, as in the file
        for parameter in reference.parameters():
            if torch.all(parameter == parameter.flatten()[0]):
                parameter.add_(0.1 * torch.randn_like(parameter))
    weights = reference.state_dict()
    model = tnq_model(hparams, cutoff, with_charge, weights)
    torch.testing.assert_close(model.rbf.means, weights[BASIS["rbf.means"]], rtol=1e-12, atol=0)
    torch.testing.assert_close(model.rbf.betas, weights[BASIS["rbf.betas"]], rtol=1e-12, atol=0)
    charge = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64) if with_charge else None
    energy, forces = energies_forces(model, z, pos, batch, charge)

    warp_energy, warp_forces = reference(z, pos.clone(), batch, q=charge)
    assert_close(energy, warp_energy.detach().squeeze(-1), WARP_TOLERANCE)
    assert_close(forces, warp_forces.detach(), WARP_TOLERANCE)

    # torchmd-net's pure-PyTorch operations (its non-warp branches), float64 throughout.
    for name in ("compose_tensor", "decompose_tensor", "tensor_matmul_o3", "tensor_matmul_so3"):
        monkeypatch.setattr(reference_module, name, getattr(reference_module, "_" + name))
    for module in reference.modules():
        if hasattr(module, "opt"):
            monkeypatch.setattr(module, "opt", False)
    reference_energy, reference_forces = reference(z, pos.clone(), batch, q=charge)
    assert_close(energy, reference_energy.detach().squeeze(-1), TOLERANCE)
    assert_close(forces, reference_forces.detach(), TOLERANCE)
