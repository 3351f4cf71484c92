"""MBIS charges (minimal basis iterative stockholder): from the source dataset, or computed with ``--compute``.

SPICE curation stores its MBIS charges as the source column ``charges/mbis_source`` (NaN for molecules without
them) and their level of theory per molecule in ``charges_method/mbis_source`` and ``charges_basis/mbis_source``.
This scheme reads only that column (never its own output ``charges/mbis``), checks and keeps the charges,
molecule by molecule. Without ``--compute`` molecules lacking them are failures (or go to a fallback); with
``--compute`` (optional extra ``mbis``: pyscf, horton-part and its grid package qc-grid, which needs
SciPy < 1.15) they are computed here: a pyscf SCF at ``--method/--basis`` on the stored geometry, its density
evaluated on a qc-grid molecular grid (Becke weights) and partitioned by horton-part's MBIS. Source charges at
another level of theory than ``--method/--basis`` are not used then, so one column never mixes two levels.
"""

import logging

import numpy as np

from tnq_data.charges.base import ChargeFailure, ChargeUnit, Scheme, conserve_charge
from tnq_data.charges.tools import package_versions
from tnq_core.errors import TnqError
from tnq_data.units import BOHR_TO_ANGSTROM

#: qc-grid preset of the atomic grids (radial shells and Lebedev orders per element) used by default.
GRID_PRESET = "fine"
#: SCF iterations before a molecule counts as not converged.
SCF_MAX_CYCLE = 100
#: MBIS stops when the pro-atom parameters change less than this between iterations (horton-part's measure).
MBIS_THRESHOLD = 1e-6
#: MBIS iterations before a molecule counts as not converged.
MBIS_MAX_ITER = 500
#: Grid points per batch when evaluating the density, bounding the (points, basis functions) AO array.
POINTS_PER_BATCH = 20_000
#: Heaviest element computed: beyond Kr the usual bases (def2) replace the core by an effective core
#: potential, and MBIS needs the all-electron density.
MAX_ATOMIC_NUMBER = 36


class Mbis(Scheme):
    """MBIS charges per conformer: the source's (SPICE: ωB97M-D3BJ/def2-TZVPPD), or computed when asked.

    Parameters (``get_scheme("mbis", ...)``): ``compute`` (bool), ``method`` ("hf" or a pyscf/libxc
    functional such as "b3lyp"), ``basis`` (a pyscf basis name such as "def2-svp") and optionally ``grid``
    (a qc-grid preset, default `GRID_PRESET`). All of them enter the cache key and the version id.
    """

    name = "mbis"
    version = "1"
    geometry = "always"
    source_column = "charges/mbis_source"

    def level(self) -> tuple[str, str]:
        """(method, basis) of computed charges; ("", "") without `compute`, where only source charges are used."""
        if not self.params.get("compute"):
            return "", ""
        return str(self.params["method"]), str(self.params["basis"])

    def accepts_source(self, level: tuple[str, str]) -> bool:
        """Whether source charges at `level` (method, basis) may fill this scheme's column: always without
        `compute`, else only at the level computed (compared case-insensitively)."""
        return not self.params.get("compute") or tuple(x.lower() for x in level) == \
            tuple(x.lower() for x in self.level())

    def tools(self) -> dict[str, str]:
        if not self.params.get("compute"):
            return {}
        return package_versions("pyscf", "horton-part", "qc-grid", needed_by="mbis `compute`")

    def check_available(self) -> None:
        if not self.params.get("compute"):
            return
        try:
            import grid.molgrid  # noqa: F401
            import horton_part  # noqa: F401
            import pyscf  # noqa: F401
        except ImportError as err:
            raise TnqError(f"mbis `compute` needs the optional extra mbis (pip install 'tnq[mbis]': pyscf, "
                           f"horton-part, scipy<1.15): {err}; or drop `compute` and use `fallback` gfn2 for "
                           "molecules without MBIS charges") from None
        if not self.params.get("method") or not self.params.get("basis"):
            raise TnqError("mbis `compute` needs `method` and `basis`, e.g. `method` b3lyp and `basis` def2-svp")
        self.tools()

    def warm_up(self) -> None:
        if self.params.get("compute"):
            import grid.molgrid  # noqa: F401
            import horton_part  # noqa: F401
            import pyscf.dft  # noqa: F401

    def compute(self, unit: ChargeUnit) -> np.ndarray:
        if not self.params.get("compute"):
            raise ChargeFailure("no MBIS charges in the source for this conformer")
        if unit.positions is None:
            raise ChargeFailure("MBIS needs a geometry")
        heavy = sorted({int(z) for z in unit.z if z > MAX_ATOMIC_NUMBER})
        if heavy:
            raise ChargeFailure(f"mbis --compute is all-electron, up to Kr; atomic numbers {heavy} would need an "
                                "effective core potential")
        method, basis = self.level()
        mol = _pyscf_molecule(unit, basis)
        density_matrix = _scf_density_matrix(mol, method)
        charges = _mbis_charges(mol, density_matrix, str(self.params.get("grid") or GRID_PRESET))
        return conserve_charge(charges, unit.total_charge)


def _pyscf_molecule(unit: ChargeUnit, basis: str) -> "pyscf.gto.Mole":  # noqa: F821
    """The pyscf molecule of `unit`: atoms in its order, positions (N, 3) Å, total charge, 2S = multiplicity - 1."""
    from pyscf import gto

    atoms = [(int(z), tuple(float(x) for x in xyz)) for z, xyz in zip(unit.z, unit.positions)]
    return gto.M(atom=atoms, unit="Angstrom", basis=basis, charge=int(unit.total_charge),
                 spin=int(unit.multiplicity) - 1, verbose=0)


def _scf_density_matrix(mol: "pyscf.gto.Mole", method: str) -> np.ndarray:  # noqa: F821
    """Converged SCF density matrix in the AO basis: (nao, nao) restricted for singlets, else (2, nao, nao).

    `method` "hf" runs Hartree-Fock, anything else Kohn-Sham DFT with that exchange-correlation functional;
    RHF/RKS for multiplicity 1, UHF/UKS otherwise. Raises `ChargeFailure` when the SCF does not converge.
    """
    restricted = mol.spin == 0
    if method.lower() == "hf":
        mf = mol.RHF() if restricted else mol.UHF()
    else:
        mf = mol.RKS(xc=method) if restricted else mol.UKS(xc=method)
    mf.max_cycle = SCF_MAX_CYCLE
    mf.kernel()
    if not mf.converged:
        raise ChargeFailure(f"SCF ({type(mf).__name__} {method}/{mol.basis}) did not converge in "
                            f"{SCF_MAX_CYCLE} cycles")
    return mf.make_rdm1()


def _electron_density(mol: "pyscf.gto.Mole", density_matrix: np.ndarray,  # noqa: F821
                      points: np.ndarray) -> np.ndarray:
    """Total (spin-summed) electron density (P,) in e/bohr³ at `points` (P, 3) in bohr."""
    from pyscf.dft import numint

    dm = density_matrix if density_matrix.ndim == 2 else density_matrix.sum(axis=0)
    rho = np.empty(len(points))
    for start in range(0, len(points), POINTS_PER_BATCH):
        batch = points[start:start + POINTS_PER_BATCH]
        rho[start:start + len(batch)] = numint.eval_rho(mol, numint.eval_ao(mol, batch), dm)
    return rho


def _mbis_charges(mol: "pyscf.gto.Mole", density_matrix: np.ndarray, preset: str) -> np.ndarray:  # noqa: F821
    """MBIS charges (N,) in e of the SCF density on a qc-grid molecular grid of `preset` atomic grids.

    Raises `ChargeFailure` when the MBIS iterations do not converge within `MBIS_MAX_ITER`.
    """
    from grid.molgrid import MolGrid
    from horton_part import MBISWPart

    numbers, coordinates = mol.atom_charges(), mol.atom_coords(unit="Bohr")
    molgrid = MolGrid.from_preset(numbers, coordinates, preset, store=True)
    part = MBISWPart(coordinates, numbers, numbers.astype(np.float64), molgrid,
                     _electron_density(mol, density_matrix, molgrid.points),
                     logger=logging.getLogger(__name__), threshold=MBIS_THRESHOLD, maxiter=MBIS_MAX_ITER)
    part.do_charges()
    if part.cache["change"] >= MBIS_THRESHOLD:
        raise ChargeFailure(f"MBIS did not converge in {MBIS_MAX_ITER} iterations "
                            f"(change {part.cache['change']:.1e})")
    return np.asarray(part.cache["charges"], dtype=np.float64)
