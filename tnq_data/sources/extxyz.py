"""Import extended XYZ files (energies in eV, forces in eV/Å, charge and multiplicity per frame) into a store."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tnq_data.chem import electron_count, multiplicity_consistent
from tnq_data.curate import DropCounts, MoleculeRecord, file_input, to_batch
from tnq_data.sources.labels import integer_label, spin_parity_error
from tnq_core.errors import TnqError
from tnq_core.progress import SILENT, Reporter
from tnq_data.store import write_store

#: Molecules per batch handed to the writer.
BATCH_MOLECULES = 1024
#: Where a frame's labels are read from, in messages.
INFO = "its info line"


@dataclass
class Frame:
    """One frame: z (N,), pos (N,3) Å, energy eV, forces (N,3) eV/Å or None, charge e, multiplicity 2S+1.

    `file` and `index` say where it came from; `group` is its molecule key value (None without a key).
    """

    z: np.ndarray
    pos: np.ndarray
    energy: float
    forces: np.ndarray | None
    charge: int
    multiplicity: int
    file: Path
    index: int
    group: object

    @property
    def where(self) -> str:
        return f"{self.file}: frame {self.index}"


def read_frames(path: Path, charge_key: str = "charge", spin_key: str = "multiplicity", energy_key: str = "energy",
                forces_key: str = "forces", molecule_key: str | None = None, default_charge: int | None = None,
                default_multiplicity: int | None = None) -> list[Frame]:
    """Read and check every frame of one extended XYZ file; `TnqError` naming file and frame on bad input.

    A frame without `charge_key`/`spin_key` takes the default, or is an error when no default is given.
    Frames whose electron count and multiplicity have the same parity are rejected.
    """
    import ase.io

    try:
        images = ase.io.read(path, index=":", format="extxyz")
    except FileNotFoundError as err:
        raise TnqError(f"{path}: no such file; check the path") from err
    except Exception as err:  # ase raises many types on malformed input
        raise TnqError(f"{path}: cannot read as extended XYZ ({type(err).__name__}: {err}); check the file format") from err
    frames = []
    for index, atoms in enumerate(images):
        where = f"{path}: frame {index}"
        if atoms.pbc.any():
            raise TnqError(f"{where} is periodic (pbc={atoms.pbc.tolist()}); only molecules can be imported")
        z = atoms.numbers.astype(np.int64)
        charge = integer_label(_info(atoms, charge_key), default_charge, charge_key, "`default_charge`", where, INFO)
        multiplicity = integer_label(_info(atoms, spin_key), default_multiplicity, spin_key, "`default_multiplicity`",
                                     where, INFO)
        if not multiplicity_consistent(z, charge, multiplicity):
            raise spin_parity_error(where, electron_count(z, charge), charge, multiplicity,
                                    f"fix '{charge_key}'/'{spin_key}' in its info line")
        energy = _info(atoms, energy_key)
        if energy is None:
            raise TnqError(f"{where} has no '{energy_key}' in its info line; add it or pass `energy_key`")
        forces = atoms.arrays.get(forces_key)
        if forces is None and atoms.calc is not None and forces_key == "forces":
            forces = atoms.calc.results.get("forces")
        group = _info(atoms, molecule_key) if molecule_key else None
        if molecule_key and group is None:
            raise TnqError(f"{where} has no '{molecule_key}' in its info line; add it or drop `molecule_key`")
        frames.append(Frame(z, atoms.positions.astype(np.float32), float(energy),
                            None if forces is None else np.asarray(forces, dtype=np.float32), charge, multiplicity,
                            path, index, group))
    return frames


def _info(atoms, key: str):
    """`key` from the info line; ASE moves ``energy`` into its calculator, so look there too."""
    if key in atoms.info:
        return atoms.info[key]
    if atoms.calc is not None:
        return atoms.calc.results.get(key)
    return None


def group_molecules(frames: list[Frame], by_key: bool) -> list[list[Frame]]:
    """Frames grouped into molecules: by key value in order of first appearance, else one frame per molecule."""
    if not by_key:
        return [[frame] for frame in frames]
    groups: dict[str, list[Frame]] = {}
    for frame in frames:
        groups.setdefault(str(frame.group), []).append(frame)
    for members in groups.values():
        for frame in members[1:]:
            if not np.array_equal(frame.z, members[0].z):
                raise TnqError(f"{frame.where}: its atoms differ from those of {members[0].where} with the same"
                               " molecule key; give different molecules different keys")
    return list(groups.values())


def molecule_record(members: list[Frame], with_forces: bool, by_key: bool) -> MoleculeRecord:
    """Stack the frames of one molecule into a record in store layout.

    `subset` is the file name of its first frame; `source_id` its key value, or ``<file name>:<frame>``.
    """
    first = members[0]
    source_id = str(first.group) if by_key else f"{first.file.name}:{first.index}"
    atom = {"z": np.stack([f.z for f in members]).astype(np.uint8), "pos": np.stack([f.pos for f in members])}
    if with_forces:
        atom["forces"] = np.stack([f.forces for f in members])
    conformer = {"energy": np.array([f.energy for f in members], dtype=np.float64),
                 "total_charge": np.array([f.charge for f in members], dtype=np.int8),
                 "multiplicity": np.array([f.multiplicity for f in members], dtype=np.int8)}
    return MoleculeRecord(molecule={"smiles": "", "subset": first.file.name, "source_id": source_id},
                          conformer=conformer, atom=atom)


def import_xyz(files: list[Path], out: Path, charge_key: str = "charge", spin_key: str = "multiplicity",
               energy_key: str = "energy", forces_key: str = "forces", molecule_key: str | None = None,
               default_charge: int | None = None, default_multiplicity: int | None = None,
               reporter: Reporter = SILENT) -> str:
    """Import extended XYZ `files` into the store `out`; returns the new version id.

    Each frame is one conformer; frames sharing the info value `molecule_key` form one molecule (else each
    frame is its own molecule). Forces are stored when every frame has them; energies in eV, forces in eV/Å.
    """
    files = [Path(f) for f in files]
    frames: list[Frame] = []
    with reporter.bar("import xyz", len(files)) as bar:
        for path in files:
            frames += read_frames(path, charge_key, spin_key, energy_key, forces_key, molecule_key, default_charge,
                                  default_multiplicity)
            bar.update(0, advance=1, status=f"{len(frames)} frames")
    if not frames:
        raise TnqError(f"no frames in {', '.join(map(str, files))}; nothing to import")
    with_forces = frames[0].forces is not None
    mixed = next((f for f in frames if (f.forces is not None) != with_forces), None)
    if mixed is not None:
        raise TnqError(f"{mixed.where}: forces ('{forces_key}') are present in some frames and absent in others;"
                       " give every frame forces or none")
    by_key = molecule_key is not None
    records = [molecule_record(members, with_forces, by_key) for members in group_molecules(frames, by_key)]
    counts = DropCounts()
    for record in records:
        counts.keep(len(record.conformer["energy"]))
    batches = (to_batch(records[i:i + BATCH_MOLECULES]) for i in range(0, len(records), BATCH_MOLECULES))
    parameters = {"charge_key": charge_key, "spin_key": spin_key, "energy_key": energy_key, "forces_key": forces_key,
                  "molecule_key": molecule_key, "default_charge": default_charge,
                  "default_multiplicity": default_multiplicity}
    provenance = {"command": "import xyz", "parameters": parameters, "inputs": [file_input(p) for p in files]}
    return write_store(out, batches, provenance=provenance, tables={"curation": counts.rows()})
