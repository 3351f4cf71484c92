"""Shared fixtures: the real SPICE sample from /work/shared (never copied into the repository)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spice_sample() -> Path:
    """The real 2-molecule SPICE 1.1.4 excerpt: $TNQ_SPICE_SAMPLE, else ../shared/data/spice/ beside the repo."""
    path = Path(os.environ.get("TNQ_SPICE_SAMPLE") or REPO.parent / "shared/data/spice/SPICE-1.1.4_n2.hdf5")
    if not path.is_file():
        pytest.skip(f"SPICE sample not found at {path}; set TNQ_SPICE_SAMPLE to SPICE-1.1.4_n2.hdf5")
    return path


@pytest.fixture(autouse=True)
def setup_cache(tmp_path_factory, monkeypatch) -> Path:
    """Each test's own, empty setup cache ($TNQ_SETUP_CACHE): nothing read from another test or the home
    directory."""
    directory = tmp_path_factory.mktemp("setup-cache")
    monkeypatch.setenv("TNQ_SETUP_CACHE", str(directory))
    return directory
