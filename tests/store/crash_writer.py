"""Fault injection for store writes: a fork server that kills a writer at every file-system step.

    python crash_writer.py SCENARIO BASE WORKDIR

Counts the steps of one write of SCENARIO into a copy of BASE (a store, or a path that does not exist), then,
for each step N, copies BASE to WORKDIR/kill-N and forks a child that runs the same write and SIGKILLs
itself just before its N-th step. A step is any call that changes the file system or flushes it: opening a
file for writing, mkdir, rename, replace, link, unlink, rmdir, fsync. Prints JSON
``{"steps": K, "outcomes": {"N": "killed" | exit code}}``; WORKDIR/count holds the uninterrupted write.
Forking one process that has imported everything keeps a few hundred kills within seconds.
"""

import builtins
import io
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import random_batch  # noqa: E402

from tnq_data.store import Column, add_columns, open_store, write_store  # noqa: E402

STEP_FUNCTIONS = ("mkdir", "rename", "replace", "link", "unlink", "rmdir", "fsync")


def write_new(root: Path) -> str:
    """A first version: one shard."""
    return write_store(root, [random_batch(1, 6)])


def write_appended(root: Path) -> str:
    """A second version from new molecules, in two shards."""
    return write_store(root, [random_batch(2, 8)], shard_bytes=2500)


def write_nested_column(root: Path) -> str:
    """A child version adding a nested column (`charges/x`) to every shard."""
    n_atoms = open_store(root).n_atoms
    return add_columns(root, {"charges/x": Column("atom", np.linspace(-1, 1, n_atoms))})


SCENARIOS = {"create": write_new, "append": write_appended, "nested_column": write_nested_column}


def _install_steps(kill_at: int, counter: list[int]) -> None:
    """Count every step from now on; SIGKILL this process just before step `kill_at` (0: never)."""
    lock = threading.Lock()

    def step() -> None:
        with lock:
            counter[0] += 1
            if counter[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    def wrap(function):
        def stepped(*args, **kwargs):
            step()
            return function(*args, **kwargs)
        return stepped

    for name in STEP_FUNCTIONS:
        setattr(os, name, wrap(getattr(os, name)))
    real_open = io.open

    def opening(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+"):
            step()
        return real_open(file, mode, *args, **kwargs)

    builtins.open = io.open = opening


def _child(scenario: str, root: Path, kill_at: int, steps_file: Path | None) -> None:
    """Run in a forked child: the write, killed at step `kill_at`; never returns."""
    try:
        counter = [0]
        _install_steps(kill_at, counter)
        SCENARIOS[scenario](root)
        steps = counter[0]
        if steps_file is not None:
            steps_file.write_text(str(steps))
        os._exit(0)
    except BaseException:
        import traceback
        traceback.print_exc()
        os._exit(1)


def _run(scenario: str, base: Path, root: Path, kill_at: int, steps_file: Path | None = None) -> str | int:
    if base.exists():
        shutil.copytree(base, root)
    pid = os.fork()
    if pid == 0:
        _child(scenario, root, kill_at, steps_file)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "killed" if os.WTERMSIG(status) == signal.SIGKILL else -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def main() -> None:
    scenario, base, workdir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    workdir.mkdir(parents=True, exist_ok=True)  # else the counted write would also create it
    steps_file = workdir / "steps"
    if _run(scenario, base, workdir / "count", 0, steps_file) != 0:
        sys.exit("the uninterrupted write failed")
    steps = int(steps_file.read_text())
    outcomes = {n: _run(scenario, base, workdir / f"kill-{n}", n) for n in range(1, steps + 1)}
    print(json.dumps({"steps": steps, "outcomes": outcomes}))


if __name__ == "__main__":
    main()
