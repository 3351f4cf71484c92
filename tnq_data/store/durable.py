"""Durable file-system steps of a store write: fsync, atomic replace and the temporaries a crash leaves.

A committed HEAD must name complete files after a power loss, so everything it depends on reaches the disk
before HEAD is replaced: each array's files and directories before the array is renamed into place, the
directories that received new entries before the manifest is written, the manifest and `versions/` before
HEAD. Every temporary name starts with `TMP_PREFIX`; the next writer removes what a crash left.
"""

import os
import shutil
import uuid
from pathlib import Path

#: Prefix of every temporary file or directory a writer creates inside a store.
TMP_PREFIX = ".tmp-"


def fsync_path(path: Path) -> None:
    """Flush one file's data, or one directory's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush every file and directory under `path` (included), deepest first."""
    for directory, _, files in os.walk(path, topdown=False):
        for name in files:
            fsync_path(Path(directory, name))
        fsync_path(Path(directory))


def sync_dirs(dirs: set[Path], root: Path) -> None:
    """Flush the entries of each directory of `dirs` and of its ancestors up to `root` (included), once each."""
    done: set[Path] = set()
    for directory in sorted(dirs, key=lambda d: -len(d.parts)):
        while directory not in done:
            fsync_path(directory)
            done.add(directory)
            if directory == root or root not in directory.parents:
                break
            directory = directory.parent


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new contents, and make it durable."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{uuid.uuid4().hex}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def temporary_sibling(path: Path) -> Path:
    """A fresh temporary name in the directory of `path`."""
    return path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"


def remove_temporaries(root: Path) -> None:
    """Remove every temporary under `root` (nested column directories included).

    Only under the writer lock: a running writer's temporaries look the same. Array directories (those
    holding a ``zarr.json``) are not descended into.
    """
    for directory, dirnames, files in os.walk(root):
        if "zarr.json" in files:
            dirnames[:] = []
            continue
        for name in [d for d in dirnames if d.startswith(TMP_PREFIX)]:
            shutil.rmtree(Path(directory, name), ignore_errors=True)
            dirnames.remove(name)
        for name in files:
            if name.startswith(TMP_PREFIX):
                Path(directory, name).unlink(missing_ok=True)
