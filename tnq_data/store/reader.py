"""Reading stores as numpy arrays: whole shards, whole columns, single conformers and molecules.

A `Store` holds no zarr objects between calls, only its manifest and a small cache of decoded shards, so it
can be pickled into spawned workers and used after a fork (zarr 3 resets its event loop in forked children).
"""

import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from tnq_core.errors import TnqError
from tnq_data.store.arrays import read_checked
from tnq_data.store.format import OFFSET_COLUMNS
from tnq_data.store.manifest import read_manifest

_STRUCTURE = ("molecule", "atom_offset", "conformer_offset")
#: Most threads `Store.map_shards` uses by default.
MAP_WORKERS = 8

T = TypeVar("T")


@dataclass
class Shard:
    """One shard's columns (`arrays`, offsets local to the shard) and where it starts in the store."""

    index: int
    arrays: dict[str, np.ndarray]
    axes: dict[str, str]
    first_molecule: int
    first_conformer: int
    first_atom: int

    @property
    def n_conformers(self) -> int:
        return len(self.arrays["atom_offset"]) - 1


class Store:
    """A read-only view of one version of a store. Create it with `open_store`.

    Every array read is checked: its chunk checksum (on decode), its shape against the manifest and, with
    `verify`, its content hash against the manifest. A damaged array raises `DamagedArray` (a `TnqError`).
    """

    def __init__(self, root: Path, manifest: dict, cache_shards: int = 4, verify: bool = True) -> None:
        self.root = root
        self.manifest = manifest
        self.cache_shards = cache_shards
        self.verify = verify
        self._cache: OrderedDict[int, Shard] = OrderedDict()
        counts = {axis: np.cumsum([0] + [s[f"{axis}s"] for s in manifest["shards"]]) for axis in ("molecule", "conformer", "atom")}
        self._starts = counts

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": OrderedDict()}

    def __len__(self) -> int:
        return self.n_conformers

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r}, version={self.version!r}, conformers={self.n_conformers})"

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def parent(self) -> str | None:
        return self.manifest["parent"]

    @property
    def n_molecules(self) -> int:
        return self.manifest["counts"]["molecule"]

    @property
    def n_conformers(self) -> int:
        return self.manifest["counts"]["conformer"]

    @property
    def n_atoms(self) -> int:
        return self.manifest["counts"]["atom"]

    @property
    def n_shards(self) -> int:
        return len(self.manifest["shards"])

    @property
    def columns(self) -> list[str]:
        """Names of all columns, sorted."""
        return sorted(self.manifest["arrays"])

    @property
    def tables(self) -> dict[str, list]:
        return self.manifest["tables"]

    def column_info(self, name: str) -> dict:
        """Axis, dtype, shape (over the whole store) and unit of column `name`."""
        entry = self._entry(name)
        rows = self.manifest["counts"][entry["axis"]] + (1 if name in OFFSET_COLUMNS else 0)
        return {"name": name, "axis": entry["axis"], "dtype": entry["dtype"],
                "shape": [rows, *entry["inner_shape"]], "unit": entry["unit"]}

    def _entry(self, name: str) -> dict:
        try:
            return self.manifest["arrays"][name]
        except KeyError:
            raise TnqError(f"{self.root}: no column {name!r} in version {self.version} (columns: {', '.join(self.columns)})") from None

    def _read(self, name: str, shard: int) -> np.ndarray:
        entry = self._entry(name)
        part = entry["shards"][shard]
        axis = entry["axis"]
        rows = self.manifest["shards"][shard][f"{axis}s"] + (1 if name in OFFSET_COLUMNS else 0)
        return read_checked(self.root, part["path"], (rows, *entry["inner_shape"]), part["hash"] if self.verify else None)

    def _load(self, index: int, columns: list[str] | None) -> Shard:
        if not 0 <= index < self.n_shards:
            raise IndexError(f"shard {index} out of range 0..{self.n_shards - 1}")
        names = self.columns if columns is None else sorted(set(columns) | set(_STRUCTURE))
        return Shard(index, {name: self._read(name, index) for name in names},
                     {name: self._entry(name)["axis"] for name in names},
                     int(self._starts["molecule"][index]), int(self._starts["conformer"][index]),
                     int(self._starts["atom"][index]))

    def shard(self, index: int, columns: list[str] | None = None) -> Shard:
        """Shard `index` with `columns` (all when None) plus the structure columns, one whole read each.

        Shards read with all columns stay in a small LRU cache (`cache_shards` of them).
        """
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        shard = self._load(index, columns)
        if columns is None:
            self._cache[index] = shard
            while len(self._cache) > self.cache_shards:
                self._cache.popitem(last=False)
        return shard

    def iter_shards(self, columns: list[str] | None = None) -> Iterator[Shard]:
        """Every shard in order, for one pass over a large store (read without filling the cache)."""
        for index in range(self.n_shards):
            yield self._passing(index, columns)

    def map_shards(self, function: Callable[[Shard], T], columns: list[str] | None = None,
                   workers: int | None = None) -> list[T]:
        """[function(shard) for shard in self.iter_shards(columns)], with `workers` shards read and processed at
        once in threads (decoding and most numpy operations release the GIL); by default as many as the
        cores this process may use, at most `MAP_WORKERS`. About `workers` shards are in memory at a time."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        with ThreadPoolExecutor(workers or min(cores, MAP_WORKERS)) as pool:
            return list(pool.map(lambda index: function(self._passing(index, columns)), range(self.n_shards)))

    def _passing(self, index: int, columns: list[str] | None) -> Shard:
        """Shard `index` for one pass over the store: from the cache if there, else read without caching it."""
        return self._cache.get(index) or self._load(index, columns)

    def column(self, name: str) -> np.ndarray:
        """The whole column over all shards; offset columns come back global, with one final end row."""
        parts = [self._read(name, k) for k in range(self.n_shards)]
        if name not in OFFSET_COLUMNS:
            return np.concatenate(parts)
        axis = "atom" if name == "atom_offset" else "conformer"
        starts = self._starts[axis]
        return np.concatenate([part[:-1] + starts[k] for k, part in enumerate(parts)] + [starts[-1:]])

    def _locate(self, index: int, axis: str) -> tuple[Shard, int]:
        total = self.manifest["counts"][axis]
        if not -total <= index < total:
            raise IndexError(f"{axis} {index} out of range for a store of {total} {axis}s")
        index %= total
        shard_index = int(np.searchsorted(self._starts[axis], index, side="right")) - 1
        shard = self.shard(shard_index)
        return shard, index - int(self._starts[axis][shard_index])

    def conformer(self, index: int) -> dict[str, np.ndarray]:
        """Conformer `index`: every conformer and atom column (e.g. z (N,), pos (N,3) Å, energy eV)."""
        shard, local = self._locate(index, "conformer")
        return conformer_record(shard, local)

    def molecule(self, index: int) -> dict:
        """Molecule `index`: its molecule columns and `conformers`, the global range (start, stop)."""
        shard, local = self._locate(index, "molecule")
        record = {name: values[local] for name, values in shard.arrays.items()
                  if shard.axes[name] == "molecule" and name != "conformer_offset"}
        offsets = shard.arrays["conformer_offset"]
        start = shard.first_conformer
        record["conformers"] = (start + int(offsets[local]), start + int(offsets[local + 1]))
        record["index"] = index % self.n_molecules
        return record

    def iter_conformers(self) -> Iterator[dict[str, np.ndarray]]:
        """Every conformer in store order (shard by shard, each shard read once)."""
        for shard in self.iter_shards():
            for local in range(shard.n_conformers):
                yield conformer_record(shard, local)


def conformer_record(shard: Shard, local: int) -> dict[str, np.ndarray]:
    """Conformer `local` of `shard` as a dict of its conformer values and atom slices."""
    offsets = shard.arrays["atom_offset"]
    a0, a1 = offsets[local], offsets[local + 1]
    record = {}
    for name, values in shard.arrays.items():
        axis = shard.axes[name]
        if axis == "atom":
            record[name] = values[a0:a1]
        elif axis == "conformer" and name != "atom_offset":
            record[name] = values[local]
    return record


def open_store(path: Path | str, version: str | None = None, cache_shards: int = 4, verify: bool = True) -> Store:
    """Open version `version` (HEAD when None) of the store at `path` for reading.

    The manifest is checked on open (`TnqError` if damaged). With `verify` (the default) each array's content
    hash is checked as it is read, at a cost of about 2% of streaming time (bench/bench_store.py); without
    it, only chunk checksums and shapes are.
    """
    root = Path(path)
    return Store(root, read_manifest(root, version), cache_shards, verify)
