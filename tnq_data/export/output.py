"""The output file of an export: written under a temporary name next to it and renamed into place only when
complete, so an interrupted or failed export never leaves a partial file nor touches an existing one."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tnq_core.errors import TnqError
from tnq_data.store.durable import fsync_path

#: Prefix of the temporary files of an export in progress.
TMP_PREFIX = ".tmp-export-"
#: Files that sit next to a database while it is open (LMDB's lock file).
_COMPANIONS = ("-lock",)


def check_output(out: Path, force: bool) -> None:
    """`TnqError` if the folder of `out` is missing, or if `out` exists and `force` is not set."""
    if not out.parent.is_dir():
        raise TnqError(f"{out.parent} does not exist; create the folder or choose another `out`")
    if out.is_dir():
        raise TnqError(f"{out} is a folder; pass a file name as `out`")
    if out.exists() and not force:
        raise TnqError(f"{out} exists; pass `force` to replace it (it is replaced only once the export succeeds)")


@contextmanager
def atomic_output(out: Path, force: bool) -> Iterator[Path]:
    """A temporary path in the folder of `out` to write to; renamed to `out` (and flushed) when the block ends
    without an error, removed otherwise. The temporary keeps the suffix of `out` (readers choose by it)."""
    out = Path(out)
    check_output(out, force)
    tmp = out.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{out.name}")
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, out)
        fsync_path(out.parent)
    finally:
        for path in (tmp, *(tmp.with_name(tmp.name + c) for c in _COMPANIONS)):
            path.unlink(missing_ok=True)
