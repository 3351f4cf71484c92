"""Nothing read unchecked: manifests, chunk checksums, content hashes, content-addressed paths, temporaries."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xxhash
import zarr

from tnq_core.errors import TnqError
from tnq_data.store import Column, add_columns, open_store, set_head, write_store
from tnq_data.store.arrays import DamagedArray
from tnq_data.store.manifest import read_manifest
from tnq_data.store.verify import verify_store


def _flip(path: Path, offset: int, mask: int = 0x01) -> None:
    """XOR one byte of a file in place (flipping it twice restores it)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ mask]))


def _array_dir(root: Path, shard: int, name: str) -> Path:
    relpath = open_store(root, verify=False).manifest["arrays"][name]["shards"][shard]["path"]
    return root / relpath


def _chunk(array_dir: Path) -> Path:
    return next(p for p in (array_dir / "c").rglob("*") if p.is_file())


def test_every_bit_flip_in_a_manifest_is_refused(tmp_path, make_batch):
    root = tmp_path / "s"
    vid = write_store(root, [make_batch(1, 3)], provenance={"command": "test", "parameters": {"k": 1}})
    path = root / "versions" / f"{vid}.json"
    original = path.read_bytes()
    expected = json.loads(original)
    for offset in range(len(original)):
        _flip(path, offset)
        try:
            manifest = read_manifest(root)
        except TnqError as err:
            assert str(path) in str(err) and "tnq-data verify" in str(err)
        else:
            assert manifest == expected, f"a bit flip at byte {offset} was read as other contents"
        _flip(path, offset)
    path.write_text(original.decode().replace('"k": 1', '"k": 2'))
    with pytest.raises(TnqError, match="do not match its checksum"):
        open_store(root)
    path.write_text(original.decode().replace('"molecule": 3', '"molecule": 4'))
    with pytest.raises(TnqError, match=f"do not hash to version {vid}"):
        open_store(root)


def test_the_checksum_and_the_id_follow_the_documented_recipe(tmp_path, make_batch):
    batch = make_batch(1, 3)
    vid = write_store(tmp_path / "a", [batch], provenance={"command": "a"})
    assert write_store(tmp_path / "b", [batch], provenance={"command": "b", "parameters": {"x": 1}}) == vid
    manifest = json.loads((tmp_path / "a" / "versions" / f"{vid}.json").read_text())

    def canonical(obj):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert manifest["checksum"] == xxhash.xxh3_128_hexdigest(canonical({k: v for k, v in manifest.items() if k != "checksum"}))
    content = xxhash.xxh3_128_hexdigest(canonical({k: v for k, v in manifest.items()
                                                   if k not in ("version", "parent", "provenance", "checksum")}))
    assert vid == xxhash.xxh3_128_hexdigest(canonical({"content": content, "parent": None}))[:20]


def test_a_newer_schema_asks_for_an_upgrade(tmp_path, make_batch):
    root = tmp_path / "s"
    vid = write_store(root, [make_batch(1, 3)])
    path = root / "versions" / f"{vid}.json"
    path.write_text(path.read_text().replace('"schema_version": 1', '"schema_version": 2'))
    with pytest.raises(TnqError, match="schema version 2 is newer than this tnq reads \\(1\\); upgrade tnq"):
        open_store(root)


def test_an_existing_manifest_is_kept_when_intact_and_replaced_when_damaged(tmp_path, make_batch):
    root = tmp_path / "s"
    first = write_store(root, [make_batch(1, 3)])
    charges = {"charges/x": Column("atom", np.zeros(open_store(root).n_atoms))}
    second = add_columns(root, charges)
    path = root / "versions" / f"{second}.json"
    written = path.stat().st_mtime_ns, path.read_bytes()
    set_head(root, first)
    assert add_columns(root, charges) == second and (path.stat().st_mtime_ns, path.read_bytes()) == written
    set_head(root, first)
    _flip(path, 100)
    assert add_columns(root, charges) == second and verify_store(root, all_versions=True)[1] == []


def test_manifests_without_a_checksum_are_still_read_and_checked_against_their_id(tmp_path, make_batch):
    root = tmp_path / "s"
    vid = write_store(root, [make_batch(1, 3)])
    path = root / "versions" / f"{vid}.json"
    manifest = json.loads(path.read_text())
    del manifest["checksum"]
    path.write_text(json.dumps(manifest))
    assert open_store(root).n_molecules == 3 and verify_store(root) == ([vid], [])
    manifest["counts"]["molecule"] = 4
    path.write_text(json.dumps(manifest))
    with pytest.raises(TnqError, match="do not hash to version"):
        open_store(root)


def test_numeric_arrays_are_decoded_without_zarr_to_what_zarr_reads(tmp_path, make_batch):
    """tnq's own decoder of one-chunk arrays against zarr's reading of the same arrays: every numeric array
    (raw floats with crc32c, zstd integers) takes it and gives the same values and dtype, writable; text and a
    missing chunk are left to zarr."""
    from tnq_data.store.arrays import _read_one_chunk

    root = tmp_path / "s"
    write_store(root, [make_batch(1, 6)], shard_bytes=2000)
    add_columns(root, {"charges/x": Column("atom", np.linspace(-1, 1, open_store(root).n_atoms))})
    store = open_store(root)
    for name in store.columns:
        for part in store.manifest["arrays"][name]["shards"]:
            expected = zarr.open_array(store=str(root / part["path"]), mode="r")[...]
            ours = _read_one_chunk(root / part["path"])
            if expected.dtype.kind in "TUO":
                assert ours is None, name
                continue
            assert ours is not None and ours.dtype == expected.dtype and ours.flags.writeable, name
            np.testing.assert_array_equal(ours, expected)
    _chunk(_array_dir(root, 0, "energy")).unlink()
    assert _read_one_chunk(_array_dir(root, 0, "energy")) is None


def test_zstd_frames_are_decoded_into_an_array_of_the_size_their_header_states():
    """Frame content sizes read from the header (RFC 8878: 1, 2 (+256), 4 and 8 bytes) against the sizes
    encoded, at each width's edges; a header stating none (or no frame) gives None, and decoding still works."""
    from numcodecs import Zstd

    from tnq_data.store.arrays import _frame_content_size, _unzstd

    rng = np.random.default_rng(0)
    for n in (1, 255, 256, 257, 65535, 65791, 65792, 2**20 + 7):
        values = rng.integers(0, 4, n).astype(np.uint8)
        frame = np.frombuffer(Zstd(level=3, checksum=True).encode(values), np.uint8)
        assert _frame_content_size(frame) == n
        decoded = _unzstd(frame)
        assert decoded.flags.writeable and np.array_equal(decoded, values)
    unstated = np.frombuffer(b"\x28\xb5\x2f\xfd\x00\x58" + bytes(8), np.uint8)  # no size flag, a window byte
    assert _frame_content_size(unstated) is None and _frame_content_size(np.zeros(9, np.uint8)) is None


def test_a_flipped_byte_in_any_chunk_is_caught_by_its_checksum_on_read(tmp_path, make_batch):
    root = tmp_path / "s"
    write_store(root, [make_batch(1, 6)], shard_bytes=2000)
    n_atoms = open_store(root).n_atoms
    add_columns(root, {"charges/x": Column("atom", np.linspace(-1, 1, n_atoms)), "charges/zero": Column("atom", np.zeros(n_atoms))})
    store = open_store(root, verify=False)
    for name in store.columns:
        files = [p for p in (_array_dir(root, 1, name) / "c").rglob("*") if p.is_file()]
        assert len(files) == 1, f"{name}: one chunk per array, written even when all zeros"
        chunk = files[0]
        original = chunk.read_bytes()
        for offset in (0, len(original) // 2, len(original) - 1):
            _flip(chunk, offset)
            with pytest.raises(DamagedArray, match="unreadable") as caught:
                open_store(root, verify=False).shard(1, [name])
            assert str(_array_dir(root, 1, name)) in str(caught.value)
            _flip(chunk, offset)
    assert verify_store(root)[1] == []


def test_old_float_arrays_without_a_chunk_checksum_are_read_and_checked_by_their_hash(tmp_path, make_batch):
    root = tmp_path / "s"
    write_store(root, [make_batch(1, 6)])
    pos_dir = _array_dir(root, 0, "pos")
    values = zarr.open_array(store=str(pos_dir), mode="r")[...]
    shutil.rmtree(pos_dir)
    old = zarr.create_array(store=str(pos_dir), shape=values.shape, dtype=values.dtype, chunks=values.shape,
                            compressors=(), fill_value=0)  # as stores were written before chunk checksums
    old[...] = values
    np.testing.assert_array_equal(open_store(root).column("pos"), values)
    _flip(_chunk(pos_dir), 8, 0x40)
    assert not np.array_equal(open_store(root, verify=False).column("pos"), values), "no checksum in the chunk"
    with pytest.raises(DamagedArray, match="content hash differs from the manifest"):
        open_store(root).column("pos")
    assert verify_store(root)[1] == [f"damaged: {_chunk(pos_dir)}, {pos_dir / 'zarr.json'} (content hash differs from the manifest)"]
    zeros = np.zeros(len(values), np.float32)
    add_columns(root, {"charges/zero": Column("atom", zeros)})
    _chunk(_array_dir(root, 0, "charges/zero")).unlink()  # old writers skipped chunks of fill values only
    np.testing.assert_array_equal(open_store(root).column("charges/zero"), zeros)


def test_a_deleted_chunk_or_an_array_of_another_shard_is_caught(tmp_path, make_batch):
    root = tmp_path / "s"
    write_store(root, [make_batch(1, 6)], shard_bytes=2000)
    _chunk(_array_dir(root, 0, "energy")).unlink()  # zarr would read its fill value
    with pytest.raises(DamagedArray, match="content hash differs"):
        open_store(root).column("energy")
    with pytest.raises(DamagedArray, match="energy.*content hash differs"):  # from a worker thread
        open_store(root).map_shards(lambda shard: shard.n_conformers, ["energy"], workers=2)
    pos0, pos1 = _array_dir(root, 0, "pos"), _array_dir(root, 1, "pos")
    shutil.rmtree(pos0)
    shutil.copytree(pos1, pos0)
    with pytest.raises(DamagedArray, match=r"shape \(\d+, 3\), expected"):
        open_store(root, verify=False).shard(0)
    assert len(verify_store(root)[1]) == 2


def test_a_tampered_content_addressed_path_is_not_reused_but_replaced(tmp_path, make_batch):
    root = tmp_path / "s"
    batches = [make_batch(1, 6)]
    first = write_store(root, batches)
    pos = open_store(root).column("pos")
    pos_dir, forces_dir = _array_dir(root, 0, "pos"), _array_dir(root, 0, "forces")
    shutil.rmtree(pos_dir)
    shutil.copytree(forces_dir, pos_dir)  # a valid array, with valid chunk checksums, of other values
    with pytest.raises(DamagedArray, match="content hash differs"):
        open_store(root).column("pos")
    assert write_store(root, batches) == first, "the same contents make no new version"
    np.testing.assert_array_equal(open_store(root).column("pos"), pos)
    charges = np.linspace(-1, 1, len(pos))
    second = add_columns(root, {"charges/x": Column("atom", charges)})
    _flip(_chunk(_array_dir(root, 0, "charges/x")), 3)
    assert add_columns(root, {"charges/x": Column("atom", charges)}) == second
    assert verify_store(root, all_versions=True)[1] == []
    assert not list(root.rglob(".tmp-*")), "the damaged copy is removed"


def test_temporaries_of_a_crash_are_removed_nested_columns_included(tmp_path, make_batch):
    root = tmp_path / "s"
    write_store(root, [make_batch(1, 6)], shard_bytes=2000)
    add_columns(root, {"charges/x": Column("atom", np.zeros(open_store(root).n_atoms))})
    left = [root / "shards/00000/charges/.tmp-0a1b", root / "shards/00001/.tmp-2c3d", root / "shards/.tmp-4e5f"]
    for directory in left:
        (directory / "c").mkdir(parents=True)
        (directory / "zarr.json").write_text("{")
    files = [root / "versions/.tmp-0123.json-4567", root / ".tmp-HEAD-89ab"]
    for path in files:
        path.write_text("partial")
    before = sorted(str(p) for p in root.rglob("*") if ".tmp-" not in str(p))
    version = add_columns(root, {"charges/y": Column("atom", np.ones(open_store(root).n_atoms))})
    assert not any(p.exists() for p in left + files)
    after = sorted(str(p) for p in root.rglob("*"))
    assert set(before) <= set(after) and open_store(root).version == version


def test_a_crashed_first_write_is_completed_not_refused(tmp_path, make_batch):
    root = tmp_path / "s"
    (root / "shards/00000/.tmp-0a1b").mkdir(parents=True)
    (root / "versions").mkdir()
    (root / ".tmp-HEAD-89ab").write_text("partial")
    (root / ".lock").write_text("123")
    version = write_store(root, [make_batch(1, 3)])
    assert open_store(root).version == version and sorted(p.name for p in root.iterdir()) == [".lock", "HEAD", "shards", "versions"]
