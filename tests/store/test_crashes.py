"""Crashes at every step of a write, and the order of the flushes that a power loss relies on."""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tnq_core.errors import TnqError
from tnq_data.store import Column, add_columns, open_store, write_store
from tnq_data.store.durable import TMP_PREFIX
from tnq_data.store.verify import verify_store

HELPER = Path(__file__).with_name("crash_writer.py")
_spec = importlib.util.spec_from_file_location("crash_writer", HELPER)
crash_writer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(crash_writer)


@pytest.fixture
def workdir(tmp_path):
    """A directory in memory (/dev/shm) where there is one: a SIGKILL keeps the page cache, so a disk would
    only add the time of a few hundred flushes."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm) as directory:
        yield Path(directory)


def _temporaries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(f"{TMP_PREFIX}*"))


def _state_after_kill(root: Path, before: str | None, after: str) -> str | None:
    """The version a killed write left, checked complete (verify decodes and re-hashes every array)."""
    if before is None and not (root / "HEAD").exists():
        with pytest.raises(TnqError, match="not a tnq store|no such store"):
            open_store(root)
        return None
    version = open_store(root).version
    assert version in (before, after)
    assert verify_store(root) == ([version], []), "every array of the version decodes and hashes as its manifest says"
    return version


@pytest.mark.parametrize("scenario", [
    pytest.param("create", marks=pytest.mark.slow),
    pytest.param("append", marks=pytest.mark.slow),
    "nested_column",
])
def test_a_writer_killed_at_every_step_leaves_a_complete_version_and_a_rerun_completes_it(workdir, make_batch, scenario):
    base = workdir / "base"
    if scenario == "append":
        write_store(base, [make_batch(1, 6)])
    elif scenario == "nested_column":
        write_store(base, [make_batch(1, 8)], shard_bytes=2500)
    before = open_store(base).version if base.exists() else None
    result = subprocess.run([sys.executable, str(HELPER), scenario, str(base), str(workdir)],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    after = open_store(workdir / "count").version
    assert after != before and report["steps"] > 20
    assert set(report["outcomes"].values()) == {"killed"}, "every step was reached and killed the writer"
    left, nested = Counter(), 0
    for n in range(1, report["steps"] + 1):
        root = workdir / f"kill-{n}"
        left[_state_after_kill(root, before, after)] += 1
        nested += any(p.parent.name == "charges" for p in _temporaries(root))
        assert crash_writer.SCENARIOS[scenario](root) == after, f"the re-run after a kill at step {n}"
        assert verify_store(root) == ([after], []) and _temporaries(root) == []
    assert left[before] and left[after], f"kills fell on both sides of the commit: {dict(left)}"
    if scenario == "nested_column":
        assert nested, "some kills left temporaries of the nested column, which the re-run removed"


class _Recorder:
    """Records, in order, the file-system calls a power loss cares about, with absolute paths."""

    def __init__(self, monkeypatch) -> None:
        self.events: list[tuple] = []
        paths = {"mkdir": lambda a: ("add", a[0]), "link": lambda a: ("add", a[1]),
                 "rename": lambda a: ("move", a[0], a[1]), "replace": lambda a: ("move", a[0], a[1])}
        for name, event in paths.items():
            monkeypatch.setattr(os, name, self._wrap(getattr(os, name), event))
        fsync = os.fsync

        def recorded_fsync(fd):
            fsync(fd)
            self.events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        monkeypatch.setattr(os, "fsync", recorded_fsync)

    def _wrap(self, function, event):
        def recorded(*args, **kwargs):
            function(*args, **kwargs)
            kind, *paths = event(args)
            self.events.append((kind, *(os.path.abspath(p) for p in paths)))
        return recorded

    def final_names(self) -> list[tuple]:
        """Each event with its paths renamed as later moves renamed them (a temporary becomes its final name)."""
        out = []
        for i, (kind, *paths) in enumerate(self.events):
            for later in self.events[i + 1:]:
                if later[0] == "move":
                    src, dst = later[1], later[2]
                    paths = [dst + p[len(src):] if p == src or p.startswith(src + "/") else p for p in paths]
            out.append((kind, *paths))
        return out


def _power_loss_problems(events: list[tuple], root: Path, version: str, commit: int, end: int) -> list[str]:
    """What a power loss just after `events[commit]` (HEAD -> `version`) could lose that HEAD names."""
    manifest = json.loads((root / "versions" / f"{version}.json").read_text())
    files = {str(root / "versions" / f"{version}.json")}
    files |= {str(f) for entry in manifest["arrays"].values() for part in entry["shards"]
              for f in (root / part["path"]).rglob("*") if f.is_file()}
    needed = files | {str(d) for f in files for d in Path(f).parents if d == root or root in d.parents}
    synced = [i for i, e in enumerate(events) if e[0] == "fsync"]
    problems = [f"file never flushed: {f}" for f in files
                if not any(events[i][1] == f for i in synced if i < commit)]
    for i, event in enumerate(events[:commit]):
        child = event[-1]
        if event[0] in ("add", "move") and child in needed:
            parent = str(Path(child).parent)
            if not any(events[j][1] == parent for j in synced if i < j < commit):
                problems.append(f"entry {child} not flushed in {parent}")
    if not any(events[j][1] == str(root) for j in synced if commit < j < end):
        problems.append("HEAD itself not flushed")
    return problems


def test_every_file_and_directory_head_names_is_flushed_before_head_moves(tmp_path, make_batch, monkeypatch):
    root = tmp_path / "s"
    recorder = _Recorder(monkeypatch)
    versions = [write_store(root, [make_batch(1, 8)], shard_bytes=1200)]
    versions.append(add_columns(root, {"charges/x": Column("atom", np.zeros(open_store(root).n_atoms))}))
    versions.append(write_store(root, [make_batch(2, 8)], shard_bytes=1200))
    events = recorder.final_names()
    commits = [i for i, e in enumerate(events) if e[0] == "move" and e[2] == str(root / "HEAD")]
    assert len(commits) == 3
    for version, commit, end in zip(versions, commits, commits[1:] + [len(events)]):
        assert _power_loss_problems(events, root, version, commit, end) == [], version
