"""Writing stores: new versions from molecule batches, and new versions that add columns."""

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tnq_core.errors import TnqError
from tnq_data.store.arrays import PATH_HASH_CHARS, combine_hashes, content_hash, write_array
from tnq_data.store.durable import TMP_PREFIX, fsync_path, remove_temporaries, sync_dirs
from tnq_data.store.compositions import composition_column, derived_composition
from tnq_data.store.format import (AXES, BUILTIN_COLUMNS, DERIVED, Column, MoleculeBatch, cast_column,
                                   check_column_name, column_spec, concat_batches, dtype_name, slice_molecules)
from tnq_data.store.manifest import (LOCK, VERSIONS, content_id, is_store, make_provenance, new_manifest,
                                     read_manifest, write_version, writer_lock)

#: Target uncompressed size of a shard: large sequential reads, small enough to cache a few per worker.
DEFAULT_SHARD_BYTES = 32 * 2**20
#: Bytes counted per text value when sizing shards.
_TEXT_BYTES = 64
_STORE_ENTRIES = {LOCK, VERSIONS, "shards", "HEAD"}


def _row_bytes(columns: dict[str, np.ndarray]) -> int:
    """Bytes one row of these columns takes, uncompressed."""
    return sum(_TEXT_BYTES if a.dtype.kind in "OUT" else a.dtype.itemsize * int(np.prod(a.shape[1:])) for a in columns.values())


def _molecule_bytes(batch: MoleculeBatch) -> np.ndarray:
    """(M,) uncompressed bytes of each molecule of a validated batch."""
    n_conf = batch.molecule["n_conformers"]
    conf_start = np.concatenate([[0], np.cumsum(n_conf)[:-1]])
    atoms = np.add.reduceat(batch.conformer["n_atoms"], conf_start) if len(n_conf) else np.zeros(0, np.int64)
    return (atoms * _row_bytes(batch.atom) + n_conf * (_row_bytes(batch.conformer) + 16)
            + _row_bytes(batch.molecule) + 8)


class _ShardedColumns:
    """Accumulates array entries of the manifest, shard by shard, and the directories they were written in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.arrays: dict[str, dict] = {}
        self.dirs: set[Path] = set()

    def put(self, shard: int, name: str, axis: str, values: np.ndarray, unit: str | None) -> None:
        digest = content_hash(values)
        relpath = f"shards/{shard:05d}/{name}.{digest[:PATH_HASH_CHARS]}"
        write_array(self.root, relpath, values, digest)
        self.dirs.add((self.root / relpath).parent)
        entry = self.arrays.setdefault(name, {"axis": axis, "dtype": dtype_name(values),
                                              "inner_shape": list(values.shape[1:]), "unit": unit, "shards": []})
        entry["shards"].append({"path": relpath, "hash": digest})

    def finish(self) -> dict[str, dict]:
        for entry in self.arrays.values():
            entry["hash"] = combine_hashes([s["hash"] for s in entry["shards"]])
        return self.arrays


class StoreWriter:
    """Streams molecule batches into shards of about `shard_bytes`, cut at molecule boundaries.

    A shard closes at the first molecule at which its size reaches `shard_bytes`, so the layout depends only
    on the data and its order, never on how it was split into batches (or by how many workers).
    """

    def __init__(self, root: Path, shard_bytes: int = DEFAULT_SHARD_BYTES) -> None:
        self.root = root
        self.shard_bytes = shard_bytes
        self.columns = _ShardedColumns(root)
        self.shards: list[dict] = []
        self._pending: list[MoleculeBatch] = []
        self._pending_sizes: list[np.ndarray] = []   # (M,) bytes of each pending molecule, per batch
        self._pending_bytes = 0
        self._names: dict[str, list[str]] | None = None

    def append(self, batch: MoleculeBatch) -> None:
        """Add whole molecules after those already appended."""
        batch = batch.validated()
        names = {axis: sorted(batch.axis(axis)) for axis in AXES}
        if self._names is None:
            self._names = names
        elif names != self._names:
            raise TnqError(f"batch columns {names} differ from the first batch's {self._names}; every batch needs the same columns")
        if batch.n_molecules == 0:
            return
        sizes = _molecule_bytes(batch)
        self._pending.append(batch)
        self._pending_sizes.append(sizes)
        self._pending_bytes += int(sizes.sum())
        if self._pending_bytes >= self.shard_bytes:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        batch, sizes = concat_batches(self._pending), np.concatenate(self._pending_sizes)
        self._pending, self._pending_sizes, self._pending_bytes = [], [], 0
        cumulative = np.cumsum(sizes)
        start = 0
        while start < batch.n_molecules:
            base = cumulative[start - 1] if start else 0
            full = np.flatnonzero(cumulative[start:] - base >= self.shard_bytes)
            if not len(full) and not final:
                rest = slice_molecules(batch, start, batch.n_molecules)
                self._pending, self._pending_sizes = [rest], [sizes[start:]]
                self._pending_bytes = int(cumulative[-1] - base)
                return
            stop = start + int(full[0]) + 1 if len(full) else batch.n_molecules
            self._write_shard(slice_molecules(batch, start, stop))
            start = stop

    def _write_shard(self, batch: MoleculeBatch) -> None:
        index = len(self.shards)
        first_molecule = sum(s["molecules"] for s in self.shards)
        n_conf, n_atoms = batch.molecule["n_conformers"], batch.conformer["n_atoms"]
        atom_offset = np.concatenate([[0], np.cumsum(n_atoms)])
        derived = {
            "molecule": ("conformer", np.repeat(np.arange(first_molecule, first_molecule + len(n_conf)), n_conf)),
            "atom_offset": ("conformer", atom_offset),
            "conformer_offset": ("molecule", np.concatenate([[0], np.cumsum(n_conf)])),
            "composition": ("conformer", composition_column(batch.atom["z"], atom_offset)),
        }
        for axis in AXES:
            for name, values in batch.axis(axis).items():
                if name not in ("n_conformers", "n_atoms"):
                    self.columns.put(index, name, axis, values, column_spec(name, values, axis)[2])
        for name, (axis, values) in derived.items():
            self.columns.put(index, name, axis, values.astype(BUILTIN_COLUMNS[name][1]), None)
        self.shards.append({"molecules": len(n_conf), "conformers": len(n_atoms), "atoms": int(n_atoms.sum())})

    def close(self) -> tuple[dict, list[dict], dict[str, dict]]:
        """Write what is pending; return (counts, shards, arrays) for the manifest."""
        if self._pending:
            self._flush(final=True)
        if not self.shards:
            raise TnqError(f"nothing to write to {self.root}: no molecule passed curation (see the drop counts)")
        counts = {axis: sum(s[f"{axis}s"] for s in self.shards) for axis in AXES}
        return counts, self.shards, self.columns.finish()


def _check_root(root: Path) -> None:
    """Refuse a path that is neither a store nor empty (a crashed first write counts as a store)."""
    if root.exists() and not root.is_dir():
        raise TnqError(f"{root} is a file, not a store directory; choose another `out`")
    if root.is_dir() and not is_store(root):
        foreign = sorted(p.name for p in root.iterdir() if p.name not in _STORE_ENTRIES and not p.name.startswith(TMP_PREFIX))
        if foreign:
            raise TnqError(f"{root} exists and is not a tnq store (it holds {foreign[0]}); choose a new or empty directory")


def _commit(root: Path, parent: str | None, counts: dict, shards: list, arrays: dict, tables: dict,
            provenance: dict | None, dirs: set[Path]) -> str:
    """Write the new version unless its content equals the parent's; return the resulting HEAD id.

    `dirs` received arrays (new, or repaired ones of the parent): they and their ancestors (and, for a new
    store, its parent directory) are flushed first, so that HEAD never names an array a power loss can take away.
    """
    sync_dirs(dirs, root)
    manifest = new_manifest(parent, counts, shards, arrays, tables, make_provenance(provenance, parent))
    if parent is not None and content_id(manifest) == content_id(read_manifest(root, parent)):
        return parent
    if parent is None:
        fsync_path(root.parent.resolve())
    write_version(root, manifest)
    return manifest["version"]


def write_store(root: Path | str, batches: Iterable[MoleculeBatch], *, provenance: dict | None = None,
                tables: dict[str, list] | None = None, shard_bytes: int = DEFAULT_SHARD_BYTES) -> str:
    """Write `batches` (whole molecules, in order) as a new version of the store at `root`; return its id.

    A new store has no parent; writing into an existing store makes a version whose parent is its HEAD
    (nothing is lost). Identical contents give the identical version id. The write is atomic and durable: until
    the final rename of HEAD, readers, a crash and a power loss see the previous version. `tables` is read after the last
    batch, so a batch generator may fill it (e.g. with drop counts) as it goes.
    """
    root = Path(root)
    _check_root(root)
    with writer_lock(root):
        remove_temporaries(root)
        parent = read_manifest(root)["version"] if is_store(root) else None
        writer = StoreWriter(root, shard_bytes)
        for batch in batches:
            writer.append(batch)
        counts, shards, arrays = writer.close()
        return _commit(root, parent, counts, shards, arrays, tables or {}, provenance, writer.columns.dirs)


def add_columns(root: Path | str, columns: dict[str, Column], *, provenance: dict | None = None,
                tables: dict[str, list] | None = None) -> str:
    """Make a new version of `root` with `columns` added (or replaced); unchanged arrays are shared.

    Each `Column.values` covers the whole store in store order. Returns the new version id (the parent's
    when nothing changed).
    """
    root = Path(root)
    read_manifest(root)
    with writer_lock(root):
        remove_temporaries(root)
        base = read_manifest(root)
        sharded = _ShardedColumns(root)
        for name, column in sorted(columns.items()):
            check_column_name(name)
            if column.axis not in AXES:
                raise TnqError(f"column {name!r}: axis must be one of {', '.join(AXES)}, not {column.axis!r}")
            if name in DERIVED or name == "z":
                raise TnqError(f"column {name!r} defines the store's structure and cannot be replaced")
            values = np.asarray(column.values)
            expected = base["counts"][column.axis]
            if len(values) != expected:
                raise TnqError(f"column {name!r} has {len(values)} rows but the store has {expected} {column.axis}s")
            dtype, _, unit = column_spec(name, values, column.axis)
            values = cast_column(name, values, dtype)
            bounds = np.cumsum([0] + [s[f"{column.axis}s"] for s in base["shards"]])
            for shard, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
                sharded.put(shard, name, column.axis, values[lo:hi], column.unit or unit)
        if "composition" not in base["arrays"]:  # written before the column: its next version gains it
            for shard in range(len(base["shards"])):
                sharded.put(shard, "composition", "conformer", derived_composition(root, base, shard), None)
        arrays = {**base["arrays"], **sharded.finish()}
        merged_tables = {**base["tables"], **(tables or {})}
        return _commit(root, base["version"], base["counts"], base["shards"], arrays, merged_tables, provenance,
                       sharded.dirs)
