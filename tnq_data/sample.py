"""Offline sample data made on the fly: a SPICE-layout HDF5 and a QMspin-layout archive.

Geometries come from RDKit (ETKDG, MMFF), energies, gradients and charges from GFN2-xTB (tblite).
The files copy the layout of the real datasets, not their level of theory; see docs/sample-data.md.
Everything is deterministic: fixed seeds, sorted inputs, no timestamps in either file.

This module is the entry point; the work is done in `sample_spice` (HDF5), `sample_qmspin` (archive),
`sample_conformers` (RDKit structures) and `xtb` (GFN2-xTB with tblite).
"""

from pathlib import Path

from tnq_data.sample_conformers import mapped_molecule
from tnq_data.sample_molecules import QMSPIN_CARBENES, SPICE_MOLECULES
from tnq_data.sample_qmspin import QMSPIN_FOLDERS, QMSPIN_ROOT, QMSPIN_SAMPLE_NAME, make_qmspin_sample
from tnq_data.sample_spice import SPICE_SAMPLE_NAME, make_spice_sample
from tnq_data.xtb import atomic_reference_energy, gfn2_singlepoint

__all__ = [
    "QMSPIN_CARBENES",
    "QMSPIN_FOLDERS",
    "QMSPIN_ROOT",
    "QMSPIN_SAMPLE_NAME",
    "SPICE_MOLECULES",
    "SPICE_SAMPLE_NAME",
    "atomic_reference_energy",
    "gfn2_singlepoint",
    "make_demo_inputs",
    "make_qmspin_sample",
    "make_spice_sample",
    "mapped_molecule",
]


def make_demo_inputs(dest: Path) -> dict[str, Path]:
    """Write both samples into `dest`; returns ``{"spice": hdf5 path, "qmspin": archive path}``."""
    dest = Path(dest)
    return {
        "spice": make_spice_sample(dest / SPICE_SAMPLE_NAME),
        "qmspin": make_qmspin_sample(dest / QMSPIN_SAMPLE_NAME),
    }
