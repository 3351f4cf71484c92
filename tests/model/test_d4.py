"""The DFT-D4 dispersion term (physics "d4", tnq_model/nn/d4.py) against the reference dftd4 library.

The core environment has no tad-dftd4 (it needs numpy<2): there only the missing-extra errors are checked and
the rest is skipped. bench/check_d4.py builds the side environment with the `d4` extra and the reference
`dftd4` package and runs this file there. Energies are compared in hartree with ASE's bohr and hartree
(its own CODATA values), so the term's unit constants are checked too.
"""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.units import Bohr, Hartree

from tnq_core.errors import TnqError
from tnq_model import Potential, load, save_checkpoint
from tnq_model.checkpoint import FORMAT, FORMAT_VERSION, load_potential
from tnq_model.export import export_torchscript
from tnq_model.nn.d4 import D4Dispersion, size_groups
from tnq_model.nn.errors import ModelInputError

#: Total charges of the conftest molecules (ethanol, benzoate, isopropylamine), then isopropylamine's cation.
CHARGES = torch.tensor([0, -1, 0, 1])
TOLERANCE = 1e-6  # hartree
NEEDS_EXTRA = "needs the d4 extra (tad-dftd4, numpy<2) and the reference dftd4; bench/check_d4.py runs it"


def has_tad_dftd4() -> bool:
    try:
        import tad_dftd4  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def reference():
    """The reference library's Python interface (dftd4.interface); skips without it or tad-dftd4."""
    pytest.importorskip("tad_dftd4", reason=NEEDS_EXTRA)
    return pytest.importorskip("dftd4.interface", reason=NEEDS_EXTRA)


@pytest.fixture
def four(molecules):
    """z, pos (Å, float64), batch and total charges of the conftest molecules and a cation."""
    systems = [*molecules, molecules[2]]
    z = torch.cat([m[0] for m in systems])
    pos = torch.cat([m[1] for m in systems])
    batch = torch.cat([torch.full((len(m[0]),), b) for b, m in enumerate(systems)])
    return systems, z, pos, batch


def dftd4_reference(reference, z, pos, charge: int, functional: str) -> tuple[float, np.ndarray]:
    """Energy in hartree and EEQ charges (e) of one molecule from the reference library (D4 with ATM)."""
    model = reference.DispersionModel(z.numpy(), pos.numpy() / Bohr, charge=float(charge))
    energy = model.get_dispersion(reference.DampingParam(method=functional, atm=True), grad=False)["energy"]
    return energy, model.get_properties()["partial charges"]


@pytest.mark.skipif(has_tad_dftd4(), reason="tad-dftd4 is installed, so the missing-extra error cannot occur")
def test_missing_extra_is_one_line_naming_it(make_model, tmp_path) -> None:
    with pytest.raises(ModelInputError, match=r"pip install 'tnq\[d4\]' in an environment with numpy<2"):
        D4Dispersion()
    with pytest.raises(ModelInputError, match=r"'d4' needs tad-dftd4"):
        make_model(physics=["d4"])
    # A checkpoint with the term, read where the extra is missing: one line naming the file and the extra.
    potential = Potential(make_model(physics=["charges"]))
    config = potential.config()
    config["tensornet"]["physics"] = ["charges", "d4"]
    payload = dict(format=FORMAT, format_version=FORMAT_VERSION, config=config,
                   state_dict=potential.state_dict(), extra={})
    torch.save(payload, tmp_path / "d4.pt")
    with pytest.raises(TnqError, match=r"cannot load .*d4\.pt: .*pip install 'tnq\[d4\]'") as err:
        load_potential(tmp_path / "d4.pt")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("functional", ["wb97m", "pbe0", "b3lyp"])
def test_energies_match_dftd4_with_its_eeq_charges(reference, four, functional) -> None:
    systems, z, pos, batch = four
    term = D4Dispersion(functional)
    own_eeq = term(z, pos, batch, CHARGES) / Hartree
    expected, eeq = zip(*(dftd4_reference(reference, m[0], m[1], int(q), functional) for m, q in zip(systems, CHARGES)))
    fed = term(z, pos, batch, CHARGES, torch.from_numpy(np.concatenate(eeq))) / Hartree
    np.testing.assert_allclose(own_eeq.numpy(), expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(fed.numpy(), expected, rtol=0, atol=TOLERANCE)
    assert np.all(np.array(expected) < -1e-3)  # a real dispersion energy, not an empty sum
    assert abs(expected[3] - expected[2]) > 1e-5  # the cation's charge reaches D4: not the neutral's energy


def test_other_charges_change_the_energy_and_get_gradients(reference, four) -> None:
    systems, z, pos, batch = four
    term = D4Dispersion()
    eeq = torch.from_numpy(np.concatenate([dftd4_reference(reference, m[0], m[1], int(q), "wb97m")[1]
                                           for m, q in zip(systems, CHARGES)]))
    other = (eeq + 0.2 * torch.sin(torch.arange(len(z), dtype=torch.float64))).requires_grad_()
    energy = term(z, pos, batch, CHARGES, other)
    assert torch.all((energy - term(z, pos, batch, CHARGES, eeq)).abs() / Hartree > 1e-5)
    (grad,) = torch.autograd.grad(energy.sum(), other)
    assert torch.isfinite(grad).all() and bool((grad != 0).all())  # the learned charges are trained through D4


def test_charges_below_minus_zeff_are_at_d4s_limit(reference, molecules) -> None:
    import tad_dftd4

    z, pos = molecules[0]  # ethanol: C C O H...; its last atom is a hydrogen (Z_eff = 1)
    batch = torch.zeros(len(z), dtype=torch.long)
    term = D4Dispersion()

    def with_hydrogen_charge(value: float) -> torch.Tensor:
        charges = torch.zeros(len(z), dtype=torch.float64)
        charges[-1] = value
        return charges

    # tad-dftd4 itself at q_H = -1.5: D4's charge scaling takes its limit exp(g_a) below -Z_eff.
    damping = {name: torch.tensor(value, dtype=torch.float64) for name, value in term.damping.items()}
    limit = tad_dftd4.dftd4(z[None], pos[None] / Bohr, torch.tensor([0.0]), damping,
                            q=with_hydrogen_charge(-1.5)[None]).sum().item()
    for hydrogen in (-0.98, -1.0, -1.0001, -1.5):  # the first is above the floor, the others below
        charges = with_hydrogen_charge(hydrogen).requires_grad_()
        energy = term(z, pos, batch, torch.tensor([0]), charges)
        (grad,) = torch.autograd.grad(energy.sum(), charges)
        assert torch.isfinite(grad).all()  # tad-dftd4 alone gives NaN at -1.0 and -1.0001
        assert energy.item() / Hartree == pytest.approx(limit, abs=1e-9)


def test_forces_match_finite_differences(reference, molecules) -> None:
    z, pos = molecules[1]  # benzoate, -1
    batch = torch.zeros(len(z), dtype=torch.long)
    total = torch.tensor([-1])
    charges = torch.linspace(-0.3, 0.3, len(z), dtype=torch.float64)
    charges = charges - (charges.sum() + 1) / len(z)
    term = D4Dispersion()
    moving = pos.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(term(z, moving, batch, total, charges).sum(), moving)
    step = 1e-5
    for atom in (0, 4, len(z) - 1):
        for axis in range(3):
            shift = torch.zeros_like(pos)
            shift[atom, axis] = step
            with torch.no_grad():
                numeric = (term(z, pos + shift, batch, total, charges) - term(z, pos - shift, batch, total, charges)) / (2 * step)
            assert abs(float(numeric[0]) - float(gradient[atom, axis])) < 1e-8


def test_invariant_to_rotation_translation_and_atom_order(reference, four) -> None:
    _, z, pos, batch = four
    term = D4Dispersion()
    charges = 0.1 * torch.cos(torch.arange(len(z), dtype=torch.float64))
    energy = term(z, pos, batch, CHARGES, charges)
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    moved = pos @ rotation.T + torch.tensor([4.0, -7.0, 2.5], dtype=torch.float64)
    torch.testing.assert_close(term(z, moved, batch, CHARGES, charges), energy, rtol=0, atol=1e-10)
    perm = torch.randperm(len(z), generator=torch.Generator().manual_seed(2))  # molecules interleaved
    torch.testing.assert_close(term(z[perm], pos[perm], batch[perm], CHARGES, charges[perm]), energy, rtol=0, atol=1e-10)


def test_a_batch_equals_one_molecule_at_a_time(reference, four) -> None:
    systems, z, pos, batch = four
    pos = pos - pos[len(systems[0][0])]  # an atom at the origin, where padding sits
    term = D4Dispersion()
    charges = 0.05 * torch.sin(torch.arange(len(z), dtype=torch.float64))
    together = term(z, pos, batch, CHARGES, charges)
    alone = torch.cat([term(z[batch == b], pos[batch == b], torch.zeros(int((batch == b).sum()), dtype=torch.long),
                            CHARGES[b:b + 1], charges[batch == b]) for b in range(len(systems))])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-12)


def test_unknown_functional_and_bad_charges_are_refused(reference, four) -> None:
    _, z, pos, batch = four
    with pytest.raises(ModelInputError, match="no damping parameters for `functional` 'nonsense'"):
        D4Dispersion("nonsense")
    with pytest.raises(ModelInputError, match=r"expected \(\d+,\), one per atom"):
        D4Dispersion()(z, pos, batch, CHARGES, torch.zeros(3, dtype=torch.float64))


def test_tensornet_adds_the_term_on_its_learned_charges(reference, make_model, four) -> None:
    _, z, pos, batch = four
    model = make_model(physics=["d4"])
    assert model.physics == ["charges", "d4"]
    parts = model.energy_parts(z, pos, batch, CHARGES)
    assert set(parts) == {"network", "charges", "d4"}
    expected = D4Dispersion()(z, pos, batch, CHARGES, parts["charges"])
    torch.testing.assert_close(parts["d4"], expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model(z, pos, batch, CHARGES), parts["network"] + expected, rtol=1e-12, atol=1e-12)
    # float32 models compute it in float32, within float32 rounding of the float64 value.
    model32 = make_model(physics=["d4"], dtype=torch.float32)
    parts32 = model32.energy_parts(z, pos.float(), batch, CHARGES)
    torch.testing.assert_close(parts32["d4"].double(), D4Dispersion()(z, pos, batch, CHARGES, parts32["charges"].double()),
                               rtol=1e-5, atol=1e-6)


def test_checkpoint_predictor_and_ase_carry_the_term(reference, make_model, molecules, tmp_path) -> None:
    from tnq_model.ase import TNQCalculator

    z, pos = molecules[1]
    potential = Potential(make_model(physics=["coulomb", "zbl", "d4"])).eval()
    path = save_checkpoint(tmp_path / "d4.pt", potential)
    batch = torch.zeros(len(z), dtype=torch.long)
    eager_energy, eager_forces = potential.energy_and_forces(z, pos, batch, torch.tensor([-1]), torch.tensor([1]))
    energy, forces = load(path).predict(z.numpy(), pos.numpy(), total_charge=-1, multiplicity=1)
    assert energy == pytest.approx(eager_energy[0].item(), abs=1e-10)
    np.testing.assert_allclose(forces, eager_forces.numpy(), atol=1e-10)
    with torch.no_grad():
        d4_part = potential.model.energy_parts(z, pos, batch, torch.tensor([-1]))["d4"]
    assert float(d4_part[0]) < -1e-3  # the term is really in there
    atoms = Atoms(numbers=z.numpy(), positions=pos.numpy(), info={"charge": -1, "multiplicity": 1})
    atoms.calc = TNQCalculator(path)
    assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), forces, atol=1e-10)
    with pytest.raises(TnqError, match="physics term 'd4' .* cannot be scripted") as err:
        export_torchscript(path, tmp_path / "model.ts")
    assert "\n" not in str(err.value) and not (tmp_path / "model.ts").exists()


def test_size_groups_cover_each_molecule_once_within_the_growth_factor() -> None:
    counts = torch.tensor([33, 24, 20, 39, 21, 31, 33, 28, 5, 6, 100, 0, 20])
    groups = size_groups(counts, growth=1.2)
    assert sorted(torch.cat(groups).tolist()) == list(range(len(counts)))
    for rows in groups:
        sizes = counts[rows]
        assert sizes.max() <= 1.2 * sizes.min() or len(rows) == 1
        assert int(sizes[-1]) == int(sizes.max())  # the last row is the largest: D4Dispersion cuts the group there
    # Sorted sizes are split at each molecule beyond 1.2x its group's smallest: {0} {5, 6} {20, 20, 21, 24} ...
    assert [counts[rows].tolist() for rows in groups] == [[0], [5, 6], [20, 20, 21, 24], [28, 31, 33, 33], [39], [100]]
    assert len(size_groups(torch.full((64,), 30))) == 1


def test_the_functional_is_a_model_key_that_checkpoints_carry(reference, make_model, four, tmp_path) -> None:
    _, z, pos, batch = four
    model = make_model(physics=["d4"], d4_functional="pbe0")
    parts = model.energy_parts(z, pos, batch, CHARGES)
    pbe0 = D4Dispersion("pbe0")(z, pos, batch, CHARGES, parts["charges"])
    torch.testing.assert_close(parts["d4"], pbe0, rtol=1e-12, atol=1e-12)
    assert (pbe0 - D4Dispersion()(z, pos, batch, CHARGES, parts["charges"])).abs().min() > 1e-5  # not ωB97M's
    path = save_checkpoint(tmp_path / "pbe0.pt", Potential(model))
    loaded = load_potential(path).model
    torch.testing.assert_close(loaded.energy_parts(z, pos, batch, CHARGES)["d4"], pbe0, rtol=1e-12, atol=1e-12)
