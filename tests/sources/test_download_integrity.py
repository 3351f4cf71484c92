"""Downloads from real HTTP servers on 127.0.0.1 that change the file, answer the wrong range or the wrong size:
two versions are never spliced, nothing lands at the wrong offset, a release's size and first checksum hold."""

import hashlib
import os
from pathlib import Path

import pytest

from tnq_core.errors import TnqError
from tnq_core.progress import Reporter
from tnq_data.sources import download as download_module
from tnq_data.sources.catalog import lookup
from tnq_data.sources.download import download, fetch_dataset

from .conftest import HttpFile, HttpServer

pytestmark = pytest.mark.usefixtures("http_fast_retries")

OLD = os.urandom(200_000)
NEW = os.urandom(200_000)
MD5 = hashlib.md5(OLD).hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def _interrupted(http_server: HttpServer, tmp_path: Path, served: HttpFile) -> int:
    """Leave a ``.part`` of the first half of `served` by a run whose every attempt drops; its size."""
    served.drops = download_module.ATTEMPTS
    http_server.files["/data.h5"] = served
    with pytest.raises(TnqError, match="re-run to resume"):
        download(http_server.url("/data.h5"), tmp_path / "data.h5")
    http_server.requests.clear()
    http_server.if_ranges.clear()
    return (tmp_path / "data.h5.part").stat().st_size


@pytest.mark.parametrize("etag, last_modified", [('"v1"', None), (None, "Mon, 01 Jan 2024 00:00:00 GMT")],
                         ids=["etag", "last-modified"])
def test_a_file_changed_on_the_server_is_downloaded_again_not_spliced(http_server, tmp_path, etag, last_modified):
    served = HttpFile(OLD, etag=etag, last_modified=last_modified)
    kept = _interrupted(http_server, tmp_path, served)
    served.body, served.etag, served.last_modified = NEW, etag and '"v2"', last_modified and "Tue, 02 Jan 2024"
    notes: list[str] = []
    path = download(http_server.url("/data.h5"), tmp_path / "data.h5", reporter=Reporter(notes.append))
    assert path.read_bytes() == NEW
    assert http_server.requests == [("/data.h5", f"bytes={kept}-")]
    assert http_server.if_ranges == [etag or last_modified]
    assert any("sent the whole file instead of resuming" in note for note in notes)


def test_a_server_ignoring_if_range_is_caught_by_its_validator(http_server, tmp_path):
    served = HttpFile(OLD, honour_if_range=False)
    kept = _interrupted(http_server, tmp_path, served)
    served.body, served.etag = NEW, '"v2"'
    path = download(http_server.url("/data.h5"), tmp_path / "data.h5")
    assert path.read_bytes() == NEW
    assert http_server.requests == [("/data.h5", f"bytes={kept}-"), ("/data.h5", None)]


@pytest.mark.parametrize("etag", [None, 'W/"weak"'], ids=["none", "weak-etag"])
def test_a_part_without_a_validator_is_resumed_only_with_a_checksum(http_server, tmp_path, etag):
    kept = _interrupted(http_server, tmp_path, HttpFile(OLD, etag=etag))
    assert _files(tmp_path) == ["data.h5.part"]
    notes: list[str] = []
    assert download(http_server.url("/data.h5"), tmp_path / "data.h5", reporter=Reporter(notes.append)).read_bytes() == OLD
    assert http_server.requests == [("/data.h5", None)]
    assert any("cannot be resumed safely" in note for note in notes)
    (tmp_path / "data.h5").unlink()
    (tmp_path / "data.h5.sha256").unlink()
    _interrupted(http_server, tmp_path, HttpFile(OLD, etag=etag))
    assert download(http_server.url("/data.h5"), tmp_path / "data.h5", md5=MD5).read_bytes() == OLD
    assert http_server.requests == [("/data.h5", f"bytes={kept}-")]


def test_a_range_answered_at_another_offset_restarts_from_zero(http_server, tmp_path):
    served = HttpFile(OLD)
    kept = _interrupted(http_server, tmp_path, served)
    served.range_shift = 500
    path = download(http_server.url("/data.h5"), tmp_path / "data.h5")
    assert path.read_bytes() == OLD
    assert http_server.requests == [("/data.h5", f"bytes={kept}-"), ("/data.h5", None)]


def test_a_partial_answer_to_a_whole_file_request_is_refused(http_server, tmp_path):
    http_server.files["/data.h5"] = HttpFile(OLD, whole_as_partial_from=100)
    with pytest.raises(TnqError, match="request for the whole file with bytes 100- .*refusing"):
        download(http_server.url("/data.h5"), tmp_path / "data.h5")
    assert _files(tmp_path) == []
    assert len(http_server.requests) == 1


def test_the_release_size_is_checked_before_and_after_the_transfer(http_server, tmp_path):
    http_server.files["/spice.h5"] = HttpFile(OLD)
    release = lookup("spice", "2.0.1")
    with pytest.raises(TnqError, match=f"announces 200,000 bytes but the release has {release.size:,}"):
        fetch_dataset("spice", tmp_path, url=http_server.url("/spice.h5"))
    with pytest.raises(TnqError, match="announces 200,000 bytes but the release has 200,001"):
        fetch_dataset("spice", tmp_path, url=http_server.url("/spice.h5"), md5=MD5, size=len(OLD) + 1)
    assert _files(tmp_path) == []
    http_server.files["/spice.h5"] = HttpFile(OLD, send_length=False)
    with pytest.raises(TnqError, match="sent more than the 199,999 bytes expected"):
        download(http_server.url("/spice.h5"), tmp_path / "s.h5", size=len(OLD) - 1)
    assert _files(tmp_path) == []
    path = fetch_dataset("spice", tmp_path, url=http_server.url("/spice.h5"), md5=MD5, size=len(OLD))
    assert path.read_bytes() == OLD
    with pytest.raises(TnqError, match="exists but its size is 200,000 bytes, expected 7"):
        fetch_dataset("spice", tmp_path, url=http_server.url("/spice.h5"), md5=MD5, size=7)


def test_a_part_longer_than_the_release_starts_again(http_server, tmp_path):
    (tmp_path / "data.h5.part").write_bytes(OLD + b"extra")
    http_server.files["/data.h5"] = HttpFile(OLD)
    assert download(http_server.url("/data.h5"), tmp_path / "data.h5", md5=MD5, size=len(OLD)).read_bytes() == OLD
    assert http_server.requests == [("/data.h5", None)]


def test_the_first_download_is_the_reference_of_later_runs(http_server, tmp_path):
    http_server.files["/data.h5"] = HttpFile(OLD)
    path = download(http_server.url("/data.h5"), tmp_path / "data.h5")
    record = (tmp_path / "data.h5.sha256").read_text()
    assert record == f"{hashlib.sha256(OLD).hexdigest()}  data.h5\n"
    notes: list[str] = []
    download(http_server.url("/data.h5"), path, reporter=Reporter(notes.append))
    assert any("verified against its first download" in note for note in notes)
    path.write_bytes(NEW)
    with pytest.raises(TnqError, match=r"exists but its sha256 .*\(recorded at its first download in data\.h5\.sha256\)"):
        download(http_server.url("/data.h5"), path)
    path.unlink()
    http_server.files["/data.h5"] = HttpFile(NEW, etag='"v2"')
    with pytest.raises(TnqError, match="checksum mismatch.*first download in data.h5.sha256.*delete that file"):
        download(http_server.url("/data.h5"), path)
    assert _files(tmp_path) == ["data.h5.sha256"] and (tmp_path / "data.h5.sha256").read_text() == record
    # a pinned checksum takes precedence over the record, which then describes the new file
    assert download(http_server.url("/data.h5"), path, md5=hashlib.md5(NEW).hexdigest()).read_bytes() == NEW
    assert (tmp_path / "data.h5.sha256").read_text().split()[0] == hashlib.sha256(NEW).hexdigest()
