"""The setup cache: what a run's setup derives from a store's data, kept on disk so that the next run on the
same data reaches its first batch at once, however large the store (docs/training.md, "Setup cache").

Two kinds of entry, one .npz file each, named by the sha256 of what they depend on:

- splits: the molecules of each split drawn from a `SplitConfig` (key: the content hashes of the columns they
  are drawn from, and that config);
- fit: each split's usable conformers (packed bits), the references and the loss scales (key: the content
  hashes of the columns the fit reads, the splits' content and every setting the fit reads; not the network's
  shape, so a sweep over it hits).

A column's content hash changes with its data, and the tnq version and `FORMAT` are in every key, so an entry
cannot go stale; a store version that adds a column the run does not read keeps its entries. Entries are
written atomically; one that cannot be read or does not fit the store (or that holds another key: a file
copied under another name) is computed again and replaced; one that cannot be written is skipped: the cache
only ever saves time.
"""

import contextlib
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np

from tnq_data.store.reader import Store

from .config import SplitConfig, TrainConfig
from .loss import LossScales
from .references import References
from .splits import SPLITS

#: Bumped whenever what an entry holds, or how setup computes it (splits, fit, SCALE_ATOMS), changes.
FORMAT = 1
#: ModelConfig keys that shape only the network: the references and scales do not depend on them.
NETWORK_ONLY = frozenset({"hidden_channels", "num_layers", "num_rbf", "trainable_rbf", "state_mode", "lambda_mode"})
_SCALES = ("energy", "forces", "charges", "dipole")  # LossScales' fields, in the order they are stored
#: The store columns the splits are drawn from (`setup.new_splits`): molecules, atoms, element counts, states.
SPLIT_COLUMNS = ("conformer_offset", "atom_offset", "z", "composition", "total_charge", "multiplicity")
PARTIAL = ".partial"  # suffix of an entry being written
#: What np.load raises on a file that is missing, truncated or not an .npz.
_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile)


@dataclass
class Fit:
    """What the training split fixes before training: the references, the network's energy scale (eV) and the
    loss scales."""

    references: References
    scale: float
    loss: LossScales


def default_directory() -> Path:
    """``$TNQ_SETUP_CACHE`` if set, else ``~/.cache/tnq/setup``."""
    env = os.environ.get("TNQ_SETUP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "tnq" / "setup"


def splits_key(store: Store, split: SplitConfig) -> str:
    """The key of the splits drawn from `split` on `store`'s `SPLIT_COLUMNS`."""
    return _key("splits", data=_column_hashes(store, SPLIT_COLUMNS), split=split.model_dump())


def fit_key(store: Store, splits: dict[str, np.ndarray], config: TrainConfig) -> str:
    """The key of the usable conformers, references and scales of `config` on `splits` of `store` (each split's
    molecule indices, hashed whole)."""
    digest = hashlib.sha256()
    for name in SPLITS:
        values = np.ascontiguousarray(splits[name], np.int64)
        digest.update(f"{name}:{len(values)};".encode())
        digest.update(values)
    columns = (*SPLIT_COLUMNS, "pos", "forces", "dipole", config.target, *config.partial_charges,
               *[config.charge_target] * (config.charge_target is not None))
    return _key("fit", data=_column_hashes(store, columns), splits=digest.hexdigest(), target=config.target,
                partial_charges=config.partial_charges, charge_target=config.charge_target,
                dipole=config.supervises_dipole, references=config.references,
                model=config.model.model_dump(mode="json", exclude=set(NETWORK_ONLY)))


def _column_hashes(store: Store, columns: tuple[str, ...]) -> dict[str, str]:
    """The content hashes (over every shard's) of those of `columns` that `store` has: the data an entry
    depends on, so that a version that adds or changes other columns (e.g. `tnq-data charges`) keeps it."""
    arrays = store.manifest["arrays"]
    return {name: arrays[name]["hash"] for name in columns if name in arrays}


def _key(kind: str, **parts: object) -> str:
    text = json.dumps({"kind": kind, "format": FORMAT, "tnq": package_version("tnq"), **parts}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class SetupCache:
    """Entries in `directory`; a cache that is off (`directory` None) holds nothing and keeps nothing."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def splits(self, key: str, n_molecules: int) -> dict[str, np.ndarray] | None:
        """The cached splits of `key` (sorted int64 molecule indices below `n_molecules`), or None."""
        arrays = self._read(key)
        if arrays is None or any(name not in arrays or arrays[name].dtype != np.int64 or arrays[name].ndim != 1
                                 for name in SPLITS):
            return None
        if any(len(arrays[name]) and not 0 <= arrays[name][0] <= arrays[name][-1] < n_molecules for name in SPLITS):
            return None
        return {name: arrays[name] for name in SPLITS}

    def put_splits(self, key: str, store: Store, splits: dict[str, np.ndarray]) -> None:
        self._write(key, "splits", store, {name: splits[name] for name in SPLITS})

    def fit(self, key: str, n_conformers: int) -> tuple[dict[str, np.ndarray], Fit] | None:
        """The cached (C,) bool usable conformers of each split and the fit of `key`, or None (also when the
        entry holds another number of conformers than `n_conformers`)."""
        arrays = self._read(key)
        try:
            if arrays is None or int(arrays["conformers"]) != n_conformers or any(
                    arrays[name].shape != (-(-n_conformers // 8),) for name in SPLITS):
                return None
            selected = {name: np.unpackbits(arrays[name], count=n_conformers).view(bool) for name in SPLITS}
            references = References(arrays["atom_refs"], arrays["charges"].tolist(), arrays["charge_offsets"],
                                    arrays["multiplicities"].tolist(), arrays["multiplicity_offsets"])
            loss = LossScales(**dict(zip(_SCALES, arrays["loss_scales"].tolist(), strict=True)))
            return selected, Fit(references, float(arrays["scale"]), loss)
        except (KeyError, ValueError, TypeError):
            return None

    def put_fit(self, key: str, store: Store, selected: dict[str, np.ndarray], fit: Fit) -> None:
        refs = fit.references
        self._write(key, "fit", store, {
            "conformers": np.int64(len(selected["train"])), **{name: np.packbits(selected[name]) for name in SPLITS},
            "atom_refs": refs.atom_refs, "charges": np.asarray(refs.charges, np.int64),
            "charge_offsets": refs.charge_offsets, "multiplicities": np.asarray(refs.multiplicities, np.int64),
            "multiplicity_offsets": refs.multiplicity_offsets, "scale": np.float64(fit.scale),
            "loss_scales": np.array([getattr(fit.loss, name) for name in _SCALES], np.float64)})

    def holds(self, key: str) -> bool:
        """Whether an entry of `key` is on disk."""
        return self.directory is not None and (self.directory / f"{key}.npz").is_file()

    def _read(self, key: str) -> dict[str, np.ndarray] | None:
        if self.directory is None:
            return None
        try:
            with np.load(self.directory / f"{key}.npz", allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except _UNREADABLE:
            return None
        return arrays if str(arrays.pop("key", "")) == key else None  # not a file copied under another name

    def _write(self, key: str, kind: str, store: Store, arrays: dict[str, np.ndarray]) -> None:
        """Keep `arrays` under `key`, with what `list_entries` shows: the kind and the store that made it."""
        if self.directory is None:
            return
        partial = self.directory / f".{key}.{os.getpid()}{PARTIAL}"
        about = {"kind": kind, "store": str(Path(store.root).resolve()), "version": store.version}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as handle:
                np.savez(handle, key=np.str_(key), **{name: np.str_(value) for name, value in about.items()},
                         **arrays)
            os.replace(partial, self.directory / f"{key}.npz")
        except OSError:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)


def list_entries(directory: Path) -> list[dict]:
    """The entries in `directory` (none when it does not exist), oldest first: file, kind ("splits", "fit" or
    "unreadable"), the store that made it (its directory and version; another store with the same data reads
    it too), bytes and modified (ISO 8601, UTC)."""
    paths = sorted(directory.glob("*.npz"), key=lambda path: path.stat().st_mtime) if directory.is_dir() else []
    found = []
    for path in paths:
        stat = path.stat()
        modified = datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(timespec="seconds")
        found.append({"file": path.name, **_about(path), "bytes": stat.st_size, "modified": modified})
    return found


def clear_entries(directory: Path) -> tuple[int, int]:
    """Delete every entry in `directory`, and files that writers left half-written: (files, bytes) deleted."""
    files, size = 0, 0
    for path in [*directory.glob("*.npz"), *directory.glob(f".*{PARTIAL}")] if directory.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):  # another process may replace or delete it meanwhile
            size += path.stat().st_size
            path.unlink()
            files += 1
    return files, size


def _about(path: Path) -> dict[str, str | None]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: str(data[name]) for name in ("kind", "store", "version")}
    except (*_UNREADABLE, KeyError):
        return {"kind": "unreadable", "store": None, "version": None}
