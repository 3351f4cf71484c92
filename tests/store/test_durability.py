"""Crashes, concurrent writers and damaged files: the store stays readable and says what is wrong."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from tnq_core.errors import TnqError
from tnq_data.store import open_store, write_store
from tnq_data.store.verify import verify_store

WRITER = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {tests!r})
    from conftest import random_batch
    from tnq_data.store import write_store

    def batches():
        for k in range(8):
            yield random_batch(100 + k, 10, 10 * k)
            if k == {kill_after}:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep({pause})

    write_store({root!r}, batches(), shard_bytes=2000)
""")


def _writer(root, kill_after=-1, pause=0.0):
    script = WRITER.format(tests=os.path.dirname(__file__), root=str(root), kill_after=kill_after, pause=pause)
    return subprocess.Popen([sys.executable, "-c", script])


def test_a_killed_write_leaves_the_previous_version_and_a_rerun_completes_it(tmp_path, make_batch):
    root = tmp_path / "s"
    first = write_store(root, [make_batch(1, 30)], shard_bytes=2000)
    shutil.copytree(root, tmp_path / "copy")
    process = _writer(root, kill_after=4)
    assert process.wait(60) == -9
    assert any(root.glob("shards/*/.tmp-*")) or len(list(root.glob("shards/*"))) > open_store(root).n_shards, "killed mid-write"
    store = open_store(root)
    assert store.version == first and verify_store(root) == ([first], [])
    assert _writer(root).wait(60) == 0
    assert _writer(tmp_path / "copy").wait(60) == 0
    resumed, clean = open_store(root), open_store(tmp_path / "copy")
    assert resumed.version == clean.version != first and resumed.parent == first
    assert verify_store(root, all_versions=True)[1] == [] and not any(root.glob("shards/*/.tmp-*"))


def test_a_second_writer_gets_a_clear_error_and_the_store_stays_whole(tmp_path, make_batch):
    root = tmp_path / "s"
    process = _writer(root, pause=0.3)
    deadline = time.time() + 30
    while time.time() < deadline and not ((root / ".lock").exists() and (root / ".lock").read_text().strip()):
        time.sleep(0.05)
    with pytest.raises(TnqError, match=f"being written by another process \\(pid {process.pid}\\)"):
        write_store(root, [make_batch(9, 3)])
    assert process.wait(60) == 0
    assert open_store(root).n_molecules == 80 and verify_store(root)[1] == []


def _cli(*args):
    return subprocess.run(["tnq-data", *args], capture_output=True, text=True, timeout=120)


def test_verify_names_damaged_and_missing_files_without_a_traceback(tmp_path, make_batch):
    root = tmp_path / "s"
    write_store(root, [make_batch(1, 30)], shard_bytes=2000)
    assert _cli("verify", str(root)).returncode == 0
    pos_chunk = next(root.glob("shards/00001/pos.*/c/0/0"))
    data = bytearray(pos_chunk.read_bytes())
    data[5] ^= 0xFF
    pos_chunk.write_bytes(bytes(data))
    z_chunk = next(root.glob("shards/00002/z.*/c/0"))
    z_chunk.write_bytes(b"garbage")
    energy = next(root.glob("shards/00000/energy.*"))
    shutil.rmtree(energy)
    result = _cli("verify", str(root))
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert f"damaged: {pos_chunk}" in result.stdout and str(z_chunk) in result.stdout
    assert f"missing: {energy}/zarr.json" in result.stdout
    report = json.loads(_cli("verify", str(root), "--json").stdout)
    assert not report["ok"] and len(report["problems"]) == 3


def test_a_damaged_manifest_or_head_gives_one_line(tmp_path, make_batch):
    root = tmp_path / "s"
    vid = write_store(root, [make_batch(1, 5)])
    manifest = root / "versions" / f"{vid}.json"
    manifest.write_text(manifest.read_text().replace('"molecule": 5', '"molecule": 6'))
    result = _cli("verify", str(root))
    assert result.returncode == 1 and "do not hash to version" in result.stdout
    manifest.write_text("{not json")
    for command in (["info", str(root)], ["verify", str(root)], ["log", str(root)]):
        result = _cli(*command)
        assert result.returncode == 1, command
        assert "Traceback" not in result.stderr and "not valid JSON" in result.stdout + result.stderr
    (root / "HEAD").write_text("")
    assert "HEAD is empty" in _cli("info", str(root)).stderr


def test_info_json_and_bad_paths(tmp_path, make_batch):
    root = tmp_path / "s"
    write_store(root, [make_batch(1, 5)], provenance={"command": "test", "parameters": {"k": 1}})
    document = json.loads(_cli("info", str(root), "--json").stdout)
    for key in ("version", "n_molecules", "n_conformers", "n_atoms", "arrays", "shards", "parent"):
        assert key in document
    assert {a["name"]: a["unit"] for a in document["arrays"]}["pos"] == "angstrom"
    assert document["provenance"]["parameters"] == {"k": 1} and "numpy" in document["provenance"]["packages"]
    human = _cli("info", str(root))
    assert human.returncode == 0 and "5 molecules" in human.stdout
    missing = _cli("info", str(tmp_path / "absent"))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "no such store" in missing.stderr
    assert "Traceback" in _cli("--debug", "info", str(tmp_path / "absent")).stderr


def test_error_lines_keep_square_brackets(tmp_path):
    result = _cli("info", str(tmp_path / "[mbis]"))
    assert result.returncode == 1 and "[mbis]" in result.stderr
