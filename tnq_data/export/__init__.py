"""Export a store (or one split of a training run) to the files of other ecosystems: extended XYZ for MACE,
torchmd-net's HDF5 layout, ASE databases for fairchem (docs/interop.md).

Shards are read one at a time and written as they come; the output appears under its name only once
complete (`tnq_data.export.output`).
"""

from pathlib import Path

from tnq_core.errors import TnqError
from tnq_core.progress import SILENT, Reporter
from tnq_data.export.asedb import SUFFIXES as ASEDB_SUFFIXES
from tnq_data.export.asedb import write_asedb
from tnq_data.export.extxyz import PART_CONFORMERS, ExtxyzKeys, format_block
from tnq_data.export.output import atomic_output, check_output
from tnq_data.export.selection import Selection, iter_blocks, select
from tnq_data.export.torchmdnet import write_hdf5
from tnq_data.store.manifest import head_version

FORMATS = ("extxyz", "torchmd-hdf5", "asedb")

__all__ = ["FORMATS", "ExtxyzKeys", "export_store"]


def _check(format: str, out: Path, keys: ExtxyzKeys | None) -> None:
    if format not in FORMATS:
        raise TnqError(f"`format` {format!r} is not one of {', '.join(FORMATS)}")
    if keys is not None and format != "extxyz":
        raise TnqError(f"key names are for extxyz only; {format} has fixed names (docs/interop.md): drop them")
    if format == "asedb" and out.suffix.lower() not in ASEDB_SUFFIXES:
        raise TnqError(f"{out}: an asedb export needs the suffix .aselmdb or .lmdb (ase-db-backends, as fairchem) "
                       "or .db (SQLite); rename `out`")
    if format == "extxyz":
        (keys or ExtxyzKeys()).check()


def _write(selection: Selection, format: str, tmp: Path, suffix: str, keys: ExtxyzKeys, progress) -> None:
    blocks = iter_blocks(selection)
    if format == "extxyz":
        with open(tmp, "w", encoding="utf-8") as handle:
            for part in (part for block in blocks for part in block.parts(PART_CONFORMERS)):
                handle.write(format_block(part, keys))
                progress(len(part))
    elif format == "asedb":
        write_asedb(blocks, tmp, suffix, progress)
    else:
        store = selection.store
        write_hdf5(blocks, tmp, {"store_version": store.version, "conformers": selection.n_conformers}, progress)


def export_store(store: Path, format: str, out: Path, split: str | None = None, run: Path | None = None,
                 keys: ExtxyzKeys | None = None, force: bool = False, reporter: Reporter = SILENT) -> dict:
    """Write the store at `store` (HEAD), or the molecules of `split` of the training `run` (on the store
    version that run trained on), to `out` in `format` (one of `FORMATS`); returns a summary (`out`,
    `format`, `store_version`, `split`, `conformers`).

    `keys` names the extended XYZ keys (default MACE's). An existing `out` is refused unless `force`; it is
    replaced only once the export has succeeded.
    """
    out = Path(out)
    _check(format, out, keys)
    check_output(out, force)
    selection = select(Path(store), run, split)
    total = selection.n_conformers
    if total == 0:
        raise TnqError(f"nothing to export: {'split ' + repr(split) + ' of ' + str(run) if split else store} "
                       "has no conformers")
    head = head_version(Path(store))
    if selection.store.version != head:
        reporter.note(f"exporting version {selection.store.version} of {store}, the one {run} trained on "
                      f"(HEAD is {head})")
    with atomic_output(out, force) as tmp, reporter.bar(f"export {format}", total) as bar:
        _write(selection, format, tmp, out.suffix.lower(), keys or ExtxyzKeys(),
               lambda n: bar.update(0, advance=n))
    return {"out": str(out), "format": format, "store_version": selection.store.version, "split": split,
            "conformers": total}
