"""Resumable, checksummed HTTP downloads.

Bytes stream into ``NAME.part``; an interrupted download continues from there with an HTTP Range request
on the next attempt or run. ``NAME`` appears (atomic rename) only once every pinned checksum matched; a
mismatch deletes the ``.part`` so a corrupt download is never resumed.
"""

import hashlib
import http.client
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from rich.progress import Progress

from tnq_core.errors import TnqError
from tnq_core.hashing import CHUNK_BYTES, digest_file, file_chunks
from tnq_core.progress import SILENT, Reporter
from tnq_data.sources.catalog import lookup

#: Seconds without data after which a connection counts as dropped.
TIMEOUT_S = 60.0
#: Attempts per call; the wait before attempt n+1 is BACKOFF_S * 2**(n-1) seconds.
ATTEMPTS = 5
BACKOFF_S = 2.0
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_HEX_LENGTH = {"md5": 32, "sha256": 64}


class _Transient(Exception):
    """A failure worth another attempt: dropped connection, timeout, 5xx."""


class _PartFile:
    """``NAME.part`` plus running digests of its bytes, so a finished download needs no second read."""

    def __init__(self, path: Path, algorithms: Iterable[str]) -> None:
        self.path = path
        self._algorithms = sorted(set(algorithms))
        self._forget()
        if path.exists():
            for chunk in file_chunks(path):
                self._account(chunk)

    def restart(self) -> None:
        """Delete the bytes received so far."""
        self.path.unlink(missing_ok=True)
        self._forget()

    def _forget(self) -> None:
        self.size = 0
        self._digests = {name: hashlib.new(name) for name in self._algorithms}

    def append(self, handle: BinaryIO, chunk: bytes) -> None:
        handle.write(chunk)
        self._account(chunk)

    def _account(self, chunk: bytes) -> None:
        self.size += len(chunk)
        for digest in self._digests.values():
            digest.update(chunk)

    def hexdigests(self) -> dict[str, str]:
        return {name: digest.hexdigest() for name, digest in self._digests.items()}


def _pinned(md5: str | None, sha256: str | None) -> dict[str, str]:
    """The checksums to verify, lower-cased, after checking they look like hex digests."""
    pinned = {name: value.strip().lower() for name, value in (("md5", md5), ("sha256", sha256)) if value}
    for name, value in pinned.items():
        if not re.fullmatch(f"[0-9a-f]{{{_HEX_LENGTH[name]}}}", value):
            raise TnqError(f"`{name}` {value!r} is not a {name} checksum ({_HEX_LENGTH[name]} hex digits); "
                           f"copy it from the dataset's record")
    return pinned


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a ``Content-Range`` header; None where absent or ``*``."""
    match = re.fullmatch(r"bytes (?:(\d+)-\d+|\*)/(\d+|\*)", (header or "").strip())
    if not match:
        return None, None
    first, total = match.groups()
    return (int(first) if first else None), (int(total) if total != "*" else None)


def _ensure_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise TnqError(f"not enough disk space in {folder}: the download needs {needed:,} more bytes, "
                       f"{free:,} are free; free some space or choose another `dest`")


def _open(url: str, part: _PartFile) -> http.client.HTTPResponse | None:
    """Send the (ranged) request; None when the server says the ``.part`` already holds the whole file."""
    headers = {"User-Agent": "tnq-data", "Accept-Encoding": "identity"}
    if part.size:
        headers["Range"] = f"bytes={part.size}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        with err:
            if err.code == 416 and part.size:
                if _content_range(err.headers.get("Content-Range"))[1] == part.size:
                    return None
                part.restart()
                raise _Transient("the server refused to resume; starting again from zero") from err
            if err.code in _TRANSIENT_STATUS:
                raise _Transient(f"HTTP {err.code} {err.reason}") from err
            raise TnqError(f"download of {url} failed: HTTP {err.code} {err.reason}; "
                           f"check the address (or pass another as `url`)") from err
    except (OSError, http.client.HTTPException) as err:
        raise _Transient(f"cannot connect: {getattr(err, 'reason', err)}") from err
    except ValueError as err:
        raise TnqError(f"{url!r} is not a download address ({err}); pass an http(s) URL as `url`") from err


def _attempt(url: str, part: _PartFile, bar: Progress, reporter: Reporter) -> None:
    """One request: stream the missing bytes into the ``.part``; raise `_Transient` if cut short."""
    response = _open(url, part)
    if response is None:
        return
    with response:
        first, total = _content_range(response.headers.get("Content-Range"))
        if response.status != 206 or first != part.size:
            if part.size:
                reporter.note(f"{url} ignored the request to resume at byte {part.size:,}; "
                              f"downloading {part.path.name} again from zero")
            part.restart()
        length = response.headers.get("Content-Length")
        if total is None and length is not None:
            total = part.size + int(length)
        if total is not None:
            _ensure_space(part.path.parent, total - part.size)
        bar.update(0, total=total, completed=part.size)
        with part.path.open("ab") as handle:
            while True:
                try:
                    chunk = response.read1(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as err:
                    raise _Transient(f"connection lost after {part.size:,} bytes ({err})") from err
                if not chunk:
                    break
                part.append(handle, chunk)
                bar.update(0, advance=len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
    if total is not None and part.size != total:
        raise _Transient(f"connection closed after {part.size:,} of {total:,} bytes")


def _transfer(url: str, part: _PartFile, reporter: Reporter) -> None:
    """Fetch what the ``.part`` lacks, retrying transient failures with exponential backoff."""
    with reporter.bar(part.path.stem, None) as bar:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                _attempt(url, part, bar, reporter)
                return
            except _Transient as err:
                if attempt == ATTEMPTS:
                    kept = f"the {part.size:,} bytes received are kept in {part.path}: re-run to resume" \
                        if part.size else "re-run to try again"
                    raise TnqError(f"download of {url} failed after {ATTEMPTS} attempts ({err}); {kept}") from err
                delay = BACKOFF_S * 2 ** (attempt - 1)
                bar.update(0, status=f"{err}; retry {attempt}/{ATTEMPTS - 1} in {delay:g} s")
                time.sleep(delay)


def _describe(digests: dict[str, str], pinned: dict[str, str]) -> str:
    verified = [f"{name} {pinned[name]} verified" for name in sorted(pinned)]
    if not pinned:
        verified.append("no checksum pinned")
    return "; ".join([*verified, f"sha256 {digests['sha256']}"])


def _mismatch(digests: dict[str, str], pinned: dict[str, str]) -> str | None:
    """'NAME is X, expected Y' for the first pinned checksum that does not match; None when all match."""
    for name, expected in sorted(pinned.items()):
        if digests[name] != expected:
            return f"{name} is {digests[name]}, expected {expected}"
    return None


def _check_present(path: Path, pinned: dict[str, str], reporter: Reporter) -> Path:
    """Accept a file already at `path` if it matches every pinned checksum."""
    digests = digest_file(path, {"sha256", *pinned})
    if mismatch := _mismatch(digests, pinned):
        raise TnqError(f"{path} exists but its {mismatch}; delete it and re-run to download it again")
    reporter.note(f"{path} is already present ({_describe(digests, pinned)}); not downloading it again")
    return path


def download(url: str, path: Path, md5: str | None = None, sha256: str | None = None,
             reporter: Reporter = SILENT) -> Path:
    """Download `url` to `path`, resuming a previous ``.part``; verify the given checksums; return `path`.

    Without a checksum the file is kept as downloaded and its sha256 is reported so it can be pinned.
    """
    path = Path(path)
    pinned = _pinned(md5, sha256)
    if path.exists():
        return _check_present(path, pinned, reporter)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = _PartFile(path.with_name(path.name + ".part"), {"sha256", *pinned})
    if part.size:
        reporter.note(f"resuming {path.name} at byte {part.size:,} from {part.path}")
    _transfer(url, part, reporter)
    digests = part.hexdigests()
    if mismatch := _mismatch(digests, pinned):
        part.path.unlink()
        raise TnqError(f"checksum mismatch for {url}: {mismatch}; deleted {part.path} so the next run "
                       f"starts afresh; check the address and the checksum")
    os.replace(part.path, path)
    reporter.note(f"saved {path} ({_describe(digests, pinned)})")
    if not pinned:
        reporter.note(f"warning: no checksum is pinned for {path.name}, its integrity is unverified; "
                      f"pass `sha256` {digests['sha256']} on later runs to pin it")
    return path


def fetch_dataset(name: str, dest: Path, version: str | None = None, url: str | None = None,
                  md5: str | None = None, sha256: str | None = None, reporter: Reporter = SILENT) -> Path:
    """Download a catalogued dataset release into the folder `dest`; return the verified file's path.

    `url` replaces the published address (a mirror); `md5`/`sha256` replace the pinned checksums.
    """
    release = lookup(name, version)
    if not (md5 or sha256):
        md5, sha256 = release.md5, release.sha256
    return download(url or release.url, Path(dest) / release.filename, md5=md5, sha256=sha256, reporter=reporter)
