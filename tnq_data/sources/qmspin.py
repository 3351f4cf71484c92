"""Curate QMspin Part 1 (carbene singlet and triplet structures as xyz files) into a store.

Assumed layout (see docs/sources.md, "QMspin"): xyz files anywhere below the folder or archive; the file
name ends in ``<QM9 index><sep><carbene index>[_-]<s|t>.xyz``; a folder name containing ``singlet`` or
``triplet``, where present, must agree with that suffix. The comment line holds ``;``-separated fields, exactly
one of which names MRCISD+Q (e.g. ``MRCISD+Q-F12 energy: -154.123456``) and holds exactly one decimal number,
its energy in hartree. Coordinates are in Å, separated by spaces and/or commas.
"""

import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers as NUMBERS_BY_SYMBOL

from tnq_data.chem import multiplicity_consistent
from tnq_data.curate import DropCounts, MoleculeRecord, file_input, folder_input, to_batch
from tnq_core.errors import TnqError
from tnq_core.progress import SILENT, Reporter
from tnq_data.sources.archive import safe_extract, source_record
from tnq_data.sources.atom_order import reference_order
from tnq_data.sources.checksums import read_record
from tnq_data.store import write_store
from tnq_data.units import HARTREE_TO_EV

SUBSET = "QMspin Part 1"
MULTIPLICITY = {"s": 1, "t": 3}
_NAME = re.compile(r"(\d+)\D+(\d+)[_-]?([st])$")
_NUMBER = re.compile(r"[-+]?(\d+\.\d*|\.\d+)([eEdD][-+]?\d+)?")
_ENERGY_FIELD = re.compile(r"MRCISD\+Q", re.IGNORECASE)
#: Molecules per batch handed to the writer.
BATCH_MOLECULES = 2048


@dataclass
class Structure:
    """One optimised structure: z (N,), pos (N,3) Å, MRCISD+Q-F12 energy in hartree, multiplicity 1 or 3."""

    qm9: int
    carbene: int
    multiplicity: int
    z: np.ndarray
    pos: np.ndarray
    energy_hartree: float
    path: Path


def parse_name(path: Path, root: Path) -> tuple[int, int, int]:
    """(QM9 index, carbene index, multiplicity) from a file name and its folders below `root`.

    `TnqError` if the name does not fit or a ``singlet``/``triplet`` folder contradicts the suffix.
    """
    match = _NAME.search(path.stem)
    if match is None:
        raise TnqError(f"{path}: file name does not end in <QM9 index>_<carbene index>_<s|t>; cannot tell the"
                       " molecule and spin state, remove or rename the file")
    multiplicity = MULTIPLICITY[match.group(3)]
    folders = {state for part in path.parent.relative_to(root).parts for state, word in ((1, "singlet"), (3, "triplet"))
               if word in part.lower()}
    if folders and folders != {multiplicity}:
        raise TnqError(f"{path}: suffix '{match.group(3)}' contradicts its folder; check the archive layout")
    return int(match.group(1)), int(match.group(2)), multiplicity


def parse_energy(comment: str, path: Path) -> float:
    """The MRCISD+Q energy (hartree) of a comment line; `TnqError` naming file and line 2 unless exactly one fits."""
    fields = [field for field in comment.split(";") if _ENERGY_FIELD.search(field)]
    numbers = [token for field in fields for token in re.split(r"[\s:=,()\[\]]+", field) if _NUMBER.fullmatch(token)]
    if len(fields) != 1 or len(numbers) != 1:
        raise TnqError(f"{path}: line 2: expected one ';'-separated field naming MRCISD+Q with one decimal energy"
                       f" in hartree, found {len(fields)} field(s) and {len(numbers)} number(s) in {comment.strip()!r};"
                       " see docs/sources.md for the assumed layout")
    energy = float(numbers[0].replace("d", "e").replace("D", "e"))
    if energy >= 0:
        raise TnqError(f"{path}: line 2: energy {energy} is not a negative total energy in hartree; check the file")
    return energy


def read_structure(path: Path, root: Path) -> Structure:
    """Parse one QMspin xyz file below `root`; `TnqError` naming file and line when it does not fit the layout."""
    qm9, carbene, multiplicity = parse_name(path, root)
    lines = path.read_text().splitlines()
    try:
        n_atoms = int(lines[0].strip())
    except (IndexError, ValueError):
        raise TnqError(f"{path}: line 1: expected the number of atoms; not an xyz file") from None
    if n_atoms < 1 or len(lines) < 2 + n_atoms:
        raise TnqError(f"{path}: expected {n_atoms} atom lines after the comment line, found {max(len(lines) - 2, 0)}")
    energy = parse_energy(lines[1], path)
    z = np.empty(n_atoms, dtype=np.int64)
    pos = np.empty((n_atoms, 3), dtype=np.float64)
    for i, line in enumerate(lines[2:2 + n_atoms]):
        tokens = [t for t in re.split(r"[\s,]+", line.strip().replace("*^", "e")) if t]
        try:
            z[i] = NUMBERS_BY_SYMBOL[tokens[0].capitalize()]
            pos[i] = [float(t) for t in tokens[1:]]
        except (KeyError, ValueError, IndexError):
            raise TnqError(f"{path}: line {i + 3}: expected 'element x y z', got {line.strip()!r}") from None
    if not np.isfinite(pos).all():
        raise TnqError(f"{path}: non-finite coordinates; check the file")
    if not multiplicity_consistent(z, 0, multiplicity):
        raise TnqError(f"{path}: a neutral molecule with {int(z.sum())} electrons cannot have multiplicity"
                       f" {multiplicity}; the atoms or the spin suffix are wrong")
    return Structure(qm9, carbene, multiplicity, z, pos.astype(np.float32), energy, path)


def group_carbenes(structures: list[Structure]) -> list[list[Structure]]:
    """Structures grouped by (QM9 index, carbene index), sorted, singlet before triplet within a carbene; every
    member in the atom order of the first (`reference_order`), so the molecule has one atom order."""
    groups: dict[tuple[int, int], list[Structure]] = {}
    for structure in sorted(structures, key=lambda s: (s.qm9, s.carbene, s.multiplicity)):
        members = groups.setdefault((structure.qm9, structure.carbene), [])
        if members and members[-1].multiplicity == structure.multiplicity:
            raise TnqError(f"{structure.path} duplicates {members[-1].path} (same carbene and spin state); remove one")
        if members and not np.array_equal(np.sort(members[0].z), np.sort(structure.z)):
            raise TnqError(f"{structure.path}: its atoms differ from those of {members[0].path}; check both files")
        if members:
            order = reference_order(members[0].z, members[0].pos, structure.z, structure.pos)
            structure = replace(structure, z=structure.z[order], pos=structure.pos[order])
        members.append(structure)
    return list(groups.values())


def carbene_record(members: list[Structure]) -> MoleculeRecord:
    """One molecule (a carbene) with a conformer per spin state; total charge 0, no forces, SMILES empty."""
    first = members[0]
    n = len(members)
    return MoleculeRecord(
        molecule={"smiles": "", "subset": SUBSET, "source_id": f"{first.qm9}_{first.carbene}"},
        conformer={"energy": np.array([s.energy_hartree for s in members]) * HARTREE_TO_EV,
                   "total_charge": np.zeros(n, dtype=np.int8),
                   "multiplicity": np.array([s.multiplicity for s in members], dtype=np.int8)},
        atom={"z": np.stack([s.z for s in members]).astype(np.uint8), "pos": np.stack([s.pos for s in members])},
    )


def curate_qmspin(source: Path, out: Path, reporter: Reporter = SILENT) -> str:
    """Curate QMspin Part 1 from a folder or an archive (tar/zip) into the store `out`; returns the version id."""
    source = Path(source)
    if not source.exists():
        raise TnqError(f"{source}: no such file or folder; fetch it with `tnq-data fetch qmspin`")
    if source.is_dir():
        return _curate_folder(source, out, reporter, source_input(source))
    entry = source_input(source)
    with tempfile.TemporaryDirectory(prefix="tnq-qmspin-") as tmp:
        folder = Path(tmp) / "extracted"
        safe_extract(source, folder)
        return _curate_folder(folder, out, reporter, entry)


def source_input(source: Path) -> dict:
    """Provenance of the curated archive or folder, with the sha256 recorded at the archive's download.

    An archive records it as ``first_download_sha256`` (and must still match it), a folder unpacked by
    ``tnq-data fetch qmspin --extract`` as ``extracted_from`` (the archive's name, sha256 and bytes).
    """
    if source.is_dir():
        entry = folder_input(source)
        if (archive := source_record(source)) is not None:
            entry["extracted_from"] = archive
        return entry
    entry = file_input(source)
    if (recorded := read_record(source)) is not None:
        if recorded != entry["sha256"]:
            raise TnqError(f"{source}: its sha256 {entry['sha256']} is not the {recorded} recorded at its download "
                           f"({source.name}.sha256), so it changed since; delete both and fetch it again")
        entry["first_download_sha256"] = recorded
    return entry


def _curate_folder(folder: Path, out: Path, reporter: Reporter, source: dict) -> str:
    paths = sorted(folder.rglob("*.xyz"))
    if not paths:
        raise TnqError(f"{folder}: no .xyz files found; is this the QMspin Part 1 archive?")
    with reporter.bar("read QMspin", len(paths)) as bar:
        structures = []
        for path in paths:
            structures.append(read_structure(path, folder))
            bar.update(0, advance=1)
    records = [carbene_record(members) for members in group_carbenes(structures)]
    counts = DropCounts()
    for record in records:
        counts.keep(len(record.conformer["energy"]))
    batches = (to_batch(records[i:i + BATCH_MOLECULES]) for i in range(0, len(records), BATCH_MOLECULES))
    provenance = {"command": "curate qmspin", "parameters": {}, "inputs": [source]}
    return write_store(out, batches, provenance=provenance, tables={"curation": counts.rows()})
