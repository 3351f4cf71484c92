"""The QMspin-Part-1-layout sample archive: GFN2-xTB triplet and singlet carbenes as xyz files (docs/sample-data.md)."""

import gzip
import io
import os
import tarfile
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

from tnq_core.errors import TnqError
from tnq_data.sample_conformers import check_spin_and_charge
from tnq_data.sample_molecules import QMSPIN_CARBENES, SampleCarbene
from tnq_data.units import BOHR_TO_ANGSTROM
from tnq_data.xtb import gfn2_optimise

__all__ = ["QMSPIN_FOLDERS", "QMSPIN_ROOT", "QMSPIN_SAMPLE_NAME", "make_qmspin_sample"]

#: File name written by `make_demo_inputs`.
QMSPIN_SAMPLE_NAME = "QMspin_Part1.tar.gz"
#: Top-level folder of the QMspin archive and its two structure folders.
QMSPIN_ROOT = "QMspin_Part1"
QMSPIN_FOLDERS = {"s": "geometries_singlet", "t": "geometries_triplet"}


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
    check_spin_and_charge(mol, 0, 3, carbene.stem)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise TnqError(f"RDKit could not embed carbene {carbene.stem} ({carbene.smiles}); try another seed")
    numbers = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()])
    symbols = [atom.GetSymbol() for atom in mol.GetAtoms()]
    start = mol.GetConformer().GetPositions() / BOHR_TO_ANGSTROM
    triplet, e_triplet = gfn2_optimise(numbers, start, 0, 2, f"{carbene.stem}-t")
    optimised = {"t": (triplet, e_triplet)}
    if "s" in carbene.states:
        optimised["s"] = gfn2_optimise(numbers, triplet, 0, 0, f"{carbene.stem}-s")
    files = {}
    for state in carbene.states:
        xyz, energy = optimised[state]
        name = f"{carbene.stem}-{state}"
        member = f"{QMSPIN_ROOT}/{QMSPIN_FOLDERS[state]}/{name}.xyz"
        files[member] = _qmspin_xyz(name, state, symbols, xyz * BOHR_TO_ANGSTROM, energy)
    return files


def _deterministic_tar_gz(path: Path, files: dict[str, bytes], folders: list[str]) -> None:
    """Write `folders` then the sorted `files` to a `.tar.gz` whose bytes depend on nothing else:
    fixed mtime/owner/mode, gzip mtime 0, no file name in the gzip header."""
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
    for index, carbene in enumerate(QMSPIN_CARBENES[:n_carbenes]):
        files.update(_carbene_files(carbene, seed * 1000 + index))
    folders = [f"{QMSPIN_ROOT}/"] + [f"{QMSPIN_ROOT}/{folder}/" for folder in sorted(QMSPIN_FOLDERS.values())]
    _deterministic_tar_gz(path, files, folders)
    return path
