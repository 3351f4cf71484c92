"""`tnq-data fetch` end to end through the real Typer app, against a local HTTP server."""

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from tnq_core.cli import run_app
from tnq_data.cli import app
from tnq_data.sources import archive as archive_module
from tnq_data.store import open_store

from .conftest import HttpFile, HttpServer
from .test_qmspin import GOOD, write_layout

pytestmark = pytest.mark.usefixtures("http_fast_retries")

BODY = os.urandom(100_000)
MD5 = hashlib.md5(BODY).hexdigest()


def _qmspin_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("QMspin_Part1/geometries_singlet/1_s.xyz")
        info.size = len(BODY)
        tar.addfile(info, io.BytesIO(BODY))
    return buffer.getvalue()


def test_fetch_spice_prints_the_path_and_verified_checksum(http_server: HttpServer, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    http_server.files["/spice.h5"] = HttpFile(BODY)
    argv = ["--quiet", "fetch", "spice", "--version", "1.1.4", "--dest", str(tmp_path),
            "--url", http_server.url("/spice.h5"), "--md5", MD5]
    assert run_app(app, argv) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "SPICE-1.1.4.hdf5")
    assert (tmp_path / "SPICE-1.1.4.hdf5").read_bytes() == BODY
    assert f"md5 {MD5} verified" in err
    assert run_app(app, argv) == 0
    assert "not downloading it again" in capsys.readouterr().err
    assert len(http_server.requests) == 1


def test_fetch_errors_are_one_line_and_a_non_zero_exit(http_server: HttpServer, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fetch", "spice", "--dest", str(tmp_path), "--url", http_server.url("/missing.h5")]
    assert run_app(app, argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "HTTP 404" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_fetch_qmspin_downloads_unpinned_and_extracts(http_server: HttpServer, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    archive = _qmspin_archive()
    http_server.files["/qmspin.tgz"] = HttpFile(archive)
    argv = ["--quiet", "fetch", "qmspin", "--dest", str(tmp_path), "--url", http_server.url("/qmspin.tgz"), "--extract"]
    assert run_app(app, argv) == 0
    out, err = capsys.readouterr()
    folder = tmp_path / "QMspin_Part1"
    assert out.split() == [str(tmp_path / "QMspin_Part1.tar.gz"), str(folder)]
    assert f"--sha256 {hashlib.sha256(archive).hexdigest()}" in err
    assert (folder / "QMspin_Part1" / "geometries_singlet" / "1_s.xyz").read_bytes() == BODY
    assert run_app(app, argv) == 0
    assert "not extracting again" in capsys.readouterr().err


def _tar_gz(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname="QMspin_Part1")
    return buffer.getvalue()


def test_fetch_extract_then_curate_records_the_first_download_in_the_store(http_server: HttpServer, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    archive = _tar_gz(write_layout(tmp_path / "src", GOOD))
    http_server.files["/qmspin.tgz"] = HttpFile(archive)
    raw = tmp_path / "raw"
    argv = ["--quiet", "fetch", "qmspin", "--dest", str(raw), "--url", http_server.url("/qmspin.tgz"), "--extract"]
    assert run_app(app, argv) == 0
    digest = hashlib.sha256(archive).hexdigest()
    assert (raw / "QMspin_Part1.tar.gz.sha256").read_text().split()[0] == digest
    assert run_app(app, ["--quiet", "curate", "qmspin", str(raw / "QMspin_Part1"), "--out", str(tmp_path / "s")]) == 0
    entry = open_store(tmp_path / "s").manifest["provenance"]["inputs"][0]
    assert entry["extracted_from"] == {"name": "QMspin_Part1.tar.gz", "sha256": digest, "bytes": len(archive)}
    assert run_app(app, ["--quiet", "curate", "qmspin", str(raw / "QMspin_Part1.tar.gz"), "--out", str(tmp_path / "a")]) == 0
    assert open_store(tmp_path / "a").manifest["provenance"]["inputs"][0]["first_download_sha256"] == digest
    capsys.readouterr()


def test_fetch_checks_size_and_refuses_an_archive_bomb(http_server: HttpServer, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bomb = tmp_path / "bomb" / "QMspin_Part1"
    bomb.mkdir(parents=True)
    (bomb / "zeros.xyz").write_bytes(bytes(4 << 20))
    archive = _tar_gz(bomb)
    http_server.files["/qmspin.tgz"] = HttpFile(archive)
    base = ["--quiet", "fetch", "qmspin", "--dest", str(tmp_path / "raw"), "--url", http_server.url("/qmspin.tgz")]
    assert run_app(app, [*base, "--size", str(len(archive) + 1)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"release has {len(archive) + 1:,} (--size)" in err
    monkeypatch.setattr(archive_module, "MAX_BYTES", 1 << 20)
    assert run_app(app, [*base, "--size", str(len(archive)), "--extract"]) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("error:") and "unpacks into more than 1,048,576 bytes" in last
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["QMspin_Part1.tar.gz", "QMspin_Part1.tar.gz.sha256"]
