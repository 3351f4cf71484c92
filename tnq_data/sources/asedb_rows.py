"""Rows of ASE databases, read in bounded blocks: SQLite `.db` files written by `ase.db`, and `.aselmdb` /
`.lmdb` files written by ase-db-backends (the format of fairchem's OMol25).

A row comes back as a `Row`: its atoms, its calculator results (`energy`, `forces`, `charges`, ...), its
`key_value_pairs` and its `data`. Both formats are read straight from their files, one read transaction or
query per block, without building `AtomsRow` or `Atoms` objects (docs/interop.md, "Reading"):
- SQLite: the columns of ase's `systems` table, decoded with ase's own blob and data decoders;
- LMDB: each row is zlib-compressed ase-JSON under its id; its arrays stay as decoded (``{"__ndarray__": [shape,
  dtype, flat list]}``) until a block turns each column into one array (`stored_flat`).
"""

import json
import math
import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tnq_core.errors import TnqError

SQLITE_SUFFIXES = (".db",)
LMDB_SUFFIXES = (".aselmdb", ".lmdb")
DATABASE_SUFFIXES = SQLITE_SUFFIXES + LMDB_SUFFIXES
#: Calculator results a row may hold (ase.calculators.calculator.all_properties that tnq can use).
CALCULATOR_KEYS = ("energy", "free_energy", "forces", "charges", "dipole", "magmom", "magmoms")
#: The decoder of ase-JSON (ase writes it without surrounding whitespace, as UTF-8).
_JSON = json.JSONDecoder()
#: ids per SQLite query (below SQLite's limit on bound parameters).
_QUERY_IDS = 4096
_SQL_COLUMNS = ("id", "numbers", "positions", "pbc", "energy", "free_energy", "forces", "charges", "dipole",
                "magmom", "magmoms", "key_value_pairs", "data")


@dataclass
class Row:
    """One row: `id`, atomic numbers (N,) and positions (N,3) Å as stored (arrays, or ase-JSON: read them with
    `stored_flat`), periodic flags (3,), calculator results (eV, eV/Å, e), `key_value_pairs` and `data` (values
    as stored; ase-JSON arrays are converted on access)."""

    id: int
    numbers: object
    positions: object
    pbc: list[bool]
    results: dict
    key_value_pairs: dict
    data: dict


def as_value(value):
    """A stored value with ase-JSON arrays (``{"__ndarray__": [shape, dtype, flat]}``) as numpy arrays."""
    if isinstance(value, dict) and "__ndarray__" in value:
        shape, dtype, flat = value["__ndarray__"]
        return np.asarray(flat, dtype=dtype).reshape(shape)
    return value


def stored_flat(value, dtype: str) -> tuple[tuple[int, ...], list]:
    """(shape, values in C order as a list) of a stored array: ase-JSON of `dtype` as decoded, without building
    an array (a block makes one array of each column), anything else through numpy as `dtype`."""
    if type(value) is dict and (stored := value.get("__ndarray__")) is not None:
        shape, kind, flat = stored
        if kind == dtype and type(flat) is list and len(flat) == math.prod(shape):
            return tuple(shape), flat
    array = np.asarray(as_value(value), dtype=dtype)
    return array.shape, array.ravel().tolist()


def database_kind(path: Path) -> str:
    """"sqlite" or "lmdb" from the file name; `TnqError` for anything else."""
    suffix = path.suffix.lower()
    if suffix in SQLITE_SUFFIXES:
        return "sqlite"
    if suffix in LMDB_SUFFIXES:
        return "lmdb"
    raise TnqError(f"{path}: not an ASE database by its name; give .db (SQLite) or .aselmdb/.lmdb files")


def _lmdb_env(path: Path):
    import lmdb

    try:
        return lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=True, meminit=False)
    except lmdb.Error as err:
        raise TnqError(f"{path}: cannot open as an LMDB database ({err}); check the file") from err


def _lmdb_json(txn, key: str, path: Path):
    raw = txn.get(key.encode("ascii"))
    if raw is None:
        return None
    try:
        text = zlib.decompress(raw).decode()
        value, end = _JSON.raw_decode(text)  # json.loads less its encoding guess and whitespace scans
        if end != len(text):
            raise ValueError(f"extra data at character {end}")
        return value
    except (zlib.error, ValueError) as err:
        raise TnqError(f"{path}: entry {key!r} is not zlib-compressed ase-JSON ({err}); is it an .aselmdb file?") from err


def _sqlite(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path.absolute()}?mode=ro", uri=True)


def row_ids(path: Path) -> np.ndarray:
    """The ids of every row of the database at `path`, ascending, int64 (R,)."""
    if not path.is_file():
        raise TnqError(f"{path}: no such file; check the path")
    if database_kind(path) == "lmdb":
        env = _lmdb_env(path)
        with env.begin() as txn:
            next_id = _lmdb_json(txn, "nextid", path) or 1
            deleted = _lmdb_json(txn, "deleted_ids", path) or []
        env.close()
        ids = np.arange(1, int(next_id), dtype=np.int64)
        return ids[~np.isin(ids, np.asarray(deleted, dtype=np.int64))]
    try:
        with _sqlite(path) as connection:
            found = connection.execute("SELECT id FROM systems ORDER BY id")
            return np.fromiter((row_id for (row_id,) in found), dtype=np.int64)
    except sqlite3.DatabaseError as err:
        raise TnqError(f"{path}: not an ase SQLite database ({err}); check the file") from err


def read_rows(path: Path, ids: np.ndarray) -> Iterator[Row]:
    """The rows of `path` with these `ids`, in the order given; `TnqError` for an id that is not there."""
    reader = _read_lmdb if database_kind(path) == "lmdb" else _read_sqlite
    yield from reader(path, np.asarray(ids, dtype=np.int64))


def _read_lmdb(path: Path, ids: np.ndarray) -> Iterator[Row]:
    env = _lmdb_env(path)
    try:
        with env.begin() as txn:
            for row_id in ids.tolist():
                record = _lmdb_json(txn, str(row_id), path)
                if record is None:
                    raise TnqError(f"{path}: row {row_id} is missing; the file may be damaged")
                pbc = stored_flat(record.get("pbc", False), "bool")[1]
                yield Row(row_id, record["numbers"], record["positions"], pbc,
                          {key: record[key] for key in CALCULATOR_KEYS if key in record},
                          record.get("key_value_pairs", {}), record.get("data") or {})
    finally:
        env.close()


def _read_sqlite(path: Path, ids: np.ndarray) -> Iterator[Row]:
    import ase.db

    codec = ase.db.connect(path, type="db")  # only its decoders: it opens nothing until asked to
    select = f"SELECT {', '.join(_SQL_COLUMNS)} FROM systems WHERE id IN "
    with _sqlite(path) as connection:
        for start in range(0, len(ids), _QUERY_IDS):
            wanted = ids[start:start + _QUERY_IDS].tolist()
            try:
                found = connection.execute(select + f"({', '.join('?' * len(wanted))})", wanted).fetchall()
            except sqlite3.DatabaseError as err:
                raise TnqError(f"{path}: not an ase SQLite database ({err}); check the file") from err
            by_id = {values[0]: values for values in found}
            for row_id in wanted:
                if row_id not in by_id:
                    raise TnqError(f"{path}: row {row_id} is missing; was the file changed while importing?")
                yield _sqlite_row(codec, dict(zip(_SQL_COLUMNS, by_id[row_id])))


def _sqlite_row(codec, values: dict) -> Row:
    """A `Row` from the columns of ase's `systems` table (blobs little-endian; numbers int32, arrays float64)."""
    numbers = codec.deblob(values["numbers"], np.int32)
    results = {key: values[key] for key in ("energy", "free_energy", "magmom") if values[key] is not None}
    for key, shape in (("forces", (-1, 3)), ("charges", None), ("dipole", None), ("magmoms", None)):
        if values[key] is not None:
            results[key] = codec.deblob(values[key], shape=shape)
    pbc = [bool((values["pbc"] or 0) & flag) for flag in (1, 2, 4)]
    data = values["data"]
    return Row(values["id"], numbers, codec.deblob(values["positions"], shape=(-1, 3)), pbc, results,
               codec.decode(values["key_value_pairs"]) if values["key_value_pairs"] else {},
               codec.decode(data) if data not in (None, "null") else {})
