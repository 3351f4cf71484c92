"""A pipeline removes only directories it made, under the store writer lock: never a user's store, never one
that another process is writing."""

import shutil
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tnq_core.errors import TnqError
from tnq_core.progress import Reporter
from tnq_data.pipeline import load_pipeline, run_pipeline
from tnq_data.pipeline.outputs import MARKER
from tnq_data.pipeline.state import STATE_FILE
from tnq_data.sources.qmspin import curate_qmspin
from tnq_data.store import open_store

HOLD_LOCK = """
import sys, time
from pathlib import Path
from tnq_data.store.manifest import writer_lock
with writer_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def _pipeline(tmp_path: Path, archive: Path, sha256: str | None = None, **changes):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "own", "stages": [
        {"name": "fetched", "kind": "fetch", "dataset": "qmspin", "url": f"file://{archive}", "sha256": sha256},
        {"name": "carbenes", "kind": "curate_qmspin", "input": "fetched", **changes}]}))
    return load_pipeline(path)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of `folder` but the lock (which holds the pid of the last process that took it)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def lock_holder():
    """Start a process that holds the writer lock of a store until the test ends."""
    started = []

    def hold(store: Path) -> None:
        process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(store)], stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout.readline().strip() == "held"

    yield hold
    for process in started:
        process.kill()
        process.wait()


def test_a_users_store_at_a_stage_output_path_is_refused_not_deleted(tmp_path, sample_files):
    user_store = tmp_path / "work" / "stores" / "carbenes"
    version = curate_qmspin(sample_files["qmspin-other"], user_store)
    before = _snapshot(user_store)
    with pytest.raises(TnqError, match=rf"stage carbenes: {user_store} exists but was not made by this pipeline.*"
                                       r"move it elsewhere or choose another `workdir`"):
        run_pipeline(_pipeline(tmp_path, sample_files["qmspin"]), tmp_path / "work")
    assert _snapshot(user_store) == before and open_store(user_store).version == version


def test_cli_names_the_users_store_in_one_line(tmp_path, sample_files):
    user_store = tmp_path / "work" / "stores" / "carbenes"
    curate_qmspin(sample_files["qmspin"], user_store)
    _pipeline(tmp_path, sample_files["qmspin"])
    done = subprocess.run(["tnq-data", "-q", "run", str(tmp_path / "p.yaml"), "--workdir", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and str(user_store) in done.stderr
    assert open_store(user_store).n_molecules


def test_a_store_being_written_is_not_removed(tmp_path, sample_files, lock_holder):
    workdir = tmp_path / "work"
    first = run_pipeline(_pipeline(tmp_path, sample_files["qmspin"]), workdir)
    store = Path(first["carbenes"]["outputs"]["store"])
    assert (store / MARKER).is_file()
    before = _snapshot(store)
    lock_holder(store)
    other = _pipeline(tmp_path, sample_files["qmspin-other"])   # another file: the store would be replaced
    with pytest.raises(TnqError, match=rf"stage carbenes: {store} is being written by another process \(pid \d+\)"):
        run_pipeline(other, workdir, force=("fetched",))
    assert _snapshot(store) == before


def test_a_staging_store_being_written_by_another_run_is_not_removed(tmp_path, sample_files, lock_holder):
    workdir = tmp_path / "work"
    run_pipeline(_pipeline(tmp_path, sample_files["qmspin"]), workdir)
    staging = workdir / "stores" / ".carbenes.new"
    staging.mkdir()
    (staging / MARKER).write_text("made by tnq-data run\n")
    curate_qmspin(sample_files["qmspin"], staging / "carbenes")
    lock_holder(staging / "carbenes")
    with pytest.raises(TnqError, match=r"is being written by another process"):
        run_pipeline(_pipeline(tmp_path, sample_files["qmspin"]), workdir, force=("carbenes",))
    assert open_store(staging / "carbenes").n_molecules


def test_a_marked_staging_directory_left_by_an_interrupted_stage_is_replaced(tmp_path, sample_files):
    workdir = tmp_path / "work"
    run_pipeline(_pipeline(tmp_path, sample_files["qmspin"]), workdir)
    staging = workdir / "stores" / ".carbenes.new"
    staging.mkdir()
    (staging / MARKER).write_text("made by tnq-data run\n")
    curate_qmspin(sample_files["qmspin-other"], staging / "carbenes")     # a half-finished stage, say
    state = run_pipeline(_pipeline(tmp_path, sample_files["qmspin"]), workdir, force=("carbenes",))
    assert not staging.exists() and open_store(state["carbenes"]["outputs"]["store"]).version == state["carbenes"]["outputs"]["version"]


@pytest.mark.parametrize("same_fingerprint", [True, False])
def test_an_interrupted_fetch_continues_from_its_staged_part_only_with_the_same_fingerprint(tmp_path, sample_files,
                                                                                              same_fingerprint):
    workdir = tmp_path / "work"
    pinned = hashlib.sha256(sample_files["qmspin"].read_bytes()).hexdigest()    # a pinned file may be resumed
    run_pipeline(_pipeline(tmp_path, sample_files["qmspin"], pinned), workdir)
    state_path = workdir / STATE_FILE
    state = json.loads(state_path.read_text())     # as if the process had died while downloading
    fingerprint = state["stages"]["fetched"]["fingerprint"]
    state["running"] = {"stage": "fetched", "fingerprint": fingerprint if same_fingerprint else {**fingerprint, "code": "x"}}
    state_path.write_text(json.dumps(state))
    staging = workdir / "raw" / ".fetched.new"
    (staging / "fetched").mkdir(parents=True)
    (staging / MARKER).write_text("made by tnq-data run\n")
    body = sample_files["qmspin"].read_bytes()
    half = len(body) // 2
    (staging / "fetched" / "QMspin_Part1.tar.gz.part").write_bytes(body[:half])
    lines: list[str] = []
    run_pipeline(_pipeline(tmp_path, sample_files["qmspin"], pinned), workdir, force=("fetched",),
                 reporter=Reporter(lines.append))
    continued = [line for line in lines if f"resuming the download at byte {half:,}" in line]
    assert bool(continued) == same_fingerprint, lines
    assert not staging.exists()


def test_an_unmarked_staging_directory_is_refused(tmp_path, sample_files):
    workdir = tmp_path / "work"
    (workdir / "stores" / ".carbenes.new").mkdir(parents=True)
    (workdir / "stores" / ".carbenes.new" / "notes.txt").write_text("mine")
    with pytest.raises(TnqError, match=r"\.carbenes\.new exists but was not made by this pipeline"):
        run_pipeline(_pipeline(tmp_path, sample_files["qmspin"]), workdir)
    assert (workdir / "stores" / ".carbenes.new" / "notes.txt").read_text() == "mine"


def test_replaced_outputs_leave_no_staging_or_removed_directories(tmp_path, sample_files):
    workdir = tmp_path / "work"
    archive = tmp_path / "archive.tar.gz"
    shutil.copy(sample_files["qmspin"], archive)
    first = run_pipeline(_pipeline(tmp_path, archive), workdir)
    shutil.copy(sample_files["qmspin-other"], archive)
    second = run_pipeline(_pipeline(tmp_path, archive), workdir, force=("fetched",))
    assert second["carbenes"]["outputs"]["version"] != first["carbenes"]["outputs"]["version"]
    leftovers = sorted(p.name for folder in ("raw", "stores") for p in (workdir / folder).iterdir())
    assert leftovers == ["carbenes", "fetched"]
    assert open_store(second["carbenes"]["outputs"]["store"]).version == second["carbenes"]["outputs"]["version"]
