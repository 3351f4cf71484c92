"""Inputs for pipeline tests: sample files made once, and a real HTTP server on 127.0.0.1 that serves a folder."""

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tnq_data.sample import make_qmspin_sample, make_spice_sample


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A SPICE-layout file and two different QMspin-layout archives (2 and 3 carbenes)."""
    folder = tmp_path_factory.mktemp("inputs")
    return {"spice": make_spice_sample(folder / "spice.hdf5", n_conformers=2, seed=0),
            "qmspin": make_qmspin_sample(folder / "qmspin-2.tar.gz", n_carbenes=2, seed=0),
            "qmspin-other": make_qmspin_sample(folder / "qmspin-3.tar.gz", n_carbenes=3, seed=0)}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(folder, base address): files put into the folder are served at base + name."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
