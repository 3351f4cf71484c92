"""Safe unpacking of downloaded tar and zip archives.

Entries that could write outside the destination (absolute paths, ``..``), links and device or other
special files are refused, and so is an archive that unpacks into more than `max_bytes` or `max_members`
entries (a decompression bomb). Everything is unpacked into a hidden staging folder next to the destination,
which is renamed into place only when the whole archive was extracted; on any error it is removed.
"""

import json
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

from tnq_core.errors import TnqError

_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")
#: Most bytes (sum of the entries' sizes) and entries one archive may unpack into, unless told otherwise.
MAX_BYTES = 64 << 30
MAX_MEMBERS = 1_000_000
#: File in an extracted folder that names the archive it came from (name, sha256, bytes), for provenance.
SOURCE_RECORD = ".tnq-archive.json"


def extract_dir(archive: Path) -> Path:
    """The folder an archive unpacks into by default: its path without the archive suffix."""
    archive = Path(archive)
    for suffix in _SUFFIXES:
        if archive.name.lower().endswith(suffix):
            return archive.with_name(archive.name[: -len(suffix)])
    raise TnqError(f"{archive} is not a supported archive ({', '.join(_SUFFIXES)})")


def _refuse(archive: Path, name: str, why: str) -> TnqError:
    return TnqError(f"refusing to extract {archive}: entry {name!r} {why}; the archive is unsafe or corrupt, "
                    f"nothing was extracted")


def _check_name(archive: Path, name: str) -> None:
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(name).drive or ".." in posix.parts:
        raise _refuse(archive, name, "points outside the destination (absolute path or '..')")
    if posix.parts == (SOURCE_RECORD,):
        raise _refuse(archive, name, "has the name of tnq's own record of the archive")


class _Budget:
    """Counts entries and bytes as they are extracted; refuses the archive once either passes its limit."""

    def __init__(self, archive: Path, max_bytes: int, max_members: int) -> None:
        self.archive, self.max_bytes, self.max_members = archive, max_bytes, max_members
        self.bytes = self.members = 0

    def take(self, name: str, size: int) -> None:
        _check_name(self.archive, name)
        self.members += 1
        self.bytes += size
        if self.members > self.max_members:
            raise TnqError(f"refusing to extract {self.archive}: it has more than {self.max_members:,} entries, "
                           "the limit against archive bombs; nothing was extracted")
        if self.bytes > self.max_bytes:
            raise TnqError(f"refusing to extract {self.archive}: it unpacks into more than {self.max_bytes:,} bytes "
                           f"(reached at entry {name!r}), the limit against archive bombs; nothing was extracted")


def _extract_tar(archive: Path, staging: Path, budget: _Budget) -> None:
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            budget.take(member.name, member.size if member.isfile() else 0)
            if member.issym() or member.islnk():
                raise _refuse(archive, member.name, f"is a link (to {member.linkname!r})")
            if not (member.isfile() or member.isdir()):
                raise _refuse(archive, member.name, "is a device or other special file")
            tar.extract(member, staging, filter="data")


def _extract_zip(archive: Path, staging: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as bundle:
        infos = bundle.infolist()
        for info in infos:  # the sizes in the headers bound what zipfile writes: check them all first
            budget.take(info.filename, info.file_size)
        for info in infos:
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise _refuse(archive, info.filename, "is a symbolic link")
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise _refuse(archive, info.filename, "is a device or other special file")
            bundle.extract(info, staging)


def _extractor(archive: Path) -> Callable[[Path, Path, _Budget], None]:
    if zipfile.is_zipfile(archive):
        return _extract_zip
    if tarfile.is_tarfile(archive):
        return _extract_tar
    raise TnqError(f"{archive} is not a readable tar or zip archive; delete it and fetch it again")


def safe_extract(archive: Path, dest: Path, *, source: dict | None = None, max_bytes: int | None = None,
                 max_members: int | None = None) -> list[Path]:
    """Unpack a .tar[.gz|.bz2|.xz], .tgz or .zip `archive` into the new folder `dest`; return its files, sorted.

    At most `max_bytes` (default `MAX_BYTES`) and `max_members` entries (default `MAX_MEMBERS`). `source`,
    the archive's provenance (name, sha256, bytes), is kept in ``dest/.tnq-archive.json`` (`source_record`).
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise TnqError(f"cannot extract {archive} into {dest}: it already exists; remove it to extract again")
    if not archive.is_file():
        raise TnqError(f"cannot extract {archive}: no such file; fetch it first")
    budget = _Budget(archive, MAX_BYTES if max_bytes is None else max_bytes,
                     MAX_MEMBERS if max_members is None else max_members)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        _extractor(archive)(archive, staging, budget)
        if source is not None:
            (staging / SOURCE_RECORD).write_text(json.dumps(source, sort_keys=True) + "\n")
        os.rename(staging, dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError) as err:
        raise TnqError(f"cannot extract {archive} into {dest}: {err}; if the archive is corrupt, "
                       f"delete it and fetch it again") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(path for path in dest.rglob("*") if path.is_file() and path != dest / SOURCE_RECORD)


def source_record(folder: Path) -> dict | None:
    """The provenance of the archive `folder` was extracted from by `safe_extract`; None without a record."""
    record = Path(folder) / SOURCE_RECORD
    if not record.is_file():
        return None
    try:
        return json.loads(record.read_text())
    except ValueError:
        raise TnqError(f"{record} is not the JSON record tnq writes; delete it, or extract the archive again") from None
