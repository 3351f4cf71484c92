"""TensorNet with physical terms (`physics`): learned charges, damped Coulomb and ZBL wired into the model.

The terms are checked against the building blocks of tnq_model/nn evaluated on their own, the network part
against a model built without terms (same seed), and forces against finite differences.
"""

import json

import pytest
import torch

from tnq_core.errors import TnqError
from tnq_model.checkpoint import FORMAT, FORMAT_VERSION, load_potential, save_checkpoint
from tnq_model.config import ModelConfig, resolve_config
from tnq_model.export import CONFIG_FILE, export_torchscript
from tnq_model.nn import DampedCoulomb, TensorNet, ZBLRepulsion
from tnq_model.nn.errors import ModelInputError
from tnq_model.potential import Potential

ALL = ("charges", "coulomb", "zbl")
#: Total charges of the conftest molecules: ethanol, benzoate, isopropylamine.
CHARGES = torch.tensor([0, -1, 0])
CUTOFF = 4.0  # the make_model fixture's cutoff, Å


def test_physics_off_is_todays_model(make_model, batched) -> None:
    z, pos, batch = batched
    plain, off = make_model(), make_model(physics=())
    assert list(off.state_dict()) == list(plain.state_dict())
    assert not any(key.startswith("terms.") for key in off.state_dict())
    assert torch.equal(off(z, pos, batch), plain(z, pos, batch))
    assert set(off.energy_parts(z, pos, batch)) == {"network"}


@pytest.mark.parametrize("state", [(), ("charge",)], ids=["unconditioned", "charge-state"])
def test_energy_is_network_plus_terms(make_model, batched, state) -> None:
    z, pos, batch = batched
    plain = make_model(state=state)
    model = make_model(state=state, physics=ALL)
    charge = CHARGES if state else None
    parts = model.energy_parts(z, pos, batch, CHARGES)
    assert set(parts) == {"network", "charges", "coulomb", "zbl"}
    # The terms' modules are built after the network, so the network weights are the plain model's.
    assert torch.equal(parts["network"], plain(z, pos, batch, charge))
    coulomb = DampedCoulomb(CUTOFF / 4, 3 * CUTOFF / 4)(parts["charges"], pos, batch)
    zbl = ZBLRepulsion(CUTOFF, CUTOFF / 2)(z, pos, batch)
    torch.testing.assert_close(parts["coulomb"], coulomb, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(parts["zbl"], zbl, rtol=1e-12, atol=1e-12)
    assert bool((coulomb != 0).all()) and bool((zbl > 0).all())
    torch.testing.assert_close(model(z, pos, batch, CHARGES), parts["network"] + coulomb + zbl, rtol=1e-12, atol=1e-12)


def test_terms_are_chosen_independently(make_model, batched) -> None:
    z, pos, batch = batched
    assert set(make_model(physics=["zbl"]).energy_parts(z, pos, batch)) == {"network", "zbl"}
    assert set(make_model(physics=["charges"]).energy_parts(z, pos, batch, CHARGES)) == {"network", "charges"}
    assert torch.equal(make_model(physics=["charges"])(z, pos, batch, CHARGES), make_model()(z, pos, batch))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_charges_sum_to_total_charge_and_follow_the_atoms(make_model, batched, dtype) -> None:
    z, pos, batch = batched
    model = make_model(physics=ALL, dtype=dtype)
    pos = pos.to(dtype)
    total = torch.tensor([2, -1, 0])
    charges = model.energy_parts(z, pos, batch, total)["charges"]
    assert charges.dtype == dtype and charges.shape == z.shape
    sums = torch.zeros(3, dtype=torch.float64).index_add(0, batch, charges.detach().to(torch.float64))
    assert torch.allclose(sums, total.to(torch.float64), rtol=0, atol=1e-6)
    # Shuffled atoms (molecules interleaved) get the same charges: they come back in the caller's order.
    perm = torch.randperm(len(z), generator=torch.Generator().manual_seed(3))
    shuffled = model.energy_parts(z[perm], pos[perm], batch[perm], total)["charges"]
    torch.testing.assert_close(shuffled, charges[perm], rtol=1e-5, atol=1e-6)


def test_forces_match_finite_differences(make_model, molecules) -> None:
    z, pos = molecules[1]  # benzoate, charge -1
    pos = pos * 0.8  # compress it so that ZBL and the Coulomb damping both act
    potential = Potential(make_model(physics=ALL)).eval()
    batch = torch.zeros(len(z), dtype=torch.long)
    charge = torch.tensor([-1])
    _, forces = potential.energy_and_forces(z, pos, batch, charge)
    step = 1e-5
    for atom in (0, 5, len(z) - 1):
        for axis in range(3):
            shift = torch.zeros_like(pos)
            shift[atom, axis] = step
            with torch.no_grad():
                up = potential(z, pos + shift, batch, charge)
                down = potential(z, pos - shift, batch, charge)
            numeric = -(up - down) / (2 * step)
            assert abs(float(numeric[0]) - float(forces[atom, axis])) < 1e-6 * max(1.0, abs(float(numeric[0])))


def test_potential_adds_terms_unscaled(make_model, batched) -> None:
    z, pos, batch = batched
    model = make_model(physics=ALL)
    parts = model.energy_parts(z, pos, batch, CHARGES)
    potential = Potential(model, scale=2.5, shift=0.0)
    expected = 2.5 * parts["network"] + parts["coulomb"] + parts["zbl"]
    torch.testing.assert_close(potential(z, pos, batch, CHARGES), expected.to(torch.float64), rtol=1e-12, atol=1e-12)
    assert potential.needs_charge
    with pytest.raises(TnqError, match="total charge"):
        potential(z, pos, batch)


def test_checkpoint_round_trip(make_model, batched, tmp_path) -> None:
    z, pos, batch = batched
    potential = Potential(make_model(physics=ALL)).eval()
    path = save_checkpoint(tmp_path / "physics.pt", potential)
    loaded = load_potential(path)
    assert loaded.model.physics == list(ALL)
    assert torch.equal(loaded(z, pos, batch, CHARGES), potential(z, pos, batch, CHARGES))


def test_checkpoint_without_physics_key_loads_without_terms(make_model, batched, tmp_path) -> None:
    z, pos, batch = batched
    potential = Potential(make_model()).eval()
    config = potential.config()
    del config["tensornet"]["physics"]  # as written before the physical terms existed
    payload = dict(format=FORMAT, format_version=FORMAT_VERSION, config=config,
                   state_dict=potential.state_dict(), extra={})
    torch.save(payload, tmp_path / "old.pt")
    loaded = load_potential(tmp_path / "old.pt")
    assert loaded.model.physics == []
    assert torch.equal(loaded(z, pos, batch), potential(z, pos, batch))


def test_torchscript_export_carries_the_terms(make_model, batched, tmp_path) -> None:
    z, pos, batch = batched
    potential = Potential(make_model(physics=ALL)).eval()
    checkpoint = save_checkpoint(tmp_path / "physics.pt", potential)
    out = export_torchscript(checkpoint, tmp_path / "model.ts")
    files = {CONFIG_FILE: ""}
    scripted = torch.jit.load(str(out), _extra_files=files)
    assert json.loads(files[CONFIG_FILE])["tensornet"]["physics"] == list(ALL)
    eager = potential.energy_and_forces(z, pos, batch, CHARGES)
    script = scripted.energy_and_forces(z, pos, batch, CHARGES, None, None)
    torch.testing.assert_close(script, eager, rtol=1e-10, atol=1e-10)
    scripted_model = torch.jit.script(potential.model)
    parts = scripted_model.energy_parts(z, pos, batch, CHARGES)
    torch.testing.assert_close(parts, potential.model.energy_parts(z, pos, batch, CHARGES), rtol=1e-10, atol=1e-10)
    with pytest.raises(torch.jit.Error, match="needs the total charge"):
        scripted(z, pos, batch, None, None, None)
    with pytest.raises(torch.jit.Error, match="learns charges; pass total_charge"):
        scripted_model(z, pos, batch)


@pytest.mark.parametrize(
    ("physics", "message"),
    [
        (["charges", "Nonlocal"], "unknown physics term 'Nonlocal'"),
        (["ewald"], "unknown physics term 'ewald'"),
        (["zbl", "zbl"], "names a term twice"),
        ("zbl", "is a string"),
    ],
)
def test_bad_physics_is_refused(make_model, physics, message) -> None:
    with pytest.raises(ModelInputError, match=message):
        make_model(physics=physics)


def test_learned_charges_need_the_total_charge(make_model, batched) -> None:
    z, pos, batch = batched
    model = make_model(physics=["charges"])
    with pytest.raises(ModelInputError, match=r"pass total_charge as a \(3,\) tensor"):
        model(z, pos, batch)
    with pytest.raises(ModelInputError, match=r"got shape \[2\]"):
        model(z, pos, batch, torch.tensor([0, 1]))


def test_config_key_builds_the_terms(tmp_path) -> None:
    assert ModelConfig().physics == []
    model_args = ModelConfig(physics=["zbl", "charges"]).model_dump(exclude={"dtype"})
    assert TensorNet(**model_args).physics == ["charges", "zbl"]
    # Coulomb reads the learned charges, so naming it switches them on (config and model alike).
    assert ModelConfig(physics=["zbl", "coulomb"]).physics == ["charges", "coulomb", "zbl"]
    assert TensorNet(physics=["coulomb"]).physics == ["charges", "coulomb"]
    with pytest.raises(TnqError, match="physics"):
        resolve_config(overrides={"store": tmp_path, "model": {"physics": ["dipole"]}})


def test_d4_functional_without_d4_is_refused(make_model, tmp_path) -> None:
    assert ModelConfig(physics=["d4"], d4_functional="pbe0").d4_functional == "pbe0"
    message = r"d4_functional 'pbe0' needs d4 in physics \['charges', 'coulomb'\]; add d4 or drop d4_functional"
    with pytest.raises(TnqError, match=message):
        resolve_config(overrides={"store": tmp_path, "model": {"physics": ["coulomb"], "d4_functional": "pbe0"}})
    with pytest.raises(ModelInputError, match=message):
        make_model(physics=["coulomb"], d4_functional="pbe0")
