"""Downloads against a real HTTP server on 127.0.0.1: resume, retries, checksums, and what is left on disk."""

import hashlib
import os
from pathlib import Path

import pytest

from tnq_core import hashing
from tnq_core.errors import TnqError
from tnq_core.hashing import file_checksum
from tnq_core.progress import Reporter
from tnq_data.sources import download as download_module
from tnq_data.sources.catalog import lookup
from tnq_data.sources.download import download, fetch_dataset

from .conftest import HttpFile, HttpServer

pytestmark = pytest.mark.usefixtures("http_fast_retries")

BODY = os.urandom(300_000)
MD5 = hashlib.md5(BODY).hexdigest()
SHA256 = hashlib.sha256(BODY).hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_download_verifies_md5_and_leaves_only_the_final_file(http_server: HttpServer, tmp_path: Path) -> None:
    http_server.files["/data.h5"] = HttpFile(BODY)
    path = download(http_server.url("/data.h5"), tmp_path / "data.h5", md5=MD5)
    assert path == tmp_path / "data.h5"
    assert path.read_bytes() == BODY
    assert _files(tmp_path) == ["data.h5", "data.h5.sha256"]
    assert (tmp_path / "data.h5.sha256").read_text() == f"{SHA256}  data.h5\n"
    assert http_server.requests == [("/data.h5", None)]


def test_dropped_connection_is_resumed_with_a_range_request(http_server: HttpServer, tmp_path: Path) -> None:
    http_server.files["/data.h5"] = HttpFile(BODY, drops=1)
    path = download(http_server.url("/data.h5"), tmp_path / "data.h5", sha256=SHA256)
    assert path.read_bytes() == BODY
    assert http_server.requests == [("/data.h5", None), ("/data.h5", f"bytes={len(BODY) // 2}-")]


def test_interrupted_run_keeps_the_part_and_the_next_run_resumes(http_server: HttpServer, tmp_path: Path) -> None:
    served = http_server.files["/data.h5"] = HttpFile(BODY, drops=download_module.ATTEMPTS)
    with pytest.raises(TnqError, match="re-run to resume"):
        download(http_server.url("/data.h5"), tmp_path / "data.h5", md5=MD5)
    part = tmp_path / "data.h5.part"
    assert _files(tmp_path) == ["data.h5.part", "data.h5.part.json"]
    kept = part.stat().st_size
    assert 0 < kept < len(BODY) and part.read_bytes() == BODY[:kept]
    assert served.drops == 0
    http_server.requests.clear()
    path = download(http_server.url("/data.h5"), tmp_path / "data.h5", md5=MD5)
    assert path.read_bytes() == BODY
    assert http_server.requests == [("/data.h5", f"bytes={kept}-")]
    assert http_server.if_ranges[-1] == served.etag
    assert _files(tmp_path) == ["data.h5", "data.h5.sha256"]


def test_stalled_connection_times_out_and_resumes(http_server: HttpServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_module, "TIMEOUT_S", 0.5)
    http_server.files["/data.h5"] = HttpFile(BODY, stalls=1)
    path = download(http_server.url("/data.h5"), tmp_path / "data.h5", md5=MD5)
    assert path.read_bytes() == BODY
    assert [rng for _, rng in http_server.requests] == [None, f"bytes={len(BODY) // 2}-"]


def test_server_ignoring_range_restarts_from_zero(http_server: HttpServer, tmp_path: Path) -> None:
    (tmp_path / "data.h5.part").write_bytes(BODY[:1000])
    http_server.files["/data.h5"] = HttpFile(BODY, honour_range=False)
    notes: list[str] = []
    path = download(http_server.url("/data.h5"), tmp_path / "data.h5", md5=MD5, reporter=Reporter(notes.append))
    assert path.read_bytes() == BODY
    assert http_server.requests == [("/data.h5", "bytes=1000-")]
    assert any("again from zero" in note for note in notes)


def test_complete_part_left_before_the_rename_is_accepted(http_server: HttpServer, tmp_path: Path) -> None:
    (tmp_path / "data.h5.part").write_bytes(BODY)
    http_server.files["/data.h5"] = HttpFile(BODY)
    path = download(http_server.url("/data.h5"), tmp_path / "data.h5", md5=MD5)
    assert path.read_bytes() == BODY
    assert http_server.requests == [("/data.h5", f"bytes={len(BODY)}-")]


def test_transient_server_errors_are_retried(http_server: HttpServer, tmp_path: Path) -> None:
    http_server.files["/data.h5"] = HttpFile(BODY, failures=2)
    path = download(http_server.url("/data.h5"), tmp_path / "data.h5", md5=MD5)
    assert path.read_bytes() == BODY
    assert len(http_server.requests) == 3


def test_wrong_bytes_fail_and_delete_the_part(http_server: HttpServer, tmp_path: Path) -> None:
    http_server.files["/data.h5"] = HttpFile(BODY[::-1])
    with pytest.raises(TnqError, match=f"checksum mismatch.*expected {MD5}.*deleted"):
        download(http_server.url("/data.h5"), tmp_path / "data.h5", md5=MD5)
    assert _files(tmp_path) == []


def test_corrupt_part_is_deleted_so_the_next_run_starts_afresh(http_server: HttpServer, tmp_path: Path) -> None:
    (tmp_path / "data.h5.part").write_bytes(b"garbage!")
    http_server.files["/data.h5"] = HttpFile(BODY)
    with pytest.raises(TnqError, match="checksum mismatch"):
        download(http_server.url("/data.h5"), tmp_path / "data.h5", sha256=SHA256)
    assert _files(tmp_path) == []
    assert download(http_server.url("/data.h5"), tmp_path / "data.h5", sha256=SHA256).read_bytes() == BODY


def test_missing_file_is_a_clear_error_without_retries(http_server: HttpServer, tmp_path: Path) -> None:
    with pytest.raises(TnqError, match=r"failed: HTTP 404.*`url`"):
        download(http_server.url("/nowhere.h5"), tmp_path / "data.h5", md5=MD5)
    assert len(http_server.requests) == 1
    assert _files(tmp_path) == []


def test_unreachable_server_gives_up_after_bounded_attempts(tmp_path: Path) -> None:
    with pytest.raises(TnqError, match=f"after {download_module.ATTEMPTS} attempts.*re-run to try again"):
        download("http://127.0.0.1:9/data.h5", tmp_path / "data.h5", md5=MD5)
    assert _files(tmp_path) == []


def test_present_matching_file_is_not_downloaded_again(http_server: HttpServer, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data.h5").write_bytes(BODY)
    notes: list[str] = []
    path = download(http_server.url("/data.h5"), tmp_path / "data.h5", md5=MD5, reporter=Reporter(notes.append))
    assert path.read_bytes() == BODY
    assert http_server.requests == []
    assert any("not downloading it again" in note for note in notes)
    assert capsys.readouterr().err == "", "a library prints nothing"


def test_present_file_with_wrong_checksum_is_an_error_and_kept(http_server: HttpServer, tmp_path: Path) -> None:
    (tmp_path / "data.h5").write_bytes(b"something else")
    with pytest.raises(TnqError, match="exists but its md5"):
        download(http_server.url("/data.h5"), tmp_path / "data.h5", md5=MD5)
    assert http_server.requests == []
    assert (tmp_path / "data.h5").read_bytes() == b"something else"


def test_unpinned_download_reports_the_sha256_it_computed(http_server: HttpServer, tmp_path: Path) -> None:
    http_server.files["/data.h5"] = HttpFile(BODY)
    notes: list[str] = []
    download(http_server.url("/data.h5"), tmp_path / "data.h5", reporter=Reporter(notes.append))
    assert any("no checksum is pinned" in note and f"`sha256` {SHA256}" in note for note in notes)


def test_malformed_checksum_or_address_is_refused_before_any_request(http_server: HttpServer,
                                                                    tmp_path: Path) -> None:
    with pytest.raises(TnqError, match="not a md5 checksum"):
        download(http_server.url("/data.h5"), tmp_path / "data.h5", md5="abc")
    with pytest.raises(TnqError, match="not a download address"):
        download("127.0.0.1/data.h5", tmp_path / "data.h5", md5=MD5)
    assert http_server.requests == []
    assert _files(tmp_path) == []


def test_download_larger_than_free_space_is_refused(http_server: HttpServer, tmp_path: Path) -> None:
    http_server.files["/huge.h5"] = HttpFile(BODY, claimed_length=1 << 60)
    with pytest.raises(TnqError, match="not enough disk space"):
        download(http_server.url("/huge.h5"), tmp_path / "huge.h5")
    assert not (tmp_path / "huge.h5").exists()


def test_file_checksum_reads_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "CHUNK_BYTES", 4096)
    (tmp_path / "blob").write_bytes(BODY)
    assert file_checksum(tmp_path / "blob") == SHA256
    assert file_checksum(tmp_path / "blob", "md5") == MD5


def test_fetch_dataset_uses_the_catalogue_name_and_checksum(http_server: HttpServer, tmp_path: Path) -> None:
    http_server.files["/mirror.h5"] = HttpFile(BODY)
    with pytest.raises(TnqError, match=f"expected {lookup('spice', '1.1.4').md5}"):
        fetch_dataset("spice", tmp_path, version="1.1.4", url=http_server.url("/mirror.h5"))
    path = fetch_dataset("spice", tmp_path, version="1.1.4", url=http_server.url("/mirror.h5"), md5=MD5)
    assert path == tmp_path / "SPICE-1.1.4.hdf5" and path.read_bytes() == BODY


def test_fetch_dataset_rejects_unknown_datasets_and_versions(tmp_path: Path) -> None:
    with pytest.raises(TnqError, match="known versions: 1.1.4, 2.0.1"):
        fetch_dataset("spice", tmp_path, version="9.9")
    with pytest.raises(TnqError, match="unknown dataset"):
        fetch_dataset("qm9", tmp_path)


def test_retries_wait_2_4_8_16_seconds_and_a_connection_times_out_after_60(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real backoff, not the short one of `http_fast_retries`
    delays: list[float] = []
    monkeypatch.setattr(download_module.time, "sleep", delays.append)
    with pytest.raises(TnqError, match="after 5 attempts"):
        download("http://127.0.0.1:9/data.h5", tmp_path / "data.h5", md5=MD5)
    assert delays == [2, 4, 8, 16]
    assert download_module.TIMEOUT_S == 60
