"""Nonlocal attention (physics "nonlocal"): the random-feature estimator against exact softmax attention computed
here, molecules kept apart, symmetries, forces against finite differences, checkpoints, ASE and TorchScript."""

import json

import numpy as np
import pytest
import torch
from ase import Atoms

from tnq_model.ase import TNQCalculator
from tnq_model.checkpoint import load_potential, save_checkpoint
from tnq_model.export import export_torchscript
from tnq_model.nn.errors import ModelInputError
from tnq_model.nn.nonlocal_attention import (
    NonlocalAttention,
    log_positive_features,
    orthogonal_gaussian_directions,
    random_feature_attention,
)
from tnq_model.potential import Potential

#: Total charges of the conftest molecules: ethanol, benzoate, isopropylamine.
CHARGES = torch.tensor([0, -1, 0])


def exact_attention(queries, keys, values, batch):
    """Softmax attention of every atom over the atoms of its molecule, from the full (N, N) logits."""
    logits = (queries @ keys.t()).masked_fill(batch[:, None] != batch[None, :], float("-inf"))
    return torch.softmax(logits, dim=1) @ values


def random_inputs(seed, atoms=12, dim=8, channels=5, scale=0.35):
    """queries, keys (atoms, dim) of size ``scale``, values (atoms, channels) and batch (atoms,) of 3 molecules."""
    generator = torch.Generator().manual_seed(seed)
    queries, keys = scale * torch.randn(2, atoms, dim, generator=generator, dtype=torch.float64)
    values = torch.randn(atoms, channels, generator=generator, dtype=torch.float64)
    return queries, keys, values, torch.randint(0, 3, (atoms,), generator=generator)


def rotation(seed):
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q  # orthogonal, a rotation or a rotation-reflection


def test_directions_are_gaussian_rows_orthogonal_within_blocks():
    directions = orthogonal_gaussian_directions(3000 * 8, 8, torch.Generator().manual_seed(0))
    block = directions[:8]
    gram = block @ block.t()
    torch.testing.assert_close(gram - torch.diag(torch.diagonal(gram)), torch.zeros(8, 8, dtype=torch.float64),
                               atol=1e-12, rtol=0)
    # Marginally N(0, I): unit covariance, and squared lengths chi^2 with 8 degrees of freedom (mean 8, var 16).
    covariance = directions.t() @ directions / directions.shape[0]
    torch.testing.assert_close(covariance, torch.eye(8, dtype=torch.float64), atol=0.05, rtol=0)
    lengths = (directions ** 2).sum(1)
    assert abs(float(lengths.mean()) - 8) < 0.1 and abs(float(lengths.var()) - 16) < 1.0


def test_feature_map_estimates_the_softmax_kernel():
    """mean_a phi(q)_a phi(k)_a -> exp(q . k) (Performer's lemma), within the standard error of iid features."""
    queries, keys, _, _ = random_inputs(1)
    num_features = 200_000
    directions = orthogonal_gaussian_directions(num_features, 8, torch.Generator().manual_seed(2))
    estimate = torch.exp(log_positive_features(queries, directions)) @ torch.exp(
        log_positive_features(keys, directions)).t() / num_features
    kernel = torch.exp(queries @ keys.t())
    # Relative variance of one iid positive feature: exp(|q + k|^2) - 1 (orthogonal rows only lower it).
    sigma = torch.sqrt((torch.exp(((queries[:, None] + keys[None]) ** 2).sum(-1)) - 1) / num_features)
    z_scores = (estimate / kernel - 1) / sigma
    assert float(z_scores.abs().max()) < 5 and float(z_scores.pow(2).mean().sqrt()) < 2


def test_estimate_converges_to_exact_softmax_attention():
    def rms_error(num_features):
        errors = []
        for seed in range(6):
            queries, keys, values, batch = random_inputs(seed)
            directions = orthogonal_gaussian_directions(num_features, 8, torch.Generator().manual_seed(100 + seed))
            estimate = random_feature_attention(queries, keys, values, batch, directions)
            errors.append((estimate - exact_attention(queries, keys, values, batch)).pow(2).mean())
        return float(torch.stack(errors).mean().sqrt())

    coarse, fine = rms_error(32), rms_error(32 * 512)
    assert fine < coarse / 4 and fine < 0.03  # values are of size 1


def test_module_is_softmax_attention_of_its_projections():
    torch.manual_seed(0)
    module = NonlocalAttention(6, num_features=40_000).double()
    features = torch.randn(9, 6, dtype=torch.float64)
    batch = torch.tensor([1, 0, 1, 2, 0, 1, 1, 2, 0])
    scale = 6 ** -0.25
    with torch.no_grad():
        reference = exact_attention(module.query(features) * scale, module.key(features) * scale,
                                    module.value(features), batch)
        torch.testing.assert_close(module(features, batch), reference, atol=0.03, rtol=0)


def test_molecules_do_not_see_each_other():
    torch.manual_seed(0)
    module = NonlocalAttention(6, num_features=12).double()
    features = torch.randn(11, 6, dtype=torch.float64)
    batch = torch.tensor([0, 1, 2, 1, 0, 2, 1, 0, 2, 2, 1])
    changed = features.clone()
    changed[batch == 1] = torch.randn(int((batch == 1).sum()), 6, dtype=torch.float64)
    before, after = module(features, batch), module(changed, batch)
    assert torch.equal(before[batch != 1], after[batch != 1])
    assert not torch.allclose(before[batch == 1], after[batch == 1])
    # A molecule alone gets the rows it gets in the batch.
    alone = module(features[batch == 2], torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(alone, before[batch == 2], rtol=1e-12, atol=1e-12)


def test_permuting_atoms_permutes_the_rows():
    torch.manual_seed(0)
    module = NonlocalAttention(6, num_features=12).double()
    features = torch.randn(11, 6, dtype=torch.float64)
    batch = torch.tensor([0, 1, 2, 1, 0, 2, 1, 0, 2, 2, 1])
    perm = torch.randperm(11, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(module(features[perm], batch[perm]), module(features, batch)[perm],
                               rtol=1e-12, atol=1e-12)


def test_large_features_do_not_underflow_float32():
    """exp(w . q - |q|^2 / 2) of every feature underflows float32 (below -104) without the shifts; the float64
    result is the reference."""
    torch.manual_seed(0)
    module = NonlocalAttention(8, num_features=16)
    features = 40 * torch.randn(7, 8)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    with torch.no_grad():
        largest = float(log_positive_features(module.query(features) * module.temperature,
                                              module.directions.float()).max())
        out32 = module(features, batch)
        out64 = module.double()(features.double(), batch)
    assert largest < -110 and bool(torch.isfinite(out32).all())
    torch.testing.assert_close(out32.double(), out64, rtol=1e-3, atol=1e-3 * float(out64.abs().max()))


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    module = NonlocalAttention(4, num_features=6).double()
    features = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    batch = torch.tensor([0, 1, 0, 1, 1, 0, 1])
    assert torch.autograd.gradcheck(lambda x: module(x, batch), (features,))
    assert torch.autograd.gradgradcheck(lambda x: module(x, batch), (features,))  # force training


def test_bad_sizes_are_refused():
    with pytest.raises(ModelInputError, match="`num_features` >= 1"):
        NonlocalAttention(8, num_features=0)


def test_other_weights_are_todays_model(make_model, batched):
    z, pos, batch = batched
    plain, model = make_model(), make_model(physics=["nonlocal"])
    state = model.state_dict()
    for key, value in plain.state_dict().items():
        assert torch.equal(state[key], value), key
    assert {key for key in state if key not in plain.state_dict()} == {
        "nonlocal_attention.directions", "nonlocal_attention.query.weight", "nonlocal_attention.query.bias",
        "nonlocal_attention.key.weight", "nonlocal_attention.value.weight", "nonlocal_attention.value.bias"}
    assert not torch.allclose(model(z, pos, batch), plain(z, pos, batch))
    assert torch.equal(make_model(physics=())(z, pos, batch), plain(z, pos, batch))


def test_atoms_beyond_the_cutoff_interact_only_with_nonlocal(make_model, molecules):
    """Two fragments 30 Å apart in one molecule: without attention the energy is the sum of the fragments'."""
    (z_a, pos_a), (z_b, pos_b) = molecules[0], molecules[2]
    z = torch.cat((z_a, z_b))
    pos = torch.cat((pos_a, pos_b + torch.tensor([30.0, 0.0, 0.0], dtype=torch.float64)))
    one = torch.zeros(len(z), dtype=torch.long)
    two = torch.cat((torch.zeros(len(z_a), dtype=torch.long), torch.ones(len(z_b), dtype=torch.long)))
    for physics, additive in (((), True), (["nonlocal"], False)):
        model = make_model(physics=physics)
        together, apart = model(z, pos, one), model(z, pos, two).sum()
        assert torch.allclose(together, apart, rtol=0, atol=1e-10) == additive, physics


@pytest.mark.parametrize("physics", [["nonlocal"], ["nonlocal", "coulomb"]], ids=["nonlocal", "with-charges"])
def test_energy_and_charges_are_rotation_invariant(make_model, batched, physics):
    z, pos, batch = batched
    model = make_model(physics=physics)
    charge = CHARGES if model.learns_charges else None
    turned = pos @ rotation(5).t() + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    parts, turned_parts = model.energy_parts(z, pos, batch, charge), model.energy_parts(z, turned, batch, charge)
    assert set(parts) == ({"network"} if physics == ["nonlocal"] else {"network", "charges", "coulomb"})
    for key, value in parts.items():
        torch.testing.assert_close(turned_parts[key], value, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("physics", [["nonlocal"], ["nonlocal", "coulomb"]], ids=["nonlocal", "with-charges"])
def test_forces_match_finite_differences(make_model, molecules, physics):
    z, pos = molecules[1]  # benzoate, charge -1
    potential = Potential(make_model(physics=physics)).eval()
    batch = torch.zeros(len(z), dtype=torch.long)
    charge = torch.tensor([-1]) if potential.needs_charge else None
    _, forces = potential.energy_and_forces(z, pos, batch, charge)
    step = 1e-5
    for atom in (0, 7, len(z) - 1):
        for axis in range(3):
            shift = torch.zeros_like(pos)
            shift[atom, axis] = step
            with torch.no_grad():
                numeric = -(potential(z, pos + shift, batch, charge) - potential(z, pos - shift, batch, charge)) / (2 * step)
            assert abs(float(numeric[0]) - float(forces[atom, axis])) < 1e-6 * max(1.0, abs(float(numeric[0])))


def test_checkpoint_script_and_ase_carry_the_attention(make_model, batched, molecules, tmp_path):
    z, pos, batch = batched
    potential = Potential(make_model(physics=["nonlocal", "charges"])).eval()
    path = save_checkpoint(tmp_path / "nonlocal.pt", potential)
    loaded = load_potential(path)
    assert loaded.model.physics == ["charges", "nonlocal"]
    assert torch.equal(loaded.model.nonlocal_attention.directions, potential.model.nonlocal_attention.directions)
    eager = potential.energy_and_forces(z, pos, batch, CHARGES)
    assert torch.equal(loaded(z, pos, batch, CHARGES), potential(z, pos, batch, CHARGES))
    files = {"tnq_config.json": ""}
    scripted = torch.jit.load(str(export_torchscript(path, tmp_path / "model.ts")), _extra_files=files)
    assert json.loads(files["tnq_config.json"])["tensornet"]["physics"] == ["charges", "nonlocal"]
    torch.testing.assert_close(scripted.energy_and_forces(z, pos, batch, CHARGES, None, None), eager,
                               rtol=1e-10, atol=1e-10)
    parts = torch.jit.script(potential.model).energy_parts(z, pos, batch, CHARGES)
    torch.testing.assert_close(parts, potential.model.energy_parts(z, pos, batch, CHARGES), rtol=1e-10, atol=1e-10)
    z0, pos0 = molecules[0]
    atoms = Atoms(numbers=z0.numpy(), positions=pos0.numpy(), info={"charge": 0, "multiplicity": 1})
    atoms.calc = TNQCalculator(path)
    one = torch.zeros(len(z0), dtype=torch.long)
    energy, forces = potential.energy_and_forces(z0, pos0, one, torch.tensor([0]))
    np.testing.assert_allclose(atoms.get_potential_energy(), float(energy[0].detach()), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), forces.numpy(), rtol=1e-8, atol=1e-10)
    charges = potential.model.energy_parts(z0, pos0, one, torch.tensor([0]))["charges"].detach().numpy()
    np.testing.assert_allclose(atoms.get_charges(), charges, rtol=1e-10, atol=1e-12)
