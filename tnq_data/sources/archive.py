"""Safe unpacking of downloaded tar and zip archives.

Entries that could write outside the destination (absolute paths, ``..``), links and device or other
special files are refused. Everything is unpacked into a hidden staging folder next to the destination,
which is renamed into place only when the whole archive was extracted; on any error it is removed.
"""

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


def _extract_tar(archive: Path, staging: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            _check_name(archive, member.name)
            if member.issym() or member.islnk():
                raise _refuse(archive, member.name, f"is a link (to {member.linkname!r})")
            if not (member.isfile() or member.isdir()):
                raise _refuse(archive, member.name, "is a device or other special file")
            tar.extract(member, staging, filter="data")


def _extract_zip(archive: Path, staging: Path) -> None:
    with zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            _check_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise _refuse(archive, info.filename, "is a symbolic link")
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise _refuse(archive, info.filename, "is a device or other special file")
            bundle.extract(info, staging)


def _extractor(archive: Path) -> Callable[[Path, Path], None]:
    if zipfile.is_zipfile(archive):
        return _extract_zip
    if tarfile.is_tarfile(archive):
        return _extract_tar
    raise TnqError(f"{archive} is not a readable tar or zip archive; delete it and fetch it again")


def safe_extract(archive: Path, dest: Path) -> list[Path]:
    """Unpack a .tar[.gz|.bz2|.xz], .tgz or .zip `archive` into the new folder `dest`; return its files, sorted."""
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise TnqError(f"cannot extract {archive} into {dest}: it already exists; remove it to extract again")
    if not archive.is_file():
        raise TnqError(f"cannot extract {archive}: no such file; fetch it first")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        _extractor(archive)(archive, staging)
        os.rename(staging, dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError) as err:
        raise TnqError(f"cannot extract {archive} into {dest}: {err}; if the archive is corrupt, "
                       f"delete it and fetch it again") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(path for path in dest.rglob("*") if path.is_file())
