"""The SPICE-layout sample HDF5: RDKit conformers of `SPICE_MOLECULES` with GFN2-xTB labels (docs/sample-data.md)."""

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from tnq_core.errors import TnqError
from tnq_data.sample_conformers import check_spin_and_charge, conformers_bohr, mapped_molecule
from tnq_data.sample_molecules import SPICE_MOLECULES, SampleMolecule
from tnq_data.xtb import atomic_reference_energy, gfn2_result

__all__ = ["SPICE_SAMPLE_NAME", "make_spice_sample"]

#: File name written by `make_demo_inputs`.
SPICE_SAMPLE_NAME = "SPICE-sample.hdf5"


def _write_spice_group(f: h5py.File, spec: SampleMolecule, n_conformers: int, seed: int,
                       references: dict[tuple[int, int], float]) -> None:
    """Compute one molecule and write its group in the SPICE layout (datasets in alphabetical order)."""
    mol, smiles = mapped_molecule(spec.smiles)
    check_spin_and_charge(mol, spec.charge, spec.multiplicity, spec.name)
    numbers = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()], dtype=np.int16)
    # Positions are rounded to float32 first, so the stored geometry is exactly the one computed.
    xyz_bohr = conformers_bohr(mol, spec, n_conformers, seed).astype(np.float32)
    energies = np.empty(n_conformers, dtype=np.float64)
    gradients = np.empty(xyz_bohr.shape, dtype=np.float32)
    charges = np.empty((*xyz_bohr.shape[:2], 1), dtype=np.float32)
    dipoles = np.empty((n_conformers, 3), dtype=np.float32)
    for k in range(n_conformers):
        res = gfn2_result(numbers, xyz_bohr[k].astype(np.float64), spec.charge, spec.multiplicity - 1,
                          f"{spec.name} conformer {k}")
        energies[k], gradients[k] = res.get("energy"), res.get("gradient")
        charges[k, :, 0], dipoles[k] = res.get("charges"), res.get("dipole")
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
    g.create_dataset("scf_dipole", data=dipoles).attrs["units"] = "elementary_charge*bohr"
    g.create_dataset("smiles", data=[smiles], dtype=h5py.string_dtype())
    g.create_dataset("subset", data=[spec.subset], dtype=h5py.string_dtype())


def make_spice_sample(path: Path, n_conformers: int = 8, seed: int = 0,
                      molecules: Sequence[SampleMolecule] = SPICE_MOLECULES) -> Path:
    """Write a SPICE-layout HDF5 of `molecules` (default: all of `SPICE_MOLECULES`) to `path`.

    Per molecule: `n_conformers` RDKit conformers, GFN2-xTB energies (hartree), gradients
    (hartree/bohr), the GFN2 dipole about the origin (e·bohr) in `scf_dipole` and, where `mbis` is set, GFN2
    charges (e) in `mbis_charges`. Coordinates in bohr.
    The same arguments give a byte-identical file.
    """
    if n_conformers < 1:
        raise TnqError(f"n_conformers must be at least 1, got {n_conformers}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    references: dict[tuple[int, int], float] = {}
    ordered = sorted(molecules, key=lambda m: m.name)
    partial = path.with_name(path.name + ".partial")  # a failed run leaves no half-written file at `path`
    with h5py.File(partial, "w", libver="latest", track_order=True) as f:
        for index, spec in enumerate(ordered):
            _write_spice_group(f, spec, n_conformers, seed * 1000 + index, references)
    os.replace(partial, path)
    return path
