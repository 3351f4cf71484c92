"""Safe extraction of archives built in the test, well-formed and malicious."""

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from tnq_core.errors import TnqError
from tnq_data.sources.archive import SOURCE_RECORD, extract_dir, safe_extract, source_record

CONTENT = {"QMspin/readme.txt": b"carbenes\n", "QMspin/geometries/1_t.xyz": b"3\n\nC 0 0 0\n" * 50}
TAR_MODES = {"tar": "w", "tar.gz": "w:gz", "tgz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}


def _tar(path: Path, mode: str, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _good_tar_members() -> list[tuple[tarfile.TarInfo, bytes]]:
    return [(tarfile.TarInfo(name), data) for name, data in CONTENT.items()]


def _zip(path: Path, entries: list[tuple[zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for info, data in entries:
            bundle.writestr(info, data)
    return path


def _leftovers(folder: Path, archive: Path) -> list[Path]:
    return [path for path in folder.iterdir() if path != archive]


@pytest.mark.parametrize("suffix", [*TAR_MODES, "zip"])
def test_supported_formats_extract_every_file(tmp_path: Path, suffix: str) -> None:
    archive = tmp_path / f"QMspin_Part1.{suffix}"
    if suffix == "zip":
        _zip(archive, [(zipfile.ZipInfo(name), data) for name, data in CONTENT.items()])
    else:
        _tar(archive, TAR_MODES[suffix], _good_tar_members())
    dest = extract_dir(archive)
    assert dest == tmp_path / "QMspin_Part1"
    files = safe_extract(archive, dest)
    assert files == sorted(dest / name for name in CONTENT)
    assert {path.relative_to(dest).as_posix(): path.read_bytes() for path in files} == CONTENT
    assert sorted(_leftovers(tmp_path, archive)) == [dest]


def _tar_entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize("entry", [
    _tar_entry("/etc/evil"),
    _tar_entry("QMspin/../../evil"),
    _tar_entry("QMspin/link", tarfile.SYMTYPE, "/etc/passwd"),
    _tar_entry("QMspin/hard", tarfile.LNKTYPE, "QMspin/readme.txt"),
    _tar_entry("QMspin/dev", tarfile.CHRTYPE),
    _tar_entry("QMspin/fifo", tarfile.FIFOTYPE),
], ids=["absolute", "dotdot", "symlink", "hardlink", "device", "fifo"])
def test_malicious_tar_entry_is_refused_and_nothing_is_left(tmp_path: Path, entry: tarfile.TarInfo) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", "w:gz", [*_good_tar_members(), (entry, b"x")])
    with pytest.raises(TnqError, match=f"entry '{entry.name}'"):
        safe_extract(archive, tmp_path / "out")
    assert _leftovers(tmp_path, archive) == []


def _zip_entry(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize("entry", [
    _zip_entry("/evil"),
    _zip_entry("QMspin/../../evil"),
    _zip_entry("C:/evil"),
    _zip_entry("QMspin/link", stat.S_IFLNK | 0o777),
    _zip_entry("QMspin/dev", stat.S_IFCHR | 0o644),
], ids=["absolute", "dotdot", "drive", "symlink", "device"])
def test_malicious_zip_entry_is_refused_and_nothing_is_left(tmp_path: Path, entry: zipfile.ZipInfo) -> None:
    good = [(zipfile.ZipInfo(name), data) for name, data in CONTENT.items()]
    archive = _zip(tmp_path / "bad.zip", [*good, (entry, b"x")])
    with pytest.raises(TnqError, match=f"entry '{entry.filename}'"):
        safe_extract(archive, tmp_path / "out")
    assert _leftovers(tmp_path, archive) == []


def test_truncated_archive_is_an_error_and_nothing_is_left(tmp_path: Path) -> None:
    whole = _tar(tmp_path / "whole.tar.gz", "w:gz", _good_tar_members()).read_bytes()
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(TnqError, match="cannot extract"):
        safe_extract(archive, tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cut.tar.gz", "whole.tar.gz"]


def test_existing_destination_and_non_archives_are_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tar", "w", _good_tar_members())
    (tmp_path / "out").mkdir()
    with pytest.raises(TnqError, match="already exists"):
        safe_extract(archive, tmp_path / "out")
    (tmp_path / "data.h5").write_bytes(b"not an archive")
    with pytest.raises(TnqError, match="not a readable tar or zip"):
        safe_extract(tmp_path / "data.h5", tmp_path / "elsewhere")
    with pytest.raises(TnqError, match="no such file"):
        safe_extract(tmp_path / "missing.zip", tmp_path / "elsewhere")
    with pytest.raises(TnqError, match="not a supported archive"):
        extract_dir(tmp_path / "data.h5")


def _bomb_members(n_members: int, member_bytes: int) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [(tarfile.TarInfo(f"QMspin/zeros_{i}.bin"), bytes(member_bytes)) for i in range(n_members)]


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archives_beyond_the_size_or_entry_limits_are_refused_and_nothing_is_left(tmp_path: Path, kind: str) -> None:
    """5 MB of zeros compress to a few kB: refused at max_bytes=1 MB or max_members=4, extracted at limits of its own size."""
    members = _bomb_members(5, 1 << 20)
    archive = tmp_path / f"bomb.{kind}"
    if kind == "zip":
        entries = [(zipfile.ZipInfo(info.name), data) for info, data in members]
        for info, _ in entries:
            info.compress_type = zipfile.ZIP_DEFLATED
        _zip(archive, entries)
    else:
        _tar(archive, "w:gz", members)
    assert archive.stat().st_size < 100_000
    with pytest.raises(TnqError, match=r"unpacks into more than 1,048,576 bytes \(reached at entry"):
        safe_extract(archive, tmp_path / "out", max_bytes=1 << 20)
    with pytest.raises(TnqError, match="more than 4 entries, the limit against archive bombs"):
        safe_extract(archive, tmp_path / "out", max_members=4)
    assert _leftovers(tmp_path, archive) == []
    assert len(safe_extract(archive, tmp_path / "out", max_bytes=5 << 20, max_members=5)) == 5


def test_the_archive_record_is_kept_beside_the_files_and_cannot_be_forged(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tar", "w", _good_tar_members())
    source = {"name": "a.tar", "sha256": "0" * 64, "bytes": archive.stat().st_size}
    files = safe_extract(archive, tmp_path / "out", source=source)
    assert files == sorted(tmp_path / "out" / name for name in CONTENT)
    assert source_record(tmp_path / "out") == source
    assert source_record(tmp_path) is None
    forged = _tar(tmp_path / "forged.tar", "w", [*_good_tar_members(), (tarfile.TarInfo(SOURCE_RECORD), b"{}")])
    with pytest.raises(TnqError, match="tnq's own record"):
        safe_extract(forged, tmp_path / "forged")
