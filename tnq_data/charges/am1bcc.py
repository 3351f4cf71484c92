"""AM1-BCC charges with AmberTools (antechamber + sqm) through the OpenFF toolkit."""

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tnq_data.charges.base import ChargeFailure, ChargeUnit, Scheme, conserve_charge, one_line
from tnq_data.charges.molecule import openff_molecule_errors, unit_mol
from tnq_data.charges.tools import ambertools_version, package_versions

#: Elements with AM1 and BCC parameters in AmberTools.
_ELEMENTS = frozenset({1, 6, 7, 8, 9, 15, 16, 17, 35, 53})
#: sqm keywords antechamber uses by default, plus ``maxcyc=0``: a single point on the given geometry.
_SQM_SINGLE_POINT = "qm_theory='AM1', grms_tol=0.0005, scfconv=1.d-10, ndiis_attempts=700, maxcyc=0"


class Am1Bcc(Scheme):
    """AM1 Mulliken charges plus bond-charge corrections (Jakalian et al. 2002) for closed-shell molecules.

    Without a geometry: OpenFF's ``assign_partial_charges("am1bcc")`` with the AmberTools wrapper, which
    embeds one RDKit conformer (seed 1) and lets sqm minimise it, so the charges depend only on the SMILES.
    With a geometry (``--per-conformer``): antechamber runs sqm as a single point (``maxcyc=0``) on the stored
    geometry, which the OpenFF wrapper cannot do (it always lets sqm minimise).
    """

    name = "am1bcc"
    version = "1"
    geometry = "optional"
    method = "AM1-BCC"

    def tools(self) -> dict[str, str]:
        return {"ambertools": ambertools_version(),
                **package_versions("openff-toolkit", "rdkit", needed_by=self.name)}

    def warm_up(self) -> None:
        import openff.toolkit  # noqa: F401

    def compute(self, unit: ChargeUnit) -> np.ndarray:
        """AM1-BCC charges (N,) e; what antechamber, sqm or OpenFF reject for this molecule is a `ChargeFailure`,
        a missing program (`FileNotFoundError`, OpenFF's `AntechamberNotFoundError`) is not."""
        try:
            return self._compute(unit)
        except (subprocess.CalledProcessError, *openff_molecule_errors()) as err:
            raise ChargeFailure(one_line(err)) from err

    def _compute(self, unit: ChargeUnit) -> np.ndarray:
        from openff.toolkit import Molecule
        from openff.toolkit.utils.toolkits import AmberToolsToolkitWrapper

        if unit.multiplicity != 1:
            raise ChargeFailure(f"AM1-BCC needs a closed-shell singlet, got multiplicity {unit.multiplicity}")
        unsupported = sorted({int(z) for z in unit.z} - _ELEMENTS)
        if unsupported:
            raise ChargeFailure(f"AM1-BCC has no parameters for atomic numbers {unsupported}")
        rdmol = unit_mol(unit.smiles, unit.z, unit.total_charge)
        molecule = Molecule.from_rdkit(rdmol, allow_undefined_stereo=True, hydrogens_are_explicit=True)
        if unit.positions is not None:
            return conserve_charge(_single_point_bcc(molecule, unit.positions, unit.total_charge),
                                   unit.total_charge)
        molecule.assign_partial_charges("am1bcc", toolkit_registry=AmberToolsToolkitWrapper())
        return conserve_charge(molecule.partial_charges.m_as("elementary_charge"), unit.total_charge)


def _single_point_bcc(molecule: "openff.toolkit.Molecule", positions: np.ndarray,  # noqa: F821
                      total_charge: int) -> np.ndarray:
    """AM1-BCC charges (N,) of `molecule` at `positions` (N, 3) Å without minimising the geometry."""
    from openff.units import unit

    molecule._conformers = None
    molecule._add_conformer(unit.Quantity(np.asarray(positions, dtype=np.float64), unit.angstrom))
    with tempfile.TemporaryDirectory(prefix="tnq-am1bcc-") as tmp:
        molecule.to_file(str(Path(tmp, "in.sdf")), file_format="sdf")
        command = ["antechamber", "-i", "in.sdf", "-fi", "sdf", "-o", "out.mol2", "-fo", "mol2", "-pf", "yes",
                   "-dr", "n", "-c", "bcc", "-nc", str(total_charge), "-ek", _SQM_SINGLE_POINT]
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ChargeFailure(f"antechamber failed: {tail[0][:300]}")
        return _mol2_charges(Path(tmp, "out.mol2").read_text(), molecule.n_atoms)


def _mol2_charges(text: str, n_atoms: int) -> np.ndarray:
    """The charge column (N,) of the ATOM section of a Tripos mol2 file."""
    atoms = text.split("@<TRIPOS>ATOM", 1)[1].split("@<TRIPOS>", 1)[0].split("\n")
    charges = [float(line.split()[8]) for line in atoms if line.strip()]
    if len(charges) != n_atoms:
        raise ChargeFailure(f"antechamber wrote {len(charges)} charges for {n_atoms} atoms")
    return np.array(charges, dtype=np.float64)
