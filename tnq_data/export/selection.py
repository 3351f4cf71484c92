"""What an export reads: a store version, optionally only the molecules of one split of a training run, shard
by shard as arrays (never every conformer in Python objects at once).

A run directory (written by `tnq-train`) holds `splits.npz` (molecule indices of train/val/test) and
`data.json` (the store path and the version it trained on). Both are plain files, read here with numpy and
json, so the data layer needs nothing of the model package.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tnq_core.errors import TnqError
from tnq_data.store import Store, open_store
from tnq_data.store.format import CHARGE_PREFIX

SPLITS = ("train", "val", "test")
#: Conformer and atom columns an export reads (plus `forces` and `charges/<scheme>` where present).
_BASE_COLUMNS = ["z", "pos", "energy", "total_charge", "multiplicity", "source_id", "subset"]


@dataclass
class Block:
    """The selected conformers of one shard, in store order: C conformers, A atoms.

    z (A,) uint8, pos (A,3) Å, forces (A,3) eV/Å or None, charges {scheme: (A,) e}, atom_offset (C+1,)
    local, energy (C,) eV, total_charge (C,) e, multiplicity (C,) 2S+1, molecule (C,) global molecule index,
    source_id and subset (C,) str of each conformer's molecule.
    """

    z: np.ndarray
    pos: np.ndarray
    forces: np.ndarray | None
    charges: dict[str, np.ndarray]
    atom_offset: np.ndarray
    energy: np.ndarray
    total_charge: np.ndarray
    multiplicity: np.ndarray
    molecule: np.ndarray
    source_id: np.ndarray
    subset: np.ndarray

    def __len__(self) -> int:
        return len(self.energy)

    @property
    def n_atoms(self) -> np.ndarray:
        """(C,) atoms per conformer."""
        return np.diff(self.atom_offset)

    def part(self, start: int, stop: int) -> "Block":
        """Conformers `start:stop` of this block (views, offsets from 0)."""
        a0, a1 = int(self.atom_offset[start]), int(self.atom_offset[stop])
        atoms = slice(a0, a1)
        return Block(self.z[atoms], self.pos[atoms], None if self.forces is None else self.forces[atoms],
                     {s: v[atoms] for s, v in self.charges.items()}, self.atom_offset[start:stop + 1] - a0,
                     *(getattr(self, name)[start:stop] for name in ("energy", "total_charge", "multiplicity",
                                                                    "molecule", "source_id", "subset")))

    def parts(self, size: int) -> Iterator["Block"]:
        """This block in parts of at most `size` conformers (bounds the memory of text formats)."""
        for start in range(0, len(self), size):
            yield self.part(start, min(start + size, len(self)))


@dataclass
class Selection:
    """A store version and the molecules to export (None: all)."""

    store: Store
    molecules: np.ndarray | None = None

    @property
    def n_conformers(self) -> int:
        """Conformers that will be exported."""
        if self.molecules is None:
            return self.store.n_conformers
        offsets = self.store.column("conformer_offset")
        return int((offsets[self.molecules + 1] - offsets[self.molecules]).sum())

    @property
    def charge_schemes(self) -> list[str]:
        """Schemes of the store's `charges/<scheme>` columns, sorted."""
        return [name[len(CHARGE_PREFIX):] for name in self.store.columns if name.startswith(CHARGE_PREFIX)]


def read_run(run: Path, split: str) -> tuple[str, np.ndarray]:
    """(store version the run trained on, sorted molecule indices of `split`) from a run directory."""
    run = Path(run)
    if not run.is_dir():
        raise TnqError(f"{run}: no such run directory; pass the --out folder of a tnq-train run as `run`")
    data_file, splits_file = run / "data.json", run / "splits.npz"
    for needed in (data_file, splits_file):
        if not needed.is_file():
            raise TnqError(f"{run} has no {needed.name}; is it a run directory written by tnq-train?")
    try:
        version = json.loads(data_file.read_text())["version"]
        with np.load(splits_file) as saved:
            if split not in saved.files:
                raise TnqError(f"{splits_file} has no split {split!r} (it has {', '.join(saved.files)}); "
                               f"choose one of them for `split`")
            molecules = np.asarray(saved[split], dtype=np.int64)
    except (ValueError, KeyError, OSError) as err:
        raise TnqError(f"{run}: cannot read data.json/splits.npz ({type(err).__name__}: {err}); "
                       "is it a run directory written by tnq-train?") from err
    return version, np.sort(molecules)


def select(store_path: Path, run: Path | None = None, split: str | None = None) -> Selection:
    """The store at `store_path` (HEAD), or with `run` and `split` the version the run trained on and the
    molecules of that split. `TnqError` when only one of them is given, when the store does not hold the run's
    version, or when the split names molecules the store does not have."""
    if (run is None) != (split is None):
        raise TnqError("`split` and `run` go together: pass both to export one split of a run, or neither")
    if split is not None and split not in SPLITS:
        raise TnqError(f"`split` {split!r} is not one of {', '.join(SPLITS)}")
    store_path = Path(store_path)
    if run is None:
        return Selection(open_store(store_path))
    version, molecules = read_run(run, split)
    if not (store_path / "versions" / f"{version}.json").is_file():
        raise TnqError(f"{run} was trained on store version {version}, which {store_path} does not hold; pass the "
                       "store the run trained on (its data.json names it)")
    store = open_store(store_path, version=version)
    if len(molecules) and (molecules[0] < 0 or molecules[-1] >= store.n_molecules):
        raise TnqError(f"{run}/splits.npz names molecule {int(molecules[-1])} but version {version} of {store_path} "
                       f"has {store.n_molecules}; the run's splits do not belong to this store")
    return Selection(store, molecules)


def iter_blocks(selection: Selection) -> Iterator[Block]:
    """The selected conformers, one `Block` per shard (each shard read once, only the columns exported)."""
    store = selection.store
    with_forces = "forces" in store.columns
    schemes = selection.charge_schemes
    columns = _BASE_COLUMNS + (["forces"] if with_forces else []) + [CHARGE_PREFIX + s for s in schemes]
    for shard in store.iter_shards(columns):
        arrays = shard.arrays
        conformer_molecule = arrays["molecule"]
        keep = (np.ones(len(conformer_molecule), dtype=bool) if selection.molecules is None
                else np.isin(conformer_molecule, selection.molecules))
        if not keep.any():
            continue
        offsets = arrays["atom_offset"]
        atom_keep = np.repeat(keep, np.diff(offsets))
        local_molecule = conformer_molecule[keep] - shard.first_molecule
        yield Block(
            z=arrays["z"][atom_keep], pos=arrays["pos"][atom_keep],
            forces=arrays["forces"][atom_keep] if with_forces else None,
            charges={s: arrays[CHARGE_PREFIX + s][atom_keep] for s in schemes},
            atom_offset=np.concatenate([[0], np.cumsum(np.diff(offsets)[keep])]).astype(np.int64),
            energy=arrays["energy"][keep], total_charge=arrays["total_charge"][keep],
            multiplicity=arrays["multiplicity"][keep], molecule=conformer_molecule[keep],
            source_id=arrays["source_id"][local_molecule], subset=arrays["subset"][local_molecule])
