"""The directories a pipeline makes for its stages' outputs, and the only ones it ever removes.

Every such directory holds a marker file (`.tnq-pipeline`). A directory without it (a user's store, a folder
made by hand) is never removed: the stage stops with an error instead. A marked directory is removed only
under the writer lock of every store in it, so a store that another process is writing is never removed.

A store or file stage writes into a staging directory `FOLDER/.NAME.new/NAME` that is renamed to
`FOLDER/NAME` once complete, so `FOLDER/NAME` always holds a stage's complete outputs (or none).
"""

import os
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

from tnq_core.errors import TnqError
from tnq_data.store.manifest import LOCK, writer_lock

MARKER = ".tnq-pipeline"
#: Suffix of a stage's staging directory.
STAGING = ".new"


def mark(path: Path) -> None:
    """Record that the pipeline made the directory `path`."""
    (path / MARKER).write_text("made by tnq-data run; the pipeline may replace or remove this directory\n")


def is_ours(path: Path) -> bool:
    """Whether `path` is a directory the pipeline made."""
    return (path / MARKER).is_file()


def check_ours(path: Path, stage: str) -> None:
    """Refuse `path` when it exists and the pipeline did not make it."""
    if path.exists() and not is_ours(path):
        raise TnqError(f"{path} exists but was not made by this pipeline (it has no {MARKER}), so stage {stage} "
                       "will not replace it; move it elsewhere or choose another `workdir`")


def _store_locks(path: Path) -> list[Path]:
    """`path` and its subdirectories that are stores (they have a writer lock file)."""
    found = [path] if (path / LOCK).exists() else []
    return found + sorted(p for p in path.iterdir() if p.is_dir() and (p / LOCK).exists())


def check_not_written(path: Path) -> None:
    """Raise the store's clear `TnqError` when another process is writing a store in `path` (nothing is held)."""
    with ExitStack() as locks:
        for store in _store_locks(path):
            locks.enter_context(writer_lock(store))


def remove(path: Path, stage: str) -> None:
    """Remove the directory `path` if the pipeline made it and no store in it is being written; refuse it
    otherwise. Nothing happens when it does not exist."""
    if not path.exists():
        return
    check_ours(path, stage)
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.removing-", dir=path.parent))
    with ExitStack() as locks:
        for store in _store_locks(path):
            locks.enter_context(writer_lock(store))
        os.rename(path, trash / path.name)
    shutil.rmtree(trash)


def staging_dir(final: Path, stage: str, keep: bool) -> Path:
    """The directory a stage writes its outputs into before they replace `final`; an interrupted stage's
    staging directory is kept when `keep` (it continues from it), otherwise replaced by an empty one."""
    check_ours(final, stage)
    if final.exists():
        check_not_written(final)
    wrapper = final.with_name(f".{final.name}{STAGING}")
    if wrapper.exists() and not keep:
        remove(wrapper, stage)
    wrapper.mkdir(parents=True, exist_ok=True)
    mark(wrapper)
    return wrapper / final.name


def publish(staged: Path, final: Path, stage: str, replace: bool) -> None:
    """Make the complete `staged` outputs the stage's `final` ones; when not `replace` (the outputs equal
    those already in `final`), keep `final` as it is, with whatever later stages added to it."""
    wrapper = staged.parent
    if final.exists() and not replace:
        remove(wrapper, stage)
        return
    mark(staged)
    if final.exists():
        check_ours(final, stage)
        with ExitStack() as locks:
            for store in _store_locks(final):
                locks.enter_context(writer_lock(store))
            os.rename(final, wrapper / f"{final.name}.replaced")
            os.rename(staged, final)
    else:
        os.rename(staged, final)
    remove(wrapper, stage)


def relocate(outputs: dict, staged: Path, final: Path) -> dict:
    """`outputs` with every path under `staged` moved under `final`."""
    def moved(value):
        if isinstance(value, dict):
            return {k: moved(v) for k, v in value.items()}
        if isinstance(value, str) and (value == str(staged) or value.startswith(f"{staged}{os.sep}")):
            return str(final) + value[len(str(staged)):]
        return value
    return moved(outputs)
