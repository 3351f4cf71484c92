"""Round trips, versions, shard layout and bad batches of the store writer and reader."""

import numpy as np
import pytest

from tnq_core.errors import TnqError
from tnq_data.store import Column, MoleculeBatch, add_columns, open_store, set_head, write_store
from tnq_data.store.format import concat_batches
from tnq_data.store.summary import store_diff, store_log


def _flat(batches: list[MoleculeBatch]) -> MoleculeBatch:
    return concat_batches([b.validated() for b in batches])


def test_round_trip_every_conformer_and_molecule(tmp_path, batches):
    write_store(tmp_path / "s", batches, shard_bytes=3000)
    store = open_store(tmp_path / "s")
    ref = _flat(batches)
    atom_off = np.concatenate([[0], np.cumsum(ref.conformer["n_atoms"])])
    conf_off = np.concatenate([[0], np.cumsum(ref.molecule["n_conformers"])])
    assert store.n_shards > 3 and len(store) == len(ref.conformer["energy"]) and store.n_molecules == 40
    for i in range(len(store)):
        record = store.conformer(i)
        a0, a1 = atom_off[i], atom_off[i + 1]
        np.testing.assert_array_equal(record["pos"], ref.atom["pos"][a0:a1])
        np.testing.assert_array_equal(record["z"], ref.atom["z"][a0:a1])
        assert record["energy"] == ref.conformer["energy"][i]
        assert record["total_charge"] == ref.conformer["total_charge"][i]
        assert conf_off[record["molecule"]] <= i < conf_off[record["molecule"] + 1]
    for j in range(store.n_molecules):
        molecule = store.molecule(j)
        assert molecule["smiles"] == ref.molecule["smiles"][j]
        assert molecule["conformers"] == (conf_off[j], conf_off[j + 1])
    np.testing.assert_array_equal(store.column("atom_offset"), atom_off)
    np.testing.assert_array_equal(store.column("conformer_offset"), conf_off)
    np.testing.assert_array_equal(store.column("forces"), ref.atom["forces"])
    assert list(store.column("subset")) == list(ref.molecule["subset"])
    streamed = list(store.iter_conformers())
    assert len(streamed) == len(store) and streamed[-1]["energy"] == ref.conformer["energy"][-1]


def test_shards_hold_whole_molecules_whatever_the_batching(tmp_path, batches, make_batch):
    random_batch = make_batch
    one = write_store(tmp_path / "one", [_flat(batches)], shard_bytes=3000)
    many = write_store(tmp_path / "many", [random_batch(1, 15), random_batch(2, 5, 15), random_batch(3, 20, 20)], shard_bytes=3000)
    assert one == many
    store = open_store(tmp_path / "many")
    molecule = store.column("molecule")
    for shard in store.iter_shards():
        inside = molecule[shard.first_conformer:shard.first_conformer + shard.n_conformers]
        outside = np.concatenate([molecule[:shard.first_conformer], molecule[shard.first_conformer + shard.n_conformers:]])
        assert not set(inside) & set(outside)


@pytest.mark.parametrize("workers", [1, 3, None])
def test_map_shards_gives_every_shard_in_order(tmp_path, batches, workers):
    write_store(tmp_path / "s", batches, shard_bytes=3000)
    store = open_store(tmp_path / "s")
    def summary(shard):
        return shard.index, shard.first_conformer, float(shard.arrays["energy"].sum()), shard.arrays["z"].tobytes()
    mapped = store.map_shards(summary, ["energy", "z"], workers)
    assert store.n_shards > 3 and [m[0] for m in mapped] == list(range(store.n_shards))
    assert mapped == [summary(shard) for shard in store.iter_shards(["energy", "z"])]


def test_version_id_is_a_hash_of_the_contents(tmp_path, batches, make_batch):
    random_batch = make_batch
    a = write_store(tmp_path / "a", batches)
    b = write_store(tmp_path / "b", [random_batch(1, 15), random_batch(2, 5, 15), random_batch(3, 20, 20)])
    changed = [random_batch(1, 15), random_batch(2, 5, 15), random_batch(3, 20, 20)]
    changed[2].conformer["energy"][7] += 1e-9
    c = write_store(tmp_path / "c", changed)
    assert a == b != c
    assert write_store(tmp_path / "a", batches) == a, "rewriting identical contents makes no new version"
    assert len(store_log(tmp_path / "a")) == 1


def test_add_columns_makes_a_child_version_sharing_unchanged_arrays(tmp_path, batches):
    root = tmp_path / "s"
    first = write_store(root, batches, shard_bytes=3000)
    store = open_store(root)
    before = {p: p.stat().st_mtime_ns for p in root.glob("shards/*/*/c/*")}
    charges = np.linspace(-1, 1, store.n_atoms)
    second = add_columns(root, {"charges/am1bcc": Column("atom", charges)}, provenance={"command": "charges", "parameters": {"scheme": "am1bcc"}},
                         tables={"charges/am1bcc/failures": [{"molecule": 3, "reason": "test"}]})
    assert second != first
    new = open_store(root)
    assert new.parent == first and new.version == second
    np.testing.assert_allclose(new.column("charges/am1bcc"), charges.astype(np.float32))
    assert new.column_info("charges/am1bcc")["unit"] == "e"
    assert new.manifest["arrays"]["pos"] == store.manifest["arrays"]["pos"]
    assert {p: p.stat().st_mtime_ns for p in before} == before, "unchanged arrays are not rewritten"
    assert "charges/am1bcc" not in open_store(root, version=first).columns
    log = store_log(root)
    assert [e["version"] for e in log] == [second, first] and log[0]["changed_columns"] == ["charges/am1bcc"]
    diff = store_diff(f"{root}@{first}", str(root))
    assert diff["columns_only_in_b"] == ["charges/am1bcc"] and diff["tables_changed"] == ["charges/am1bcc/failures"]
    with pytest.raises(TnqError, match="rows but the store has"):
        add_columns(root, {"charges/x": Column("atom", charges[:-1])})
    with pytest.raises(TnqError, match="cannot be replaced"):
        add_columns(root, {"atom_offset": Column("conformer", np.zeros(len(new)))})


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b.conformer.pop("energy"), "lacks the conformer column"),
    (lambda b: b.atom.__setitem__("pos", b.atom["pos"][:-1]), "rows, expected"),
    (lambda b: b.atom.__setitem__("pos", b.atom["pos"][:, :2]), "has shape"),
    (lambda b: b.atom.__setitem__("z", b.atom["z"].astype(int) + 200), "do not fit uint8|outside 1..118"),
    (lambda b: b.conformer.__setitem__("multiplicity", b.conformer["multiplicity"] * 0), "2S\\+1"),
    (lambda b: b.conformer.__setitem__("bad name!", b.conformer["energy"]), "invalid column name"),
    (lambda b: b.conformer.__setitem__("atom_offset", b.conformer["energy"]), "derived by the writer"),
])
def test_bad_batches_are_refused_and_nothing_is_written(tmp_path, mutate, message, make_batch):
    batch = make_batch(5, 4)
    mutate(batch)
    with pytest.raises(TnqError, match=message):
        write_store(tmp_path / "s", [batch])
    assert not (tmp_path / "s" / "HEAD").exists()


def test_batches_must_share_columns(tmp_path, make_batch):
    second = make_batch(6, 3)
    second.atom.pop("forces")
    with pytest.raises(TnqError, match="differ from the first batch"):
        write_store(tmp_path / "s", [make_batch(5, 3), second])


def test_refuses_a_directory_that_is_not_a_store(tmp_path, make_batch):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TnqError, match="is not a tnq store"):
        write_store(tmp_path, [make_batch(5, 3)])
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(TnqError, match="not a tnq store"):
        open_store(tmp_path)
    with pytest.raises(TnqError, match="no such store"):
        open_store(tmp_path / "absent")


def test_set_head_moves_between_versions_without_losing_any(tmp_path, make_batch):
    root = tmp_path / "s"
    first = write_store(root, [make_batch(1, 5)])
    second = add_columns(root, {"charges/x": Column("atom", np.zeros(open_store(root).n_atoms))})
    set_head(root, first)
    assert open_store(root).version == first and open_store(root, second).parent == first
    assert add_columns(root, {"charges/x": Column("atom", np.zeros(open_store(root).n_atoms))}) == second
    with pytest.raises(TnqError, match="no version"):
        set_head(root, "0" * 20)
