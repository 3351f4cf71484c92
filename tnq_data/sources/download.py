"""Resumable, checksummed HTTP downloads.

Bytes stream into ``NAME.part``; an interrupted download continues from there with an HTTP Range request
(guarded by ``If-Range``) on the next attempt or run. ``NAME`` appears (atomic rename) only once its size and
every expected checksum matched; a mismatch deletes the ``.part`` so a corrupt download is never resumed.
"""

import http.client
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from rich.progress import Progress

from tnq_core.errors import TnqError
from tnq_core.hashing import CHUNK_BYTES, digest_file
from tnq_core.progress import SILENT, Reporter
from tnq_data.sources.catalog import lookup
from tnq_data.sources.checksums import describe, mismatch, pinned_checksums, read_record, record_path, write_record
from tnq_data.sources.partfile import PartFile, response_validator

#: Seconds without data after which a connection counts as dropped.
TIMEOUT_S = 60.0
#: Attempts per call; the wait before attempt n+1 is BACKOFF_S * 2**(n-1) seconds.
ATTEMPTS = 5
BACKOFF_S = 2.0
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class _Transient(Exception):
    """A failure worth another attempt: dropped connection, timeout, 5xx, a resume the server got wrong."""


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


def _open(url: str, part: PartFile) -> http.client.HTTPResponse | None:
    """Send the (ranged) request; None when the server says the ``.part`` already holds the whole file."""
    headers = {"User-Agent": "tnq-data", "Accept-Encoding": "identity"}
    if part.size:
        headers["Range"] = f"bytes={part.size}-"
        if part.validator is not None:
            headers["If-Range"] = part.validator
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


def _accept(url: str, response: http.client.HTTPResponse, part: PartFile, size: int | None,
            reporter: Reporter) -> int | None:
    """Check that `response` continues the ``.part`` (or start it afresh); return the file's announced size.

    A ``206`` is appended only when it starts at the ``.part``'s end and carries the validator of byte 0;
    otherwise the ``.part`` restarts (a ``206`` to a request for the whole file is refused). An announced
    size other than `size` is refused before anything is written.
    """
    first, total = _content_range(response.headers.get("Content-Range"))
    validator = response_validator(response.headers)
    whole = response.status != 206
    if not whole:
        sent = f"bytes {first:,}-" if first is not None else "no Content-Range"
        if first != part.size and not part.size:
            raise TnqError(f"{url} answered a request for the whole file with {sent} (HTTP 206); refusing to "
                           "write it at byte 0; try another `url`")
        if first != part.size:
            part.restart()
            raise _Transient(f"asked to resume at byte {part.size:,}, the server sent {sent}; "
                             "starting again from zero")
        if part.size and part.validator is not None and validator != part.validator:
            part.restart()
            raise _Transient(f"the file changed on the server (validator {validator}, the .part began with "
                             f"{part.validator}); starting again from zero")
    length = response.headers.get("Content-Length")
    if total is None and length is not None:
        total = (0 if whole else part.size) + int(length)
    if size is not None and total is not None and total != size:
        raise TnqError(f"{url} announces {total:,} bytes but the release has {size:,} (`size`); check the "
                       "address and the size")
    if whole and part.size:
        reporter.note(f"{url} sent the whole file instead of resuming at byte {part.size:,} (it ignores "
                      f"ranges, or the file changed); downloading {part.path.name} again from zero")
    if whole or not part.size:
        part.start(validator)
    return total


def _attempt(url: str, part: PartFile, size: int | None, bar: Progress, reporter: Reporter) -> None:
    """One request: stream the missing bytes into the ``.part``; raise `_Transient` if cut short."""
    response = _open(url, part)
    if response is None:
        return
    with response:
        total = _accept(url, response, part, size, reporter)
        total = size if total is None else total
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
                if total is not None and part.size > total:
                    part.restart()
                    raise TnqError(f"{url} sent more than the {total:,} bytes expected; deleted the download, "
                                   "check the address and the size")
                bar.update(0, advance=len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
    if total is not None and part.size != total:
        raise _Transient(f"connection closed after {part.size:,} of {total:,} bytes")


def _transfer(url: str, part: PartFile, size: int | None, reporter: Reporter) -> None:
    """Fetch what the ``.part`` lacks, retrying transient failures with exponential backoff."""
    with reporter.bar(part.path.stem, size) as bar:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                _attempt(url, part, size, bar, reporter)
                return
            except _Transient as err:
                if attempt == ATTEMPTS:
                    kept = f"the {part.size:,} bytes received are kept in {part.path}: re-run to resume" \
                        if part.size else "re-run to try again"
                    raise TnqError(f"download of {url} failed after {ATTEMPTS} attempts ({err}); {kept}") from err
                delay = BACKOFF_S * 2 ** (attempt - 1)
                bar.update(0, status=f"{err}; retry {attempt}/{ATTEMPTS - 1} in {delay:g} s")
                time.sleep(delay)


def _size_mismatch(actual: int, size: int | None) -> str | None:
    return None if size is None or actual == size else f"size is {actual:,} bytes, expected {size:,}"


def _check_present(path: Path, expected: dict[str, str], size: int | None, recorded: bool,
                   reporter: Reporter) -> Path:
    """Accept a file already at `path` if it has the expected size and checksums."""
    digests = digest_file(path, {"sha256", *expected})
    if problem := _size_mismatch(path.stat().st_size, size) or mismatch(digests, expected):
        origin = f" (recorded at its first download in {record_path(path).name})" if recorded else ""
        raise TnqError(f"{path} exists but its {problem}{origin}; delete it and re-run to download it again")
    reporter.note(f"{path} is already present ({describe(digests, expected, recorded)}); not downloading it again")
    return path


def _resumable(part: PartFile, expected: dict[str, str], size: int | None, reporter: Reporter) -> None:
    """Keep the ``.part`` only where resuming it is safe: no longer than `size`, and a change of the file on
    the server can be seen (a validator for ``If-Range``, or a checksum to verify)."""
    if not part.size:
        return
    if size is not None and part.size > size:
        reporter.note(f"{part.path} holds more than the {size:,} bytes of the file; downloading again from zero")
        part.restart()
    elif part.validator is None and not expected:
        reporter.note(f"{part.path} cannot be resumed safely (the server sent no ETag or Last-Modified and no "
                      "checksum is pinned); downloading again from zero")
        part.restart()
    else:
        reporter.note(f"resuming the download at byte {part.size:,} from {part.path}")


def download(url: str, path: Path, md5: str | None = None, sha256: str | None = None, size: int | None = None,
             reporter: Reporter = SILENT) -> Path:
    """Download `url` to `path`, resuming a previous ``.part``; verify `size` (bytes) and the given checksums.

    Without a checksum, the sha256 recorded at the first download (``NAME.sha256``) is verified; with none
    recorded either, the file is kept as downloaded and its sha256 recorded and reported so it can be pinned.
    """
    path = Path(path)
    pinned = pinned_checksums(md5, sha256)
    if size is not None and size < 0:
        raise TnqError(f"`size` {size} is not a file size; pass the number of bytes of the release")
    recorded = None if pinned else read_record(path)
    expected = pinned or ({"sha256": recorded} if recorded else {})
    if path.exists():
        return _check_present(path, expected, size, recorded is not None, reporter)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = PartFile(path.with_name(path.name + ".part"), {"sha256", *expected})
    _resumable(part, expected, size, reporter)
    _transfer(url, part, size, reporter)
    digests = part.hexdigests()
    wrong_size = _size_mismatch(part.size, size)
    if problem := wrong_size or mismatch(digests, expected):
        part.restart()
        origin = f" (the sha256 recorded at its first download in {record_path(path).name}: if the release " \
                 "changed on purpose, delete that file)" if recorded else ""
        raise TnqError(f"{'size' if wrong_size else 'checksum'} mismatch for {url}: {problem}{origin}; deleted "
                       f"{part.path} so the next run starts afresh; check the address, the size and the checksum")
    part.finish(path)
    write_record(path, digests["sha256"])
    reporter.note(f"saved {path} ({describe(digests, expected, recorded is not None)})")
    if not expected:
        reporter.note(f"warning: no checksum is pinned for {path.name}, its integrity is unverified; its sha256 "
                      f"is recorded in {record_path(path).name} and checked on later runs; pass `sha256` "
                      f"{digests['sha256']} to pin it")
    return path


def fetch_dataset(name: str, dest: Path, version: str | None = None, url: str | None = None,
                  md5: str | None = None, sha256: str | None = None, size: int | None = None,
                  reporter: Reporter = SILENT) -> Path:
    """Download a catalogued dataset release into the folder `dest`; return the verified file's path.

    `url` replaces the published address (a mirror); `md5`/`sha256` replace the pinned checksums, and the
    pinned size with them; `size` (bytes) replaces the pinned size.
    """
    release = lookup(name, version)
    if not (md5 or sha256):
        md5, sha256 = release.md5, release.sha256
        size = release.size if size is None else size
    return download(url or release.url, Path(dest) / release.filename, md5=md5, sha256=sha256, size=size,
                    reporter=reporter)
