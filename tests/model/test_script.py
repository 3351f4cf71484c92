"""TorchScript and torch.compile give the eager energies and forces, in float32 and float64."""

import pytest
import torch

MODES = [
    dict(state=()),
    dict(state=("charge", "spin", "charges/am1bcc"), state_mode="tensornet", lambda_mode="channel"),
    dict(state=("charge", "spin", "charges/am1bcc"), state_mode="spooky"),
]


def energy_and_forces(model, z, pos, batch, state: tuple):
    pos = pos.clone().requires_grad_(True)
    inputs = {}
    if "charge" in state:
        inputs = dict(
            total_charge=torch.tensor([1, 0, -1]),
            spin=torch.tensor([1, 0, 2]),
            partial_charges=torch.linspace(-0.4, 0.4, len(z), dtype=pos.dtype),
        )
    energy = model(z, pos, batch, **inputs)
    (gradient,) = torch.autograd.grad(energy.sum(), pos)
    return energy, -gradient


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", MODES, ids=["plain", "tensornet", "spooky"])
def test_torchscript_matches_eager(make_model, batched, options: dict, dtype: torch.dtype) -> None:
    z, pos, batch = batched
    model = make_model(dtype=dtype, **options)
    scripted = torch.jit.script(model)
    eager = energy_and_forces(model, z, pos.to(dtype), batch, options["state"])
    script = energy_and_forces(scripted, z, pos.to(dtype), batch, options["state"])
    assert eager[0].dtype == dtype
    torch.testing.assert_close(script, eager)


@pytest.mark.slow
@pytest.mark.parametrize(
    "options, backend",
    [
        (MODES[1], "aot_eager"),
        (MODES[2], "aot_eager"),
        (MODES[1], "inductor"),
        (MODES[2], "inductor"),
    ],
    ids=["tensornet-aot_eager", "spooky-aot_eager", "tensornet-inductor", "spooky-inductor"],
)
def test_torch_compile_matches_eager(make_model, batched, options: dict, backend: str) -> None:
    z, pos, batch = batched
    model = make_model(**options)
    compiled = torch.compile(model, backend=backend, dynamic=True)
    torch.testing.assert_close(
        energy_and_forces(compiled, z, pos, batch, options["state"]),
        energy_and_forces(model, z, pos, batch, options["state"]),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torchscript_matches_eager_on_the_edge_path(make_model, batched, dtype: torch.dtype) -> None:
    # The edge-list kernels run under TorchScript's own autograd (eager wraps them in one autograd node), so
    # they must not write in place into anything autograd keeps; a fill threshold above 1 sends every group there.
    z, pos, batch = batched
    model = make_model(dtype=dtype, **MODES[1])
    model.dense_min_fill = 2.0
    scripted = torch.jit.script(model)
    eager = energy_and_forces(model, z, pos.to(dtype), batch, MODES[1]["state"])
    torch.testing.assert_close(energy_and_forces(scripted, z, pos.to(dtype), batch, MODES[1]["state"]), eager)
