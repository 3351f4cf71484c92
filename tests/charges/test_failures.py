"""Which failures are cached: the molecule's only. Tool and environment failures stop the run; timeouts are
retried by the next run, also on an external dask cluster (real `dask scheduler` and `dask worker` processes)."""

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tnq_core.errors import TnqError
from tnq_data.charges import compute_charges
from tnq_data.charges.am1bcc import Am1Bcc
from tnq_data.charges.base import ChargeFailure, ChargeUnit, ToolFailure
from tnq_data.charges.gfn2 import Gfn2
from tnq_data.store import open_store

IBUPROFEN = "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O"
SODIUM = "[H:3][C:1]#[C:2][H:4].[Na+:5]"


def path_without(program: str) -> str:
    """$PATH without the directories that hold `program` (the pyenv shims included)."""
    return os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not Path(d, program).exists())


@contextmanager
def external_cluster(directory: Path, env: dict | None = None):
    """A `dask scheduler` and one `dask worker` (a nanny with a daemonic worker process, as the command starts
    it) on 127.0.0.1, as separate processes; yields the scheduler address and stops both afterwards."""
    from distributed import Client

    scheduler_file = directory / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--no-dashboard", "--scheduler-file", str(scheduler_file)], **quiet)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert time.monotonic() < deadline and processes[0].poll() is None, "the dask scheduler did not start"
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        processes.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1",
                                           "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
                                          env={**os.environ, **(env or {})}, **quiet))
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_a_missing_program_is_a_tool_failure_and_a_molecule_problem_is_not(embed, monkeypatch):
    z, positions = embed("CCO", 1)
    monkeypatch.setenv("PATH", path_without("antechamber"))
    for unit in (ChargeUnit("CCO", z, 0, 1), ChargeUnit("CCO", z, 0, 1, positions[0])):  # OpenFF, antechamber
        [result] = Am1Bcc().compute_many([unit])
        assert isinstance(result, ToolFailure), result
    with pytest.raises(TnqError, match="antechamber and sqm is not on PATH"):
        Am1Bcc().check_available()
    monkeypatch.undo()
    z_na, positions_na = embed(SODIUM, 1)
    [result] = Am1Bcc().compute_many([ChargeUnit(SODIUM, z_na, 1, 1, positions_na[0])])
    assert isinstance(result, ChargeFailure) and "no parameters" in str(result)


def test_without_the_tools_a_run_stops_before_any_work(tmp_path, cache_dir, store_factory, monkeypatch):
    store = store_factory[0](tmp_path / "store", [("CCO", 0, 1, 1)])
    before = open_store(store).version
    monkeypatch.setenv("PATH", path_without("antechamber"))
    with pytest.raises(TnqError, match="needs AmberTools"):
        compute_charges(store, "am1bcc", fallback=["gfn2"], cache_dir=cache_dir)
    assert open_store(store).version == before and not cache_dir.exists()


def test_a_worker_without_the_tools_stops_the_run_and_caches_nothing(tmp_path, cache_dir, store_factory,
                                                                      entry_files):
    store = store_factory[0](tmp_path / "store", [("CCO", 0, 1, 1), ("CC(=O)[O-]", -1, 1, 1)])
    before = open_store(store).version
    with external_cluster(tmp_path, env={"PATH": path_without("antechamber")}) as address:
        with pytest.raises(TnqError) as raised:
            compute_charges(store, "am1bcc", fallback=["gfn2"], scheduler=address, cache_dir=cache_dir)
    message = str(raised.value)
    assert "scheme am1bcc could not run on molecule" in message and "not on PATH" in message
    assert "not of the molecule" in message and len(message.splitlines()) == 1
    assert open_store(store).version == before and entry_files(cache_dir) == []


def test_timeout_on_an_external_cluster_and_a_rerun_retries_the_timed_out(tmp_path, cache_dir, store_factory,
                                                                          entry_files):
    make_store, _ = store_factory
    store = make_store(tmp_path / "store", [(IBUPROFEN, 0, 1, 1)])
    with external_cluster(tmp_path) as address:
        compute_charges(store, "am1bcc", fallback=["gfn2"], timeout=1.0, scheduler=address, cache_dir=cache_dir)
    opened = open_store(store)
    [row] = opened.tables["charges/am1bcc/failures"]
    assert (row["reason"], row["retryable"], row["used"]) == ("timed out after 1 s", True, "gfn2")
    z, positions = opened.column("z"), opened.column("pos")
    reference = Gfn2().compute(ChargeUnit(IBUPROFEN, z, 0, 1, positions.astype(np.float64)))
    np.testing.assert_allclose(opened.column("charges/am1bcc"), reference, atol=1e-6)
    assert len(entry_files(cache_dir)) == 1  # the GFN2 charges; the timeout is not cached

    # Without the deadline the next run computes AM1-BCC: the same content as a run that never timed out.
    retried = compute_charges(store, "am1bcc", fallback=["gfn2"], cache_dir=cache_dir)
    clean = make_store(tmp_path / "clean", [(IBUPROFEN, 0, 1, 1)])
    compute_charges(clean, "am1bcc", fallback=["gfn2"], cache_dir=tmp_path / "cold")
    a, b = open_store(store), open_store(clean)
    for column in ("charges/am1bcc", "charges_scheme/am1bcc", "charges_method/am1bcc", "charges_basis/am1bcc"):
        np.testing.assert_array_equal(a.column(column), b.column(column))
    assert a.column("charges_scheme/am1bcc").tolist() == ["am1bcc"] and a.tables["charges/am1bcc/failures"] == []
    assert b.tables["charges/am1bcc/failures"] == []
    assert compute_charges(store, "am1bcc", fallback=["gfn2"], cache_dir=cache_dir) == retried  # converged


def test_the_sandbox_child_times_out_recovers_and_reports_a_broken_set_up():
    import functools
    import importlib
    import math

    from tnq_data.charges.base import TransientFailure
    from tnq_data.charges.sandbox import Sandbox

    box = Sandbox(math.sqrt, functools.partial(importlib.import_module, "tblite.interface"))
    assert box.run(16.0, timeout=30) == 4.0
    sleeper = Sandbox(time.sleep, functools.partial(importlib.import_module, "math"))
    with pytest.raises(TransientFailure, match="timed out after 0.5 s"):
        sleeper.run(30, timeout=0.5)
    assert sleeper.run(0, timeout=30) is None  # a fresh child serves the next call
    broken = Sandbox(math.sqrt, functools.partial(importlib.import_module, "tnq_no_such_module"))
    with pytest.raises(ToolFailure, match="did not start: ModuleNotFoundError: No module named 'tnq_no_such_module'"):
        broken.run(1.0, timeout=30)


def test_a_worker_with_other_tool_versions_stops_the_run(tmp_path, cache_dir, store_factory, entry_files):
    shadow = tmp_path / "shadow" / "tblite-0.0.1.dist-info"  # installed metadata saying tblite 0.0.1
    shadow.mkdir(parents=True)
    (shadow / "METADATA").write_text("Metadata-Version: 2.1\nName: tblite\nVersion: 0.0.1\n")
    store = store_factory[0](tmp_path / "store", [("CCO", 0, 1, 1)])
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH")]))}
    with external_cluster(tmp_path, env=env) as address:
        with pytest.raises(TnqError, match=r"a dask worker runs scheme gfn2 with \{'tblite': '0.0.1'\}"):
            compute_charges(store, "gfn2", scheduler=address, cache_dir=cache_dir)
    assert entry_files(cache_dir) == [] and open_store(store).parent is None
