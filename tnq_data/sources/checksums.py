"""Expected checksums of a download: pinned ones, and the record ``NAME.sha256`` of a file's first download.

Every download leaves ``NAME.sha256`` (the ``sha256sum`` format) next to ``NAME``. Where no checksum is pinned
(QMspin) it is the reference of later runs: trust on first use, then never a silent change.
"""

import re
from pathlib import Path

from tnq_core.errors import TnqError
from tnq_core.hashing import file_checksum

_HEX_LENGTH = {"md5": 32, "sha256": 64}


def pinned_checksums(md5: str | None, sha256: str | None) -> dict[str, str]:
    """The checksums to verify, lower-cased, after checking they look like hex digests."""
    pinned = {name: value.strip().lower() for name, value in (("md5", md5), ("sha256", sha256)) if value}
    for name, value in pinned.items():
        if not re.fullmatch(f"[0-9a-f]{{{_HEX_LENGTH[name]}}}", value):
            raise TnqError(f"`{name}` {value!r} is not a {name} checksum ({_HEX_LENGTH[name]} hex digits); "
                           f"copy it from the dataset's record")
    return pinned


def record_path(path: Path) -> Path:
    """Where the sha256 of the first download of `path` is recorded: ``NAME.sha256`` next to it."""
    return path.with_name(path.name + ".sha256")


def read_record(path: Path) -> str | None:
    """The sha256 recorded at the first download of `path`; None when there is no record."""
    record = record_path(path)
    if not record.is_file():
        return None
    fields = record.read_text().split()
    if not fields or not re.fullmatch("[0-9a-f]{64}", fields[0]):
        raise TnqError(f"{record} does not hold a sha256 checksum; delete it (and {path.name}) and fetch again")
    return fields[0]


def write_record(path: Path, sha256: str) -> None:
    """Record the sha256 of a downloaded `path` (``sha256sum -c`` can check it)."""
    record_path(path).write_text(f"{sha256}  {path.name}\n")


def mismatch(digests: dict[str, str], expected: dict[str, str]) -> str | None:
    """'NAME is X, expected Y' for the first expected checksum that does not match; None when all match."""
    for name, value in sorted(expected.items()):
        if digests[name] != value:
            return f"{name} is {digests[name]}, expected {value}"
    return None


def describe(digests: dict[str, str], expected: dict[str, str], recorded: bool) -> str:
    """'md5 X verified; sha256 Y', or which reference was missing, for the notes of a download."""
    verified = [f"{name} {expected[name]} verified" for name in sorted(expected)]
    if recorded:
        verified = ["sha256 verified against its first download"]
    elif not expected:
        verified.append("no checksum pinned")
    return "; ".join([*verified, f"sha256 {digests['sha256']}"])


def downloaded_input(path: Path) -> dict[str, str | int]:
    """Provenance of a downloaded file: its name, sha256 (the one recorded at its download, else computed)
    and size in bytes."""
    return {"name": path.name, "sha256": read_record(path) or file_checksum(path), "bytes": path.stat().st_size}
