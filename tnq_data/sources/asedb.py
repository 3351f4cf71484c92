"""Import ASE databases (SQLite `.db`, ase-db-backends `.aselmdb`/`.lmdb` as fairchem's OMol25) into a store.

Rows are read in blocks of `BLOCK_ROWS` and written as they come, so memory stays bounded whatever the
size of the database; with `workers` > 1 the blocks are read by dask processes and written in input order,
so the store (and its version id) does not depend on the worker count. Units are ASE's (Å, eV, eV/Å, e),
stored unchanged; `spin` is the multiplicity 2S+1, as in fairchem (docs/interop.md).
"""

import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from tnq_core.errors import TnqError
from tnq_core.progress import SILENT, Reporter
from tnq_data.curate import DropCounts
from tnq_data.parallel import ordered_map
from tnq_data.sources.archive import extract_dir, safe_extract
from tnq_data.sources.asedb_block import AsedbKeys, key_hashes, lookup, read_block
from tnq_data.sources.asedb_rows import DATABASE_SUFFIXES, read_rows, row_ids
from tnq_data.sources.qmspin import source_input
from tnq_data.store import write_store
from tnq_data.store.format import MoleculeBatch, check_column_name

#: Rows per block read by one task: a few MB of decoded rows for OMol25-sized molecules.
BLOCK_ROWS = 4096


def parse_charges_keys(specs: list[str]) -> tuple[tuple[str, str], ...]:
    """``KEY=SCHEME`` strings -> (key, scheme) pairs; the scheme names the column ``charges/<scheme>``."""
    pairs = []
    for spec in specs:
        key, sep, scheme = spec.partition("=")
        if not sep or not key or not scheme:
            raise TnqError(f"`charges_key` {spec!r} is not KEY=SCHEME (e.g. lowdin_charges=lowdin)")
        check_column_name(f"charges/{scheme}")
        pairs.append((key, scheme))
    schemes = [scheme for _, scheme in pairs]
    if len(set(schemes)) != len(schemes):
        raise TnqError(f"`charges_key` names a scheme twice ({', '.join(schemes)}); give each column one key")
    return tuple(pairs)


def database_files(path: Path) -> list[Path]:
    """The database files of `path`: the file itself, or those below a folder (sorted)."""
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DATABASE_SUFFIXES)
        if not found:
            raise TnqError(f"{path}: no ASE database (.db, .aselmdb, .lmdb) below this folder; check the path")
        return found
    return [path]


def _is_archive(path: Path) -> bool:
    try:
        extract_dir(path)
    except TnqError:
        return False
    return path.is_file()


def _blocks_by_row(ids: list[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(file indices, ids) of blocks of consecutive rows of each file."""
    for file, file_ids in enumerate(ids):
        for start in range(0, len(file_ids), BLOCK_ROWS):
            chunk = file_ids[start:start + BLOCK_ROWS]
            yield np.full(len(chunk), file, dtype=np.int64), chunk


def _blocks_by_key(paths: tuple[str, ...], ids: list[np.ndarray], molecule_key: str, workers: int,
                   scheduler: str | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks of whole molecules: rows with equal `molecule_key` together, molecules in order of first
    appearance (across files), rows of a molecule in input order. A first pass reads only the keys' hashes
    (8 bytes a row), so memory stays bounded by the row count, not the data."""
    tasks = ((paths[files[0]], chunk, molecule_key) for files, chunk in _blocks_by_row(ids))
    hashes = np.concatenate(list(ordered_map(key_hashes, tasks, workers, scheduler)))
    files = np.concatenate([np.full(len(file_ids), f, dtype=np.int64) for f, file_ids in enumerate(ids)])
    all_ids = np.concatenate(ids)
    _, first_row, group = np.unique(hashes, return_index=True, return_inverse=True)
    rank = np.empty(len(first_row), dtype=np.int64)
    rank[np.argsort(first_row)] = np.arange(len(first_row))
    order = np.argsort(rank[group], kind="stable")
    ends = np.cumsum(np.bincount(rank[group]))
    start = 0
    while start < len(order):
        stop = int(ends[min(np.searchsorted(ends, start + BLOCK_ROWS), len(ends) - 1)])
        yield files[order[start:stop]], all_ids[order[start:stop]]
        start = stop


def _in_background(func: Callable[[], Any]) -> Future:
    """`func()` run in a daemon thread (an interrupted import does not wait for it); its result or error
    comes with the future's `result()`."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(func())
        except Exception as err:  # noqa: BLE001  handed to whoever asks for the result
            future.set_exception(err)

    threading.Thread(target=run, name="tnq-asedb-inputs", daemon=True).start()
    return future


def _expand(paths: list[Path], stack: ExitStack, scratch: Path) -> tuple[list[Path], Future]:
    """The database files of `paths` (archives unpacked into a temporary folder in `scratch`, removed with
    `stack`) and the future of the provenance entries of `paths` (their sha256 is read in a background thread
    while the rows are imported: hashlib and file reads let the other thread run)."""
    for path in paths:
        if not path.exists():
            raise TnqError(f"{path}: no such file or folder; check the path")
    inputs = _in_background(lambda: [source_input(path) for path in paths])
    files = []
    for path in paths:
        if _is_archive(path):
            scratch.mkdir(parents=True, exist_ok=True)
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".tnq-asedb-", dir=scratch)))
            safe_extract(path, folder / "extracted")
            path = folder / "extracted"
        files += database_files(path)
    return files, inputs


def _has_forces(path: Path, first_id: np.ndarray, forces_key: str) -> bool:
    """Whether the first row has forces: then every row must, else none may."""
    return lookup(next(read_rows(path, first_id)), forces_key) is not None


def import_asedb(paths: list[Path], out: Path, charge_key: str = "charge", spin_key: str = "spin",
                 energy_key: str = "energy", forces_key: str = "forces", charges_key: list[str] | None = None,
                 molecule_key: str | None = None, default_charge: int | None = None,
                 default_multiplicity: int | None = None, workers: int = 1, scheduler: str | None = None,
                 reporter: Reporter = SILENT) -> str:
    """Import the rows of ASE databases into the store `out`; returns the new version id.

    Each of `paths` is a database file, a folder (its database files, sorted) or an archive of them. Each
    row is one conformer: total charge from `charge_key`, multiplicity 2S+1 from `spin_key` (never defaulted
    unless `default_charge`/`default_multiplicity` is given; parity checked), energy (eV) and forces (eV/Å)
    from the calculator results or `data`, per-atom charges (e) from `charges_key` (``KEY=SCHEME`` strings). Rows
    sharing `molecule_key` form one molecule, else each row is its own.
    """
    charges = parse_charges_keys(charges_key or [])
    with ExitStack() as stack:
        files, inputs = _expand([Path(p) for p in paths], stack, Path(out).absolute().parent)
        ids = [row_ids(path) for path in files]
        if not sum(map(len, ids)):
            raise TnqError(f"no rows in {', '.join(map(str, paths))}; nothing to import")
        first = next(i for i, file_ids in enumerate(ids) if len(file_ids))
        keys = AsedbKeys(charge_key, spin_key, energy_key, forces_key, charges, molecule_key, default_charge,
                         default_multiplicity, _has_forces(files[first], ids[first][:1], forces_key))
        names = tuple(str(p) for p in files)
        blocks = (_blocks_by_key(names, ids, molecule_key, workers, scheduler) if molecule_key
                  else _blocks_by_row(ids))
        tables: dict[str, list] = {}

        def batches() -> Iterator[MoleculeBatch]:
            counts = DropCounts()  # every row is kept or the import stops: only the `kept` row
            with reporter.bar("import asedb", sum(map(len, ids))) as bar:
                tasks = ((names, block_files, block_ids, keys) for block_files, block_ids in blocks)
                for batch in ordered_map(read_block, tasks, workers, scheduler):
                    counts.kept_molecules += batch.n_molecules
                    counts.kept_conformers += len(batch.conformer["energy"])
                    bar.update(0, advance=len(batch.conformer["energy"]), status=f"{counts.kept_molecules} molecules")
                    yield batch
            tables["curation"] = counts.rows()
            provenance["inputs"] = inputs.result()  # before the store's commit, which records the provenance

        parameters = {"charge_key": charge_key, "spin_key": spin_key, "energy_key": energy_key,
                      "forces_key": forces_key, "charges_key": [f"{k}={s}" for k, s in charges],
                      "molecule_key": molecule_key, "default_charge": default_charge,
                      "default_multiplicity": default_multiplicity}
        provenance = {"command": "import asedb", "parameters": parameters, "inputs": None}
        return write_store(out, batches(), provenance=provenance, tables=tables)
