"""The generated sample data: SPICE layout, real GFN2-xTB chemistry, QMspin archive layout, determinism."""

import gzip
import os
import re
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from rdkit import Chem

from tnq_core.errors import TnqError
from tnq_data.sample import (
    QMSPIN_CARBENES,
    SPICE_MOLECULES,
    atomic_reference_energy,
    gfn2_singlepoint,
    make_demo_inputs,
    make_qmspin_sample,
    make_spice_sample,
)
from tnq_data.units import BOHR_TO_ANGSTROM
from tnq_data.xtb import Gfn2Error, gfn2_result

#: A cheap selection covering neutral, cation, anion, radicals, three subsets, with and without MBIS.
SMALL = ("145068", "175", "223", "887", "C[NH3+]", "[CH3]", "gly-gly")
N_CONF = 2
MEMBER = re.compile(r"QMspin_Part1/geometries_(singlet|triplet)/dsgdb9nsd_(\d{6})-(\d+)-([st])\.xyz")


def _parse_smiles(smiles: str) -> Chem.Mol:
    params = Chem.SmilesParserParams()
    params.removeHs = False
    mol = Chem.MolFromSmiles(smiles, params)
    assert mol is not None, smiles
    return mol


def _charge_and_uhf(smiles: str) -> tuple[int, int]:
    mol = _parse_smiles(smiles)
    return Chem.GetFormalCharge(mol), sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())


def _bond_graph(symbols: list[str], xyz: np.ndarray) -> frozenset[tuple[int, int]]:
    """Atom pairs closer than 1.2 times the sum of covalent radii (Å)."""
    table = Chem.GetPeriodicTable()
    radii = np.array([table.GetRcovalent(s) for s in symbols])
    distances = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    close = distances < 1.2 * (radii[:, None] + radii[None])
    return frozenset((i, j) for i, j in zip(*np.nonzero(np.triu(close, 1)), strict=True))


@pytest.fixture(scope="module")
def spice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = [m for m in SPICE_MOLECULES if m.name in SMALL]
    return make_spice_sample(tmp_path_factory.mktemp("spice") / "sample.hdf5", n_conformers=N_CONF,
                             molecules=chosen)


@pytest.fixture(scope="module")
def qmspin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_qmspin_sample(tmp_path_factory.mktemp("qmspin") / "QMspin_Part1.tar.gz", n_carbenes=5)


def test_molecule_list_covers_charges_spins_subsets_and_agrees_with_smiles() -> None:
    assert len(SPICE_MOLECULES) >= 12
    assert len({m.name for m in SPICE_MOLECULES}) == len(SPICE_MOLECULES)
    assert {m.charge for m in SPICE_MOLECULES} >= {-1, 0, 1}
    assert any(m.multiplicity == 2 for m in SPICE_MOLECULES)
    assert len({m.subset for m in SPICE_MOLECULES}) >= 2
    assert any(m.mbis for m in SPICE_MOLECULES) and not all(m.mbis for m in SPICE_MOLECULES)
    for m in SPICE_MOLECULES:
        mol = Chem.AddHs(Chem.MolFromSmiles(m.smiles))
        assert {a.GetSymbol() for a in mol.GetAtoms()} <= {"H", "C", "N", "O", "F", "S"}, m.name
        assert Chem.GetFormalCharge(mol) == m.charge, m.name
        assert sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms()) + 1 == m.multiplicity, m.name


def test_spice_layout_and_mapped_smiles(spice: Path) -> None:
    with h5py.File(spice, "r") as f:
        assert sorted(f) == sorted(SMALL)
        for name, g in f.items():
            n = g["atomic_numbers"].shape[0]
            assert g["atomic_numbers"].dtype == np.int16
            assert g["conformations"].dtype == np.float32 and g["conformations"].shape == (N_CONF, n, 3)
            assert g["dft_total_gradient"].dtype == np.float32 and g["dft_total_gradient"].shape == (N_CONF, n, 3)
            for key in ("dft_total_energy", "formation_energy"):
                assert g[key].dtype == np.float64 and g[key].shape == (N_CONF,)
            for key in ("smiles", "subset"):
                assert g[key].shape == (1,) and h5py.check_string_dtype(g[key].dtype).encoding == "utf-8"
            assert g["conformations"].attrs["units"] == "bohr"
            assert g["dft_total_gradient"].attrs["units"] == "hartree/bohr"
            assert g["scf_dipole"].dtype == np.float32 and g["scf_dipole"].shape == (N_CONF, 3)
            assert g["scf_dipole"].attrs["units"] == "elementary_charge*bohr"
            # Atom order of the arrays is the map order of the SMILES, which has explicit hydrogens.
            mol = _parse_smiles(g["smiles"].asstr()[0])
            by_map = sorted(mol.GetAtoms(), key=lambda a: a.GetAtomMapNum())
            assert [a.GetAtomMapNum() for a in by_map] == list(range(1, n + 1)), name
            assert [a.GetAtomicNum() for a in by_map] == g["atomic_numbers"][()].tolist(), name
        subsets = {g["subset"].asstr()[0] for g in f.values()}
        assert "SPICE PubChem Set 1 Single Points Dataset v1.2" in subsets and len(subsets) == 3
        with_mbis = {name for name, g in f.items() if "mbis_charges" in g}
        assert with_mbis and with_mbis != set(f)


def test_spice_layout_matches_the_real_file(spice: Path, spice_sample: Path) -> None:
    with h5py.File(spice_sample, "r") as real, h5py.File(spice, "r") as ours:
        reference = {}
        for g in real.values():
            for key, ds in g.items():
                reference[key] = (ds.dtype, ds.ndim, dict(ds.attrs))
        for name, g in ours.items():
            for key, ds in g.items():
                assert key in reference, f"{name}/{key} is not a SPICE dataset"
                dtype, ndim, attrs = reference[key]
                if h5py.check_string_dtype(dtype):
                    assert h5py.check_string_dtype(ds.dtype) == h5py.check_string_dtype(dtype), key
                else:
                    assert ds.dtype == dtype, key
                assert ds.ndim == ndim, key
                assert dict(ds.attrs) == attrs, key


def test_tblite_was_run_with_the_smiles_charge_and_spin(spice: Path) -> None:
    with h5py.File(spice, "r") as f:
        for name, g in f.items():
            charge, uhf = _charge_and_uhf(g["smiles"].asstr()[0])
            xyz = g["conformations"][0].astype(np.float64)
            energy, grad, _ = gfn2_singlepoint(g["atomic_numbers"][()], xyz, charge, uhf, name)
            assert energy == pytest.approx(g["dft_total_energy"][0], abs=1e-8), name
            np.testing.assert_allclose(grad, g["dft_total_gradient"][0], atol=1e-6)
            dipole = gfn2_result(g["atomic_numbers"][()], xyz, charge, uhf, name).get("dipole")
            np.testing.assert_allclose(g["scf_dipole"][0], dipole, atol=1e-6)
            if "mbis_charges" in g:
                np.testing.assert_allclose(g["mbis_charges"][()].sum(axis=(1, 2)), charge, atol=1e-4)


def test_gradient_matches_finite_differences_of_the_energy(spice: Path) -> None:
    with h5py.File(spice, "r") as f:
        g = f["887"]  # methanol
        numbers, xyz = g["atomic_numbers"][()], g["conformations"][0].astype(np.float64)
        stored = g["dft_total_gradient"][0]
    h = 1e-3  # bohr
    numeric = np.empty_like(xyz)
    for i in range(xyz.shape[0]):
        for j in range(3):
            plus, minus = xyz.copy(), xyz.copy()
            plus[i, j] += h
            minus[i, j] -= h
            numeric[i, j] = (gfn2_singlepoint(numbers, plus, 0, 0, "fd+")[0]
                             - gfn2_singlepoint(numbers, minus, 0, 0, "fd-")[0]) / (2 * h)
    np.testing.assert_allclose(stored, numeric, atol=2e-5)
    assert np.abs(stored).max() < 0.3  # physical: under ~15 eV/Å


@pytest.mark.parametrize("numbers, positions, uhf", [
    ([1, 1], np.zeros((2, 3)), 0),  # rejected when the calculator is built: atoms too close
    ([6], np.zeros((1, 3)), 1),  # rejected by the single point: 6 electrons, 1 unpaired
])
def test_gfn2_failures_name_the_structure_and_keep_the_tblite_reason(numbers, positions, uhf) -> None:
    with pytest.raises(Gfn2Error, match="failed on broken one") as caught:
        gfn2_singlepoint(np.array(numbers), positions, 0, uhf, "broken one")
    assert isinstance(caught.value, TnqError) and caught.value.reason and caught.value.reason in str(caught.value)


def test_formation_energy_subtracts_charge_aware_atomic_references(spice: Path) -> None:
    with h5py.File(spice, "r") as f:
        for name, g in f.items():
            mol = _parse_smiles(g["smiles"].asstr()[0])
            atoms = sum(atomic_reference_energy(a.GetAtomicNum(), a.GetFormalCharge()) for a in mol.GetAtoms())
            np.testing.assert_allclose(g["formation_energy"][()], g["dft_total_energy"][()] - atoms, atol=1e-9)
            assert np.all(g["formation_energy"][()] < 0), name


def test_spice_sample_is_byte_identical_when_regenerated(tmp_path: Path) -> None:
    chosen = [m for m in SPICE_MOLECULES if m.name in ("175", "[CH3]")]
    a = make_spice_sample(tmp_path / "a.hdf5", n_conformers=2, seed=3, molecules=chosen)
    b = make_spice_sample(tmp_path / "b.hdf5", n_conformers=2, seed=3, molecules=chosen)
    assert a.read_bytes() == b.read_bytes()
    c = make_spice_sample(tmp_path / "c.hdf5", n_conformers=2, seed=4, molecules=chosen)
    with h5py.File(a, "r") as fa, h5py.File(c, "r") as fc:
        assert not np.array_equal(fa["175/conformations"][()], fc["175/conformations"][()])


def test_qmspin_archive_layout_names_and_safety(qmspin: Path) -> None:
    assert qmspin.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime
    with tarfile.open(qmspin, "r:gz") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names, key=lambda n: (not tar.getmember(n).isdir(), n))
        pairs: dict[tuple[int, int], set[str]] = {}
        graphs: dict[str, list[frozenset[tuple[int, int]]]] = {}
        for m in members:
            assert not m.name.startswith("/") and ".." not in m.name.split("/")
            assert m.isdir() or m.isfile(), m.name
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
            if m.isdir():
                continue
            match = MEMBER.fullmatch(m.name)
            assert match, m.name
            folder, qm9, carbene, state = match.groups()
            assert folder[0] == state
            pairs.setdefault((int(qm9), int(carbene)), set()).add(state)
            lines = tar.extractfile(m).read().decode("ascii").splitlines()
            n = int(lines[0])
            assert len(lines) == n + 2
            fields = lines[1].split(";")
            assert fields[0] == Path(m.name).stem and "GFN2-xTB" in lines[1]
            energy = float(fields[3].split()[3])
            symbols = [line.split(",")[0] for line in lines[2:]]
            xyz = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[2:]])
            numbers = [Chem.Atom(s).GetAtomicNum() for s in symbols]
            recomputed = gfn2_singlepoint(np.array(numbers), xyz / BOHR_TO_ANGSTROM, 0, 2 if state == "t" else 0,
                                          m.name)[0]
            assert recomputed == pytest.approx(energy, abs=1e-5)
            graphs.setdefault(Path(m.name).stem[:-2], []).append(_bond_graph(symbols, xyz))
    # The singlet optimisation starts from the triplet and must keep the carbene (no hydrogen shift).
    assert all(len(set(g)) == 1 for g in graphs.values())
    expected = {(c.qm9_index, c.carbene_index): set(c.states) for c in QMSPIN_CARBENES[:5]}
    assert pairs == expected
    assert any(states == {"t"} for states in pairs.values())  # a triplet without singlet partner


_GENERATE = """
import sys
from pathlib import Path
from tnq_data.sample import SPICE_MOLECULES, make_qmspin_sample, make_spice_sample
out = Path(sys.argv[1])
make_qmspin_sample(out / "qmspin.tar.gz", n_carbenes=3)
make_spice_sample(out / "spice.hdf5", n_conformers=2, molecules=[m for m in SPICE_MOLECULES if m.name in ("175", "[CH3]")])
"""


def test_samples_are_byte_identical_for_any_thread_count_and_give_the_same_ids(tmp_path: Path) -> None:
    """Two processes with 1 and 2 OpenMP/BLAS threads write the same bytes, so the demo's version ids agree."""
    import subprocess
    import sys

    from tnq_data.sources.qmspin import curate_qmspin
    from tnq_data.sources.spice import curate_spice

    ids = []
    for threads in ("1", "2"):
        out = tmp_path / f"threads-{threads}"
        out.mkdir()
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        subprocess.run([sys.executable, "-c", _GENERATE, str(out)], check=True, env=env, timeout=600)
        ids.append((curate_qmspin(out / "qmspin.tar.gz", out / "qmspin-store"),
                    curate_spice(out / "spice.hdf5", out / "spice-store")))
    one, two = tmp_path / "threads-1", tmp_path / "threads-2"
    for name in ("qmspin.tar.gz", "spice.hdf5"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert ids[0] == ids[1]
    assert gzip.decompress((one / "qmspin.tar.gz").read_bytes())  # a valid gzip stream


def test_lbfgs_finds_the_minimum_scipy_finds() -> None:
    """The sample's own optimiser against scipy's L-BFGS-B on the Rosenbrock function and a GFN2 molecule."""
    from scipy.optimize import minimize, rosen, rosen_der

    from tnq_data.xtb import lbfgs

    start = np.array([1.3, 0.7, 0.8, 1.9, 1.2])  # scipy's own example; the minimum is all ones
    x, value = lbfgs(lambda v: (rosen(v), rosen_der(v)), start, max_steps=2000, gtol=1e-9, max_move=1.0)
    reference = minimize(rosen, start, jac=rosen_der, method="L-BFGS-B", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(x, np.ones(5), atol=1e-7)
    np.testing.assert_allclose(x, reference, atol=1e-5)
    assert value < 1e-12
    numbers = np.array([8, 1, 1])
    start = np.array([[0.0, 0.0, 0.0], [1.0, 0.1, 0.0], [-0.2, 1.05, 0.0]]) / BOHR_TO_ANGSTROM

    def water(v: np.ndarray) -> tuple[float, np.ndarray]:
        energy, grad, _ = gfn2_singlepoint(numbers, v.reshape(-1, 3), 0, 0, "water")
        return energy, grad.ravel()

    x, value = lbfgs(water, start.ravel())
    reference = minimize(water, start.ravel(), jac=True, method="L-BFGS-B", options={"gtol": 1e-6})
    assert abs(value - reference.fun) < 1e-7  # hartree
    assert np.max(np.abs(water(x)[1])) < 1e-4


@pytest.mark.slow
def test_demo_inputs_hold_every_listed_molecule_and_carbene(tmp_path: Path) -> None:
    paths = make_demo_inputs(tmp_path)
    assert set(paths) == {"spice", "qmspin"}
    with h5py.File(paths["spice"], "r") as f:
        assert sorted(f) == sorted(m.name for m in SPICE_MOLECULES)
    with tarfile.open(paths["qmspin"], "r:gz") as tar:
        assert sum(m.isfile() for m in tar.getmembers()) == sum(len(c.states) for c in QMSPIN_CARBENES[:6])
