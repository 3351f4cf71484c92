"""ZBL repulsion, damped Coulomb and the charge-conserving charge head (tnq_model/nn), against formulas
written out here from the publications and SI constants, finite differences and symmetry."""

import math

import pytest
import torch

from tnq_model.nn.charges import ChargeHead, conserve_charge
from tnq_model.nn.coulomb import DampedCoulomb
from tnq_model.nn.errors import ModelInputError
from tnq_model.nn.neighbors import neighbor_pairs
from tnq_model.nn.zbl import ZBLRepulsion

# Independent constants (SI, CODATA 2018): k_e = e / (4 pi eps0) in eV Å, a0 = 4 pi eps0 hbar^2 / (m_e e^2) in Å.
ELEMENTARY_CHARGE = 1.602176634e-19
VACUUM_PERMITTIVITY = 8.8541878128e-12
HBAR = 1.054571817e-34
ELECTRON_MASS = 9.1093837015e-31
KE = ELEMENTARY_CHARGE / (4 * math.pi * VACUUM_PERMITTIVITY) * 1e10
A0 = 4 * math.pi * VACUUM_PERMITTIVITY * HBAR**2 / (ELECTRON_MASS * ELEMENTARY_CHARGE**2) * 1e10


def zbl_reference(zi: int, zj: int, r: float) -> float:
    """Ziegler-Biersack-Littmark universal repulsion in eV at r Å (The Stopping and Range of Ions in Solids)."""
    x = r * (zi**0.23 + zj**0.23) / (0.8854 * A0)
    phi = 0.1818 * math.exp(-3.2 * x) + 0.5099 * math.exp(-0.9423 * x) + 0.2802 * math.exp(-0.4029 * x)
    phi += 0.02817 * math.exp(-0.2016 * x)
    return KE * zi * zj / r * phi


def switch_reference(r: float, on: float, off: float) -> float:
    """The C-infinity switch exp(-1/(1-x)) / (exp(-1/x) + exp(-1/(1-x))), x = (r - on) / (off - on)."""
    x = (r - on) / (off - on)
    if x <= 0:
        return 1.0
    if x >= 1:
        return 0.0
    return math.exp(-1 / (1 - x)) / (math.exp(-1 / x) + math.exp(-1 / (1 - x)))


def dimer(r: float, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor([[0.0, 0.0, 0.0], [r, 0.0, 0.0]], dtype=dtype)


def random_rotation(seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.linalg.det(q))


def forces_and_differences(energy, pos: torch.Tensor, step: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Autograd forces -dE/dpos and central finite differences of the summed energy, both (N, 3)."""
    pos = pos.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(energy(pos).sum(), pos)
    numeric = torch.zeros_like(pos)
    with torch.no_grad():
        for index in range(pos.numel()):
            shift = torch.zeros_like(pos).view(-1)
            shift[index] = step
            shift = shift.view_as(pos)
            numeric.view(-1)[index] = (energy(pos + shift).sum() - energy(pos - shift).sum()) / (2 * step)
    return -gradient, -numeric


# ----- ZBL -----


@pytest.mark.parametrize("zi, zj", [(1, 1), (6, 8), (7, 14), (1, 17)])
@pytest.mark.parametrize("r", [0.1, 0.4, 1.0, 2.0])
def test_zbl_matches_the_published_formula_below_the_switch(zi: int, zj: int, r: float) -> None:
    energy = ZBLRepulsion(cutoff=5.0, switch_on=2.5)(torch.tensor([zi, zj]), dimer(r), torch.tensor([0, 0]))
    assert energy.shape == (1,)
    assert energy.item() == pytest.approx(zbl_reference(zi, zj, r), rel=1e-6)


@pytest.mark.parametrize("r", [2.6, 3.3, 4.0, 4.9])
def test_zbl_is_the_formula_times_the_switch_between_switch_on_and_cutoff(r: float) -> None:
    energy = ZBLRepulsion(cutoff=5.0, switch_on=2.5)(torch.tensor([6, 6]), dimer(r), torch.tensor([0, 0]))
    expected = zbl_reference(6, 6, r) * switch_reference(r, 2.5, 5.0)
    assert 0 < expected < zbl_reference(6, 6, r)
    assert energy.item() == pytest.approx(expected, rel=1e-6)


def test_zbl_is_zero_with_zero_force_at_and_beyond_the_cutoff_and_continuous_up_to_it() -> None:
    zbl = ZBLRepulsion(cutoff=4.0, switch_on=1.0)
    z, batch = torch.tensor([8, 8]), torch.tensor([0, 0])
    for r in (4.0, 4.5, 9.0):
        pos = dimer(r).requires_grad_(True)
        energy = zbl(z, pos, batch, torch.tensor([[0, 1], [1, 0]]))  # listed although beyond the cutoff
        (gradient,) = torch.autograd.grad(energy.sum(), pos)
        assert energy.item() == 0.0 and torch.count_nonzero(gradient) == 0
    values, forces = [], []
    for gap in (1e-1, 1e-2, 1e-3):
        pos = dimer(4.0 - gap).requires_grad_(True)
        energy = zbl(z, pos, batch)
        (gradient,) = torch.autograd.grad(energy.sum(), pos)
        values.append(energy.item())
        forces.append(gradient.abs().max().item())
    assert values[0] > values[1] > values[2] >= 0 and values[2] < 1e-12
    assert forces[0] > forces[1] > forces[2] >= 0 and forces[2] < 1e-12


def test_zbl_forces_match_finite_differences(batched) -> None:
    z, pos, batch = batched
    zbl = ZBLRepulsion(cutoff=3.0, switch_on=1.0)
    compressed = 0.7 * pos  # pairs below, inside and beyond the switch
    dist = neighbor_pairs(compressed, batch, 10.0)[1]
    assert dist.min() < 1.0 and ((dist > 1.0) & (dist < 3.0)).any() and (dist > 3.0).any()
    autograd, numeric = forces_and_differences(lambda p: zbl(z, p, batch), compressed)
    torch.testing.assert_close(autograd, numeric, rtol=1e-6, atol=1e-7)


def test_zbl_is_invariant_and_takes_an_edge_list(batched) -> None:
    z, pos, batch = batched
    zbl = ZBLRepulsion(cutoff=3.0, switch_on=1.0)
    energy = zbl(z, 0.7 * pos, batch)
    moved = 0.7 * pos @ random_rotation(1).T + torch.tensor([3.0, -1.0, 7.5], dtype=torch.float64)
    torch.testing.assert_close(zbl(z, moved, batch), energy, rtol=1e-12, atol=1e-12)
    perm = torch.randperm(len(z), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(zbl(z[perm], 0.7 * pos[perm], batch[perm]), energy, rtol=1e-12, atol=1e-12)
    edge_index, dist, _ = neighbor_pairs(0.7 * pos, batch, 6.0)
    torch.testing.assert_close(zbl(z, 0.7 * pos, batch, edge_index, dist), energy, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(zbl(z, 0.7 * pos, batch, edge_index), energy, rtol=1e-12, atol=1e-12)
    alone = [zbl(z[batch == b], 0.7 * pos[batch == b], torch.zeros_like(batch[batch == b])) for b in range(3)]
    torch.testing.assert_close(torch.cat(alone), energy, rtol=1e-12, atol=1e-12)


def test_trainable_zbl_starts_at_the_universal_form_and_learns_positive_constants() -> None:
    pos, z, batch = dimer(0.8), torch.tensor([6, 8]), torch.tensor([0, 0])
    fixed, trainable = ZBLRepulsion(5.0, 2.5), ZBLRepulsion(5.0, 2.5, trainable=True)
    assert not list(fixed.parameters()) and len(list(trainable.parameters())) == 4
    assert trainable(z, pos, batch).item() == pytest.approx(zbl_reference(6, 8, 0.8), rel=1e-6)  # k_e to 7 digits
    trainable(z, pos, batch).sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in trainable.parameters())
    with torch.no_grad():  # wherever training takes the raw values, the constants stay positive, weights sum kept
        for p in trainable.parameters():
            p.copy_(torch.randn_like(p) * 5)
    coefficients, exponents, factor, power = trainable.constants()
    assert bool((coefficients > 0).all() and (exponents > 0).all() and factor > 0 and power > 0)
    assert coefficients.sum().item() == pytest.approx(0.1818 + 0.5099 + 0.2802 + 0.02817, rel=1e-12)


def test_zbl_state_without_its_constants_loads_the_universal_ones() -> None:
    """A model saved before the constants were (trainable) state: its ZBL part has no keys at all."""
    pos, z, batch = dimer(0.8), torch.tensor([6, 8]), torch.tensor([0, 0])
    zbl = ZBLRepulsion(5.0, 2.5, trainable=True)
    with torch.no_grad():
        zbl.raw_exponents.mul_(2.0)
    zbl.load_state_dict({})
    assert zbl(z, pos, batch).item() == pytest.approx(zbl_reference(6, 8, 0.8), rel=1e-6)


def test_zbl_float32_follows_float64(batched) -> None:
    z, pos, batch = batched
    zbl = ZBLRepulsion(cutoff=3.0, switch_on=1.0)
    single = zbl(z, (0.7 * pos).float(), batch)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), zbl(z, 0.7 * pos, batch), rtol=1e-5, atol=1e-6)


def test_zbl_refuses_bad_settings_and_inputs() -> None:
    with pytest.raises(ModelInputError, match="`switch_on`"):
        ZBLRepulsion(cutoff=3.0, switch_on=3.0)
    with pytest.raises(ModelInputError, match="`distances`"):
        ZBLRepulsion()(torch.tensor([1, 1]), dimer(1.0), torch.tensor([0, 0]), None, torch.tensor([1.0]))


# ----- Coulomb -----


@pytest.mark.parametrize("r", [4.0, 7.5, 12.0, 40.0])
@pytest.mark.parametrize("q", [(1.0, -1.0), (0.3, 0.45), (-2.0, 0.7)])
def test_coulomb_is_point_charges_at_long_range(r: float, q: tuple) -> None:
    energy = DampedCoulomb(switch_on=1.25, switch_off=3.75)(torch.tensor(q, dtype=torch.float64), dimer(r), torch.tensor([0, 0]))
    assert energy.item() == pytest.approx(KE * q[0] * q[1] / r, rel=1e-6)


@pytest.mark.parametrize("r", [0.3, 1.0, 2.5])
def test_coulomb_is_damped_at_short_range(r: float) -> None:
    energy = DampedCoulomb(1.25, 3.75)(torch.tensor([0.5, -0.8], dtype=torch.float64), dimer(r), torch.tensor([0, 0]))
    s = switch_reference(r, 1.25, 3.75)
    expected = KE * 0.5 * -0.8 * (s / math.sqrt(r * r + 1) + (1 - s) / r)
    assert energy.item() == pytest.approx(expected, rel=1e-6)
    assert abs(energy.item()) < KE * 0.4 / r  # weaker than bare 1/r


def test_coulomb_sums_every_pair_of_a_molecule_and_no_pair_across_molecules() -> None:
    generator = torch.Generator().manual_seed(3)
    pos = 30.0 * torch.rand(9, 3, generator=generator, dtype=torch.float64)  # far apart, and overlapping molecules
    charges = torch.rand(9, generator=generator, dtype=torch.float64) - 0.5
    batch = torch.tensor([2, 0, 1, 0, 2, 0, 2, 1, 0])  # unsorted; molecule sizes 4, 2, 3
    energy = DampedCoulomb(0.0, 1e-3)(charges, pos, batch)  # switch_off tiny: bare 1/r for all pairs here
    expected = [0.0, 0.0, 0.0]
    for i in range(9):
        for j in range(i + 1, 9):
            if batch[i] == batch[j]:
                r = math.dist(pos[i].tolist(), pos[j].tolist())
                expected[batch[i]] += KE * charges[i].item() * charges[j].item() / r
    assert energy.tolist() == pytest.approx(expected, rel=1e-6)


def test_coulomb_forces_match_finite_differences_and_energy_is_invariant(batched) -> None:
    z, pos, batch = batched
    charges = torch.linspace(-0.6, 0.5, len(z), dtype=torch.float64)
    coulomb = DampedCoulomb()
    autograd, numeric = forces_and_differences(lambda p: coulomb(charges, p, batch), pos)
    torch.testing.assert_close(autograd, numeric, rtol=1e-6, atol=1e-7)
    energy = coulomb(charges, pos, batch)
    moved = pos @ random_rotation(4).T + torch.tensor([-2.0, 5.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(coulomb(charges, moved, batch), energy, rtol=1e-12, atol=1e-12)
    perm = torch.randperm(len(z), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(coulomb(charges[perm], pos[perm], batch[perm]), energy, rtol=1e-12, atol=1e-12)


def test_coulomb_float32_follows_float64(batched) -> None:
    z, pos, batch = batched
    charges = torch.linspace(-0.6, 0.5, len(z), dtype=torch.float64)
    single = DampedCoulomb()(charges.float(), pos.float(), batch)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), DampedCoulomb()(charges, pos, batch), rtol=1e-5, atol=1e-5)


def test_coulomb_refuses_bad_settings_and_inputs() -> None:
    with pytest.raises(ModelInputError, match="`switch_off`"):
        DampedCoulomb(switch_on=2.0, switch_off=1.0)
    with pytest.raises(ModelInputError, match="`charges`"):
        DampedCoulomb()(torch.zeros(3), dimer(1.0), torch.tensor([0, 0]))


# ----- charges -----


def test_charge_head_conserves_each_total_charge_in_float32() -> None:
    torch.manual_seed(0)
    sizes = [1, 2, 7, 30, 120, 400, 1]
    batch = torch.cat([torch.full((n,), b) for b, n in enumerate(sizes)])
    batch = batch[torch.randperm(len(batch))]  # atoms of a molecule need not be contiguous
    for trial in range(5):
        head = ChargeHead(32)
        features = 3.0 * torch.randn(len(batch), 32)
        total = torch.randint(-2, 3, (len(sizes),))
        charges = head(features, batch, total)
        assert charges.dtype == torch.float32
        sums = torch.zeros(len(sizes), dtype=torch.float64).index_add(0, batch, charges.double())
        assert (sums - total).abs().max() <= 1e-6
        lone = (torch.bincount(batch) == 1).nonzero().squeeze(1)
        for b in lone.tolist():
            assert charges[batch == b].item() == total[b].item()


def test_correction_is_uniform_and_zero_when_the_raw_charges_already_sum_to_the_total() -> None:
    batch = torch.tensor([0, 1, 0, 0, 2])
    for dtype in (torch.float32, torch.float64):
        raw = torch.tensor([0.5, -2.0, -0.25, 0.75, 0.125], dtype=dtype)  # sums 1, -2, 0.125 exactly
        assert torch.equal(conserve_charge(raw, batch, torch.tensor([1.0, -2.0, 0.125])), raw)
    raw = torch.tensor([0.1, 0.2, 0.3, -0.4, 0.9], dtype=torch.float64)
    total = torch.tensor([1, 0, -1])
    shift = conserve_charge(raw, batch, total) - raw
    expected = torch.tensor([(1 - 0.1 - 0.3 + 0.4) / 3, -0.2, (1 - 0.3 + 0.4) / 3, (1 - 0.1 - 0.3 + 0.4) / 3, -1.9],
                            dtype=torch.float64)
    expected[2] = expected[0]
    torch.testing.assert_close(shift, expected, rtol=0, atol=1e-15)


def test_molecule_charge_has_no_gradient_but_atom_charges_do() -> None:
    torch.manual_seed(1)
    head = ChargeHead(16).double()
    features = torch.randn(6, 16, dtype=torch.float64, requires_grad=True)
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    charges = head(features, batch, torch.tensor([1, -1]))
    (total_gradient,) = torch.autograd.grad(charges[:3].sum(), features, retain_graph=True)
    (atom_gradient,) = torch.autograd.grad(charges[0], features)
    assert total_gradient.abs().max() < 1e-14
    assert atom_gradient[:3].abs().max() > 1e-3 and atom_gradient[3:].abs().max() == 0


def test_charge_head_refuses_bad_inputs() -> None:
    with pytest.raises(ModelInputError, match="`total_charge`"):
        ChargeHead(8)(torch.randn(4, 8), torch.tensor([0, 0, 1, 1]), torch.tensor([0]))
    with pytest.raises(ModelInputError, match="`raw`"):
        conserve_charge(torch.zeros(3), torch.tensor([0, 0]), torch.tensor([0]))
    with pytest.raises(ModelInputError, match="`channels`"):
        ChargeHead(1)


def test_physical_terms_script_like_eager(batched) -> None:
    z, pos, batch = batched
    charges = torch.linspace(-0.6, 0.5, len(z), dtype=torch.float64)
    zbl, coulomb = ZBLRepulsion(3.0, 1.0), DampedCoulomb()
    torch.testing.assert_close(torch.jit.script(zbl)(z, 0.7 * pos, batch), zbl(z, 0.7 * pos, batch))
    torch.testing.assert_close(torch.jit.script(coulomb)(charges, pos, batch), coulomb(charges, pos, batch))
    head = ChargeHead(8)
    features, total = torch.randn(len(z), 8), torch.tensor([0, -1, 0])
    torch.testing.assert_close(torch.jit.script(head)(features, batch, total), head(features, batch, total))
