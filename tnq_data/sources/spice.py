"""Curate a SPICE HDF5 file (one group per molecule, hartree/bohr) into a store (eV/Å/e).

SPICE's `scf_dipole` (about the origin) becomes a per-conformer `dipole` about the centre of mass (e·Å).
Groups are read in sorted name order in contiguous blocks; each block becomes one `MoleculeBatch`, so the
store does not depend on the number of workers.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from h5py import h5a, h5d, h5s

from tnq_core.errors import TnqError
from tnq_core.progress import SILENT, Reporter
from tnq_data.chem import mapped_smiles_summary, multiplicity_consistent
from tnq_data.curate import DropCounts, MoleculeRecord, file_input, max_force_norm, non_finite, to_batch
from tnq_data.parallel import ordered_map
from tnq_data.sources.dipole import dipole_about_centre_of_mass
from tnq_data.store import write_store
from tnq_data.store.format import MoleculeBatch
from tnq_data.units import BOHR_TO_ANGSTROM, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV

#: Subset regex of the PubChem sets (the usual training data of the pipelines), matched with `re.search`.
PUBCHEM_SUBSETS = r"^SPICE PubChem Set \d+ Single Points Dataset"
#: The `units` attribute each numeric dataset must carry.
EXPECTED_UNITS = {
    "conformations": "bohr",
    "dft_total_energy": "hartree",
    "formation_energy": "hartree",
    "dft_total_gradient": "hartree/bohr",
    "mbis_charges": "elementary_charge",
    "scf_dipole": "elementary_charge*bohr",
}
#: Optional datasets: absent ones give NaN columns.
OPTIONAL = ("mbis_charges", "scf_dipole")
REQUIRED = ("smiles", "subset", "atomic_numbers", "conformations", "dft_total_energy", "formation_energy",
            "dft_total_gradient")
#: Molecules per block: the unit of work of a worker and one batch of the writer.
BLOCK_MOLECULES = 256
#: The source column of SPICE's MBIS charges: never the `charges/mbis` that `tnq-data charges` writes.
MBIS_SOURCE = "charges/mbis_source"
#: SPICE's level of theory (method, basis), recorded per molecule with MBIS charges in
#: ``charges_method/mbis_source`` and ``charges_basis/mbis_source``.
SPICE_LEVEL = ("wB97M-D3BJ", "def2-TZVPPD")


@dataclass(frozen=True)
class SpiceFilters:
    """What to keep: `subset` regex (None: all), allowed atomic numbers (None: all), max force in eV/Å."""

    subset: str | None = None
    elements: frozenset[int] | None = None
    max_force: float | None = None


def group_names(hdf5: Path) -> list[str]:
    """Sorted names of the molecule groups of a SPICE file; `TnqError` if it is not a readable HDF5 file."""
    with _open(hdf5) as handle:
        return sorted(handle)


def read_block(hdf5: str, names: list[str], filters: SpiceFilters) -> tuple[MoleculeBatch | None, DropCounts]:
    """Read and curate the groups `names` of `hdf5`; returns their batch (None if all dropped) and the counts."""
    counts = DropCounts()
    records = []
    with _open(Path(hdf5)) as handle:
        for name in names:
            record = _read_molecule(handle[name], filters, counts)
            if record is not None:
                records.append(record)
    return (to_batch(records) if records else None), counts


def _open(hdf5: Path) -> h5py.File:
    try:
        return h5py.File(hdf5, "r")
    except (OSError, ValueError) as err:
        raise TnqError(f"{hdf5}: cannot open as HDF5 ({err}); check the path or fetch it again with `tnq-data fetch spice`") from err


def _read_molecule(group: h5py.Group, filters: SpiceFilters, counts: DropCounts) -> MoleculeRecord | None:
    """Curate one molecule group; counts its drops and returns its record, or None when nothing is kept.

    Datasets are opened once each with h5py's low-level API: for the small groups of SPICE, opening and the
    Python objects around it cost more than reading the data.
    """
    present = set(group)
    data = {key: h5d.open(group.id, key.encode()) for key in (*REQUIRED, *OPTIONAL) if key in present}
    n_conf = data["conformations"].shape[0] if "conformations" in data else 0
    if len(data.keys() & set(REQUIRED)) < len(REQUIRED):
        counts.drop_molecule("missing_dataset", n_conf)
        return None
    subset = _text(data["subset"])
    if filters.subset is not None and not re.search(filters.subset, subset):
        counts.drop_molecule("subset", n_conf)
        return None
    _check_units(group, data)
    z = _read(data["atomic_numbers"]).astype(np.int64)
    if not _shapes_ok(data, n_conf, z):
        counts.drop_molecule("bad_shape", n_conf)
        return None
    smiles = _text(data["smiles"])
    try:
        smiles_z, charge, multiplicity = mapped_smiles_summary(smiles)
    except TnqError:
        smiles_z = None
    if smiles_z is None or not np.array_equal(smiles_z, z):
        counts.drop_molecule("smiles", n_conf)
        return None
    if filters.elements is not None and not np.isin(z, list(filters.elements)).all():
        counts.drop_molecule("elements", n_conf)
        return None
    if not multiplicity_consistent(z, charge, multiplicity):
        counts.drop_molecule("spin", n_conf)
        return None

    pos64 = _read(data["conformations"]).astype(np.float64) * BOHR_TO_ANGSTROM
    pos = pos64.astype(np.float32)
    forces = (_read(data["dft_total_gradient"]).astype(np.float64) * -HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM).astype(np.float32)
    energy = _read(data["dft_total_energy"]).astype(np.float64) * HARTREE_TO_EV
    formation = _read(data["formation_energy"]).astype(np.float64) * HARTREE_TO_EV
    if "mbis_charges" in data:
        mbis = _read(data["mbis_charges"]).reshape(n_conf, len(z)).astype(np.float32)
        method, basis = SPICE_LEVEL
    else:
        mbis = np.full((n_conf, len(z)), np.nan, dtype=np.float32)
        method = basis = ""
    if "scf_dipole" in data:
        dipole_origin = _read(data["scf_dipole"]).astype(np.float64) * BOHR_TO_ANGSTROM
        dipole = dipole_about_centre_of_mass(dipole_origin, z, pos64, charge)
    else:
        dipole = np.full((n_conf, 3), np.nan)

    checks = [("non_finite", non_finite(pos, forces, energy, formation))]
    if filters.max_force is not None:
        with np.errstate(invalid="ignore"):
            checks.append(("max_force", max_force_norm(forces) > filters.max_force))
    keep = counts.filter_conformers(checks)
    n_kept = int(keep.sum())
    if n_kept == 0:
        return None
    counts.keep(n_kept)
    return MoleculeRecord(
        molecule={"smiles": smiles, "subset": subset, "source_id": group.name.lstrip("/"),
                  "charges_method/mbis_source": method, "charges_basis/mbis_source": basis},
        conformer={"energy": energy[keep], "formation_energy": formation[keep],
                   "total_charge": np.full(n_kept, charge, dtype=np.int8),
                   "multiplicity": np.full(n_kept, multiplicity, dtype=np.int8), "dipole": dipole[keep]},
        atom={"z": np.broadcast_to(z.astype(np.uint8), (n_kept, len(z))), "pos": pos[keep], "forces": forces[keep],
              MBIS_SOURCE: mbis[keep]},
    )


def _read(dataset: h5d.DatasetID) -> np.ndarray:
    """The whole dataset as an array of its own dtype."""
    out = np.empty(dataset.shape, dtype=dataset.dtype)
    dataset.read(h5s.ALL, h5s.ALL, out)
    return out


def _as_str(value: np.ndarray) -> str:
    """The first element of a (length-1 or scalar) string array as str."""
    value = value.reshape(-1)[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def _text(dataset: h5d.DatasetID) -> str:
    """A length-1 string dataset as str."""
    return _as_str(_read(dataset))


def _units(dataset: h5d.DatasetID) -> str | None:
    """The `units` attribute of a dataset, None when absent."""
    try:
        attribute = h5a.open(dataset, b"units")
    except KeyError:
        return None
    value = np.empty(attribute.shape, dtype=attribute.dtype)
    attribute.read(value)
    return _as_str(value)


def _check_units(group: h5py.Group, data: dict[str, h5d.DatasetID]) -> None:
    """Raise `TnqError` where a dataset's `units` attribute is not the expected one."""
    for key, unit in EXPECTED_UNITS.items():
        if key not in data:
            continue
        found = _units(data[key])
        if found != unit:
            raise TnqError(f"{group.file.filename}: {group.name}/{key} has units {found!r}, expected {unit!r};"
                           " this reader supports only the SPICE units, convert the file first")


def _shapes_ok(data: dict[str, h5d.DatasetID], n_conf: int, z: np.ndarray) -> bool:
    """Whether conformations/gradients are (M,N,3), energies (M,), MBIS charges (M,N[,1]) and the SCF dipole (M,3),
    with M, N >= 1."""
    n_atoms = len(z)
    atom_shape = (n_conf, n_atoms, 3)
    return (n_conf >= 1 and n_atoms >= 1 and z.ndim == 1
            and data["conformations"].shape == atom_shape and data["dft_total_gradient"].shape == atom_shape
            and data["dft_total_energy"].shape == (n_conf,) and data["formation_energy"].shape == (n_conf,)
            and ("mbis_charges" not in data or data["mbis_charges"].shape in ((n_conf, n_atoms), (n_conf, n_atoms, 1)))
            and ("scf_dipole" not in data or data["scf_dipole"].shape == (n_conf, 3)))


def curate_spice(hdf5: Path, out: Path, subset: str | None = None, elements: list[str] | None = None,
                 max_force: float | None = None, workers: int = 1, scheduler: str | None = None,
                 reporter: Reporter = SILENT) -> str:
    """Curate the SPICE file `hdf5` into the store `out`; returns the new version id.

    `subset` is a regex searched in each group's subset name (None keeps all); `elements` are symbols to allow;
    `max_force` drops conformers whose largest per-atom force norm exceeds it (eV/Å). Blocks of groups are
    read by `workers` dask workers (or the cluster at `scheduler`) and written in input order.
    """
    hdf5 = Path(hdf5)
    if subset is not None:
        _compile(subset)
    filters = SpiceFilters(subset=subset, elements=_element_numbers(elements), max_force=max_force)
    names = group_names(hdf5)
    blocks = [(str(hdf5.resolve()), names[i:i + BLOCK_MOLECULES], filters) for i in range(0, len(names), BLOCK_MOLECULES)]
    counts = DropCounts()
    tables: dict[str, list] = {}

    def batches():
        with reporter.bar(f"curate {hdf5.name}", len(names)) as bar:
            for (_, block_names, _), (batch, block_counts) in zip(blocks, ordered_map(read_block, blocks, workers, scheduler)):
                counts.merge(block_counts)
                bar.update(0, advance=len(block_names), status=f"{counts.kept_conformers} conformers kept")
                if batch is not None:
                    yield batch
        tables["curation"] = counts.rows()

    parameters = {"subset": subset, "elements": elements, "max_force": max_force}
    provenance = {"command": "curate spice", "parameters": parameters, "inputs": [file_input(hdf5)]}
    return write_store(out, batches(), provenance=provenance, tables=tables)


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise TnqError(f"`subset` {pattern!r} is not a valid regular expression ({err}); fix the pattern") from err


def _element_numbers(symbols: list[str] | None) -> frozenset[int] | None:
    """Atomic numbers of element symbols (e.g. ['H', 'C']); `TnqError` on an unknown symbol."""
    if symbols is None:
        return None
    from ase.data import atomic_numbers as numbers_by_symbol

    unknown = [symbol for symbol in symbols if symbol.strip().capitalize() not in numbers_by_symbol]
    if unknown:
        raise TnqError(f"`elements`: unknown element symbol(s) {', '.join(unknown)}; use symbols such as H,C,N,O")
    return frozenset(numbers_by_symbol[symbol.strip().capitalize()] for symbol in symbols)
