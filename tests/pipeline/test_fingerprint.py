"""Fingerprint parts: the code revision follows every source file, file hashes are remembered per file identity."""

import sys

import xxhash

from tnq_data.pipeline.fingerprint import FileDigests, code_revision, tool_version


def test_code_revision_changes_with_any_source_file_but_not_with_bytecode(tmp_path, monkeypatch):
    package = tmp_path / "scratch_pkg_for_revision"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "model.py").write_text("A = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = code_revision(("scratch_pkg_for_revision",))
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert code_revision(("scratch_pkg_for_revision",)) == first
    (package / "sub" / "model.py").write_text("A = 2\n")
    assert code_revision(("scratch_pkg_for_revision",)) != first
    (package / "sub" / "model.py").write_text("A = 1\n")
    assert code_revision(("scratch_pkg_for_revision",)) == first
    (package / "sub" / "data.json").write_text("{}")
    assert code_revision(("scratch_pkg_for_revision",)) != first
    sys.modules.pop("scratch_pkg_for_revision", None)


def test_tool_versions_of_installed_and_missing_tools():
    from importlib import metadata

    assert tool_version("numpy") == metadata.version("numpy")
    assert tool_version("no-such-tool-here") == "not installed"


def test_file_digests_hash_contents_and_are_remembered_per_file_identity(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    digests = FileDigests()
    assert digests(path) == "xxh3:" + xxhash.xxh3_128_hexdigest(b"abc" * 1000)
    remembered = FileDigests({identity: "xxh3:remembered" for identity in digests.used})
    assert remembered(path) == "xxh3:remembered", "an unchanged file is not read again"
    moved = tmp_path / "g.bin"
    path.rename(moved)
    assert remembered(moved) == "xxh3:remembered", "a renamed file keeps its identity"
    moved.write_bytes(b"abd" * 1000)
    assert remembered(moved) == "xxh3:" + xxhash.xxh3_128_hexdigest(b"abd" * 1000)
