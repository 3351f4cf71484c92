"""Offline sample data made on the fly: a SPICE-layout HDF5 and a QMspin-layout archive.

Geometries come from RDKit (ETKDG, MMFF), energies, gradients and charges from GFN2-xTB (tblite).
The files copy the layout of the real datasets, not their level of theory; see docs/sample-data.md.
Everything is deterministic: fixed seeds, sorted inputs, no timestamps in either file.
"""

import ctypes
import gzip
import io
import os
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem
from scipy.optimize import minimize
from tblite.interface import Calculator

from tnq_core.errors import TnqError
from tnq_data.sample_molecules import QMSPIN_CARBENES, SPICE_MOLECULES, SampleCarbene, SampleMolecule
from tnq_data.units import BOHR_TO_ANGSTROM

__all__ = [
    "QMSPIN_CARBENES",
    "SPICE_MOLECULES",
    "atomic_reference_energy",
    "gfn2_singlepoint",
    "make_demo_inputs",
    "make_qmspin_sample",
    "make_spice_sample",
    "mapped_molecule",
]

#: File names written by `make_demo_inputs`.
SPICE_SAMPLE_NAME = "SPICE-sample.hdf5"
QMSPIN_SAMPLE_NAME = "QMspin_Part1.tar.gz"
#: Top-level folder of the QMspin archive and its two structure folders.
QMSPIN_ROOT = "QMspin_Part1"
QMSPIN_FOLDERS = {"s": "geometries_singlet", "t": "geometries_triplet"}

#: Gaussian displacement (Å) of relaxed conformers: first half "hot", second half near-minimum.
_HOT_SIGMA, _COLD_SIGMA = 0.03, 0.01
#: L-BFGS steps of the GFN2-xTB relaxation of each force-field conformer (keeps it near its torsion well).
_RELAX_STEPS = 20
#: Unpaired electrons of the ground state of an isolated atom or ion with n electrons (n = 1..18, Hund's rule).
_UNPAIRED_BY_ELECTRONS = (0, 1, 0, 1, 0, 1, 2, 3, 2, 1, 0, 1, 0, 1, 2, 3, 2, 1, 0)


@contextmanager
def _single_threaded_openmp() -> Iterator[None]:
    """Run tblite on one OpenMP thread: its threaded gradient sums are not bitwise reproducible.

    Restores the previous thread count afterwards. Without GNU OpenMP (tblite wheels for Linux link
    libgomp) nothing is changed and gradients may differ in their last bits between runs.
    """
    try:
        gomp = ctypes.CDLL("libgomp.so.1")
    except OSError:
        yield
        return
    previous = gomp.omp_get_max_threads()
    gomp.omp_set_num_threads(1)
    try:
        yield
    finally:
        gomp.omp_set_num_threads(previous)


def gfn2_singlepoint(numbers: np.ndarray, positions_bohr: np.ndarray, charge: int, uhf: int,
                     label: str) -> tuple[float, np.ndarray, np.ndarray]:
    """GFN2-xTB energy (hartree), gradient (hartree/bohr, (N,3)) and partial charges (e, (N,)).

    `uhf` is the number of unpaired electrons; `label` names the structure in the error message.
    """
    calc = Calculator("GFN2-xTB", np.asarray(numbers), np.asarray(positions_bohr, dtype=np.float64),
                      charge=float(charge), uhf=int(uhf))
    calc.set("verbosity", 0)
    try:
        res = calc.singlepoint()
    except RuntimeError as err:
        raise TnqError(f"GFN2-xTB failed on {label} (charge {charge}, {uhf} unpaired electrons): {err}; "
                       "check the SMILES, charge and multiplicity of this sample molecule") from err
    return float(res.get("energy")), np.asarray(res.get("gradient")), np.asarray(res.get("charges"))


def atomic_reference_energy(atomic_number: int, formal_charge: int) -> float:
    """GFN2-xTB energy (hartree) of the isolated atom or ion in its Hund's-rule ground spin state."""
    electrons = atomic_number - formal_charge
    if not 0 <= electrons < len(_UNPAIRED_BY_ELECTRONS):
        raise TnqError(f"no atomic reference for Z={atomic_number} with charge {formal_charge}; "
                       "sample molecules are limited to elements H to Ar")
    if electrons == 0:  # a bare proton has no electrons and no electronic energy
        return 0.0
    energy, _, _ = gfn2_singlepoint(np.array([atomic_number]), np.zeros((1, 3)), formal_charge,
                                    _UNPAIRED_BY_ELECTRONS[electrons], f"atom Z={atomic_number}{formal_charge:+d}")
    return energy


def mapped_molecule(smiles: str) -> tuple[Chem.Mol, str]:
    """RDKit molecule with explicit hydrogens and its SPICE-style mapped SMILES.

    Atom i of the molecule carries map number i+1 (heavy atoms first, then hydrogens), so array order
    equals map order.
    """
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise TnqError(f"RDKit cannot parse the sample SMILES {smiles!r}; fix tnq_data/sample_molecules.py")
    mol = Chem.AddHs(mol)
    tagged = Chem.Mol(mol)
    for atom in tagged.GetAtoms():
        atom.SetAtomMapNum(atom.GetIdx() + 1)
    return mol, Chem.MolToSmiles(tagged, isomericSmiles=True)


def _check_spin_and_charge(mol: Chem.Mol, charge: int, multiplicity: int, label: str) -> None:
    """Fail when the SMILES disagrees with the declared charge (e) or multiplicity (2S+1)."""
    formal = Chem.GetFormalCharge(mol)
    radicals = sum(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms())
    if formal != charge or radicals + 1 != multiplicity:
        raise TnqError(f"sample molecule {label}: SMILES has charge {formal} and {radicals} radical electrons, "
                       f"declared charge {charge} and multiplicity {multiplicity}; fix tnq_data/sample_molecules.py")


def _optimise(numbers: np.ndarray, xyz_bohr: np.ndarray, charge: int, uhf: int, label: str,
              max_steps: int = 300) -> tuple[np.ndarray, float]:
    """GFN2-xTB (local) minimum (bohr) and its energy (hartree) by L-BFGS from a start geometry (bohr)."""

    def energy_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        energy, grad, _ = gfn2_singlepoint(numbers, flat.reshape(-1, 3), charge, uhf, label)
        return energy, grad.ravel()

    result = minimize(energy_and_gradient, xyz_bohr.ravel(), jac=True, method="L-BFGS-B",
                      options={"maxiter": max_steps, "gtol": 1e-4})
    return result.x.reshape(-1, 3), float(result.fun)


def _conformers_bohr(mol: Chem.Mol, spec: SampleMolecule, n_conformers: int, seed: int) -> np.ndarray:
    """`n_conformers` geometries (bohr): ETKDG, MMFF (UFF where MMFF lacks parameters), a short GFN2-xTB
    relaxation, then a Gaussian displacement (large for the first half, small for the rest)."""
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    params.numThreads = 1
    params.pruneRmsThresh = -1.0
    ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_conformers, params=params))
    if len(ids) != n_conformers:
        raise TnqError(f"RDKit embedded {len(ids)} of {n_conformers} conformers of {spec.name}; "
                       "try another seed or a smaller n_conformers")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=500)
    else:
        AllChem.UFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=500)
    numbers = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()])
    relaxed = np.stack([
        _optimise(numbers, mol.GetConformer(i).GetPositions() / BOHR_TO_ANGSTROM, spec.charge,
                  spec.multiplicity - 1, f"{spec.name} conformer {k}", max_steps=_RELAX_STEPS)[0]
        for k, i in enumerate(ids)
    ])
    rng = np.random.default_rng(seed)
    sigma = np.where(np.arange(n_conformers) < (n_conformers + 1) // 2, _HOT_SIGMA, _COLD_SIGMA)
    return relaxed + rng.normal(size=relaxed.shape) * sigma[:, None, None] / BOHR_TO_ANGSTROM


def _write_spice_group(f: h5py.File, spec: SampleMolecule, n_conformers: int, seed: int,
                       references: dict[tuple[int, int], float]) -> None:
    """Compute one molecule and write its group in the SPICE layout (datasets in alphabetical order)."""
    mol, smiles = mapped_molecule(spec.smiles)
    _check_spin_and_charge(mol, spec.charge, spec.multiplicity, spec.name)
    numbers = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()], dtype=np.int16)
    # Positions are rounded to float32 first, so the stored geometry is exactly the one computed.
    xyz_bohr = _conformers_bohr(mol, spec, n_conformers, seed).astype(np.float32)
    energies = np.empty(n_conformers, dtype=np.float64)
    gradients = np.empty(xyz_bohr.shape, dtype=np.float32)
    charges = np.empty((*xyz_bohr.shape[:2], 1), dtype=np.float32)
    for k in range(n_conformers):
        energies[k], grad, q = gfn2_singlepoint(numbers, xyz_bohr[k].astype(np.float64), spec.charge,
                                                spec.multiplicity - 1, f"{spec.name} conformer {k}")
        gradients[k], charges[k, :, 0] = grad, q
    for atom in mol.GetAtoms():
        key = (atom.GetAtomicNum(), atom.GetFormalCharge())
        if key not in references:
            references[key] = atomic_reference_energy(*key)
    e_atoms = sum(references[(a.GetAtomicNum(), a.GetFormalCharge())] for a in mol.GetAtoms())

    g = f.create_group(spec.name, track_order=True)
    g.create_dataset("atomic_numbers", data=numbers)
    g.create_dataset("conformations", data=xyz_bohr).attrs["units"] = "bohr"
    g.create_dataset("dft_total_energy", data=energies).attrs["units"] = "hartree"
    g.create_dataset("dft_total_gradient", data=gradients).attrs["units"] = "hartree/bohr"
    g.create_dataset("formation_energy", data=energies - e_atoms).attrs["units"] = "hartree"
    if spec.mbis:
        g.create_dataset("mbis_charges", data=charges).attrs["units"] = "elementary_charge"
    g.create_dataset("smiles", data=[smiles], dtype=h5py.string_dtype())
    g.create_dataset("subset", data=[spec.subset], dtype=h5py.string_dtype())


def make_spice_sample(path: Path, n_conformers: int = 8, seed: int = 0,
                      molecules: Sequence[SampleMolecule] = SPICE_MOLECULES) -> Path:
    """Write a SPICE-layout HDF5 of `molecules` (default: all of `SPICE_MOLECULES`) to `path`.

    Per molecule: `n_conformers` RDKit conformers, GFN2-xTB energies (hartree), gradients
    (hartree/bohr) and, where `mbis` is set, GFN2 charges (e) in `mbis_charges`. Coordinates in bohr.
    The same arguments give a byte-identical file.
    """
    if n_conformers < 1:
        raise TnqError(f"n_conformers must be at least 1, got {n_conformers}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    references: dict[tuple[int, int], float] = {}
    ordered = sorted(molecules, key=lambda m: m.name)
    partial = path.with_name(path.name + ".partial")  # a failed run leaves no half-written file at `path`
    with _single_threaded_openmp(), h5py.File(partial, "w", libver="latest", track_order=True) as f:
        for index, spec in enumerate(ordered):
            _write_spice_group(f, spec, n_conformers, seed * 1000 + index, references)
    os.replace(partial, path)
    return path


def _qmspin_xyz(name: str, state: str, symbols: list[str], xyz_angstrom: np.ndarray, energy: float) -> bytes:
    """One QMspin-layout xyz file: atom count, `;`-separated comment with the energy, comma-separated atoms."""
    word, multiplicity = ("singlet", 1) if state == "s" else ("triplet", 3)
    comment = (f"{name}; {word} state (multiplicity {multiplicity}); "
               f"tnq sample stand-in: geometry and energy from GFN2-xTB, not the multireference method; "
               f"MRCISD+Q-F12 energy (Eh): {energy:.8f}")
    rounded = np.round(xyz_angstrom, 8) + 0.0  # + 0.0 turns -0.0 into 0.0
    atoms = [f"{s},{x:.8f},{y:.8f},{z:.8f}" for s, (x, y, z) in zip(symbols, rounded, strict=True)]
    return ("\n".join([str(len(symbols)), comment, *atoms]) + "\n").encode("ascii")


def _carbene_files(carbene: SampleCarbene, seed: int) -> dict[str, bytes]:
    """Archive member name -> xyz bytes for the requested spin states of one carbene.

    As in QMspin, the triplet is optimised first (from the RDKit embedding) and the singlet starts
    from the optimised triplet.
    """
    mol = Chem.AddHs(Chem.MolFromSmiles(carbene.smiles))
    _check_spin_and_charge(mol, 0, 3, carbene.stem)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise TnqError(f"RDKit could not embed carbene {carbene.stem} ({carbene.smiles}); try another seed")
    numbers = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()])
    symbols = [atom.GetSymbol() for atom in mol.GetAtoms()]
    start = mol.GetConformer().GetPositions() / BOHR_TO_ANGSTROM
    triplet, e_triplet = _optimise(numbers, start, 0, 2, f"{carbene.stem}-t")
    optimised = {"t": (triplet, e_triplet)}
    if "s" in carbene.states:
        optimised["s"] = _optimise(numbers, triplet, 0, 0, f"{carbene.stem}-s")
    files = {}
    for state in carbene.states:
        xyz, energy = optimised[state]
        name = f"{carbene.stem}-{state}"
        member = f"{QMSPIN_ROOT}/{QMSPIN_FOLDERS[state]}/{name}.xyz"
        files[member] = _qmspin_xyz(name, state, symbols, xyz * BOHR_TO_ANGSTROM, energy)
    return files


def make_qmspin_sample(path: Path, n_carbenes: int = 6, seed: int = 0) -> Path:
    """Write a QMspin-Part-1-layout `.tar.gz` of the first `n_carbenes` of `QMSPIN_CARBENES` to `path`.

    Singlet and triplet structures (Å) go to `QMspin_Part1/geometries_singlet|triplet/`, with the
    GFN2-xTB energy (hartree) where QMspin has its MRCISD+Q-F12 energy. Archive bytes are
    deterministic: sorted members, fixed mtime/owner/mode, gzip mtime 0.
    """
    if not 1 <= n_carbenes <= len(QMSPIN_CARBENES):
        raise TnqError(f"n_carbenes must be between 1 and {len(QMSPIN_CARBENES)}, got {n_carbenes}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    with _single_threaded_openmp():
        for index, carbene in enumerate(QMSPIN_CARBENES[:n_carbenes]):
            files.update(_carbene_files(carbene, seed * 1000 + index))
    folders = [f"{QMSPIN_ROOT}/"] + [f"{QMSPIN_ROOT}/{folder}/" for folder in sorted(QMSPIN_FOLDERS.values())]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in folders + sorted(files):
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o644, len(files[name])
                tar.addfile(info, io.BytesIO(files[name]))
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                     compresslevel=9) as gz:
        gz.write(buffer.getvalue())
    os.replace(partial, path)
    return path


def make_demo_inputs(dest: Path) -> dict[str, Path]:
    """Write both samples into `dest`; returns ``{"spice": hdf5 path, "qmspin": archive path}``."""
    dest = Path(dest)
    return {
        "spice": make_spice_sample(dest / SPICE_SAMPLE_NAME),
        "qmspin": make_qmspin_sample(dest / QMSPIN_SAMPLE_NAME),
    }
