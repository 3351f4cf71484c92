"""The store's derived `composition` column: what the writer writes, what verify and training setup check, and
stores without it (written by an older tnq or another tool)."""

from collections import Counter

import numpy as np
import pytest

from tnq_core.errors import TnqError
from tnq_data.store import Column, MoleculeBatch, add_columns, open_store, write_store
from tnq_data.store import writer as store_writer
from tnq_data.store.manifest import new_manifest, read_manifest, write_version
from tnq_data.store.verify import verify_store
from tnq_model.references import compositions, merge_compositions
from tnq_model.setup import store_compositions


def shared_atoms_batch(seed: int, n_molecules: int) -> MoleculeBatch:
    """Molecules whose conformers mostly hold the same atoms in another order (some one atom changed), in random
    states, so that compositions repeat inside and across molecules."""
    rng = np.random.default_rng(seed)
    n_conf = rng.integers(1, 6, n_molecules)
    formulas = [rng.choice([1, 6, 7, 8], rng.integers(1, 7)) for _ in range(6)]
    z = []
    for count in n_conf:
        atoms = formulas[rng.integers(len(formulas))]
        for _ in range(count):
            one = rng.permutation(atoms)
            if rng.random() < 0.2:
                one[0] = 9
            z.append(one)
    n_atoms = np.array([len(one) for one in z])
    c, a = len(z), int(n_atoms.sum())
    names = np.array([f"m{seed}-{i}" for i in range(n_molecules)], object)
    return MoleculeBatch(
        molecule={"smiles": names, "subset": names, "source_id": names, "n_conformers": n_conf},
        conformer={"energy": rng.normal(-1e3, 5, c), "total_charge": rng.choice([-128, -1, 0, 1, 127], c).astype(np.int8),
                   "multiplicity": rng.choice([1, 2, 3, 127], c).astype(np.int8), "n_atoms": n_atoms},
        atom={"z": np.concatenate(z).astype(np.uint8), "pos": rng.normal(0, 2, (a, 3)).astype(np.float32)})


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "s"
    write_store(path, [shared_atoms_batch(1, 30), shared_atoms_batch(2, 30)], shard_bytes=1500)
    return path


def test_composition_points_at_the_first_conformer_of_its_shard_with_the_same_element_counts(store_path):
    store = open_store(store_path)
    assert store.column_info("composition")["dtype"] == "int32" and store.n_shards > 3
    shared = 0
    for shard in store.iter_shards(["z", "composition"]):
        offsets, z = shard.arrays["atom_offset"], shard.arrays["z"]
        formulas = [Counter(z[a:b].tolist()) for a, b in zip(offsets[:-1], offsets[1:])]
        expected = [formulas.index(formula) for formula in formulas]
        assert shard.arrays["composition"].tolist() == expected
        shared += sum(first != c for c, first in enumerate(expected))
    assert shared > 20, "compositions repeat, so the column is not just 0, 1, 2, ..."


def test_composition_is_derived_never_given_or_replaced(tmp_path, store_path):
    batch = shared_atoms_batch(3, 4)
    batch.conformer["composition"] = np.zeros(len(batch.conformer["energy"]), np.int32)
    with pytest.raises(TnqError, match="derived by the writer"):
        write_store(tmp_path / "other", [batch])
    with pytest.raises(TnqError, match="cannot be replaced"):
        add_columns(store_path, {"composition": Column("conformer", np.zeros(len(open_store(store_path)), np.int32))})


def test_grouping_through_the_column_equals_counting_every_atom(store_path):
    """Training setup's groups (first conformers' atoms only) against every conformer's atoms counted."""
    store = open_store(store_path)
    fast = store_compositions(store)
    every = merge_compositions([compositions(shard.arrays["z"], shard.arrays["atom_offset"], shard.arrays[
        "total_charge"], shard.arrays["multiplicity"]) for shard in store.iter_shards(["z", "total_charge", "multiplicity"])])
    for field in ("elements", "counts", "total_charge", "multiplicity", "group"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(every, field), err_msg=field)


def _version_with_composition(root, values: np.ndarray | None) -> None:
    """Make HEAD a child version whose `composition` column holds `values` (None: has no such column), as an
    older tnq or another writer would have written it."""
    base = read_manifest(root)
    arrays = {name: entry for name, entry in base["arrays"].items() if name != "composition"}
    if values is not None:
        columns = store_writer._ShardedColumns(root)
        bounds = np.cumsum([0] + [s["conformers"] for s in base["shards"]])
        for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            columns.put(k, "composition", "conformer", values[lo:hi].astype(np.int32), None)
        arrays.update(columns.finish())
    write_version(root, new_manifest(base["version"], base["counts"], base["shards"], arrays, base["tables"], {}))


def test_a_store_without_the_column_is_grouped_from_every_atom_and_gains_it_with_its_next_version(store_path):
    written = open_store(store_path)
    expected, column = store_compositions(written), written.column("composition")
    _version_with_composition(store_path, None)
    store = open_store(store_path)
    assert "composition" not in store.columns
    for field in ("elements", "counts", "group"):
        np.testing.assert_array_equal(getattr(store_compositions(store), field), getattr(expected, field))
    assert verify_store(store_path)[1] == []
    add_columns(store_path, {"charges/x": Column("atom", np.zeros(store.n_atoms))})
    child = open_store(store_path)
    assert child.parent == store.version and child.column("composition").tolist() == column.tolist()
    assert verify_store(store_path)[1] == []


def test_a_wrong_column_is_named_by_verify_and_refused_by_training_setup(store_path):
    n = len(open_store(store_path))
    _version_with_composition(store_path, np.zeros(n, np.int32))  # every conformer "like" its shard's first
    problems = verify_store(store_path)[1]
    assert problems and all(p.startswith("wrong: ") and "composition" in p for p in problems)
    with pytest.raises(TnqError, match=r"the `composition` column of shard \d+ points at a conformer with another "
                                       "number of atoms; .* run tnq-data verify"):
        store_compositions(open_store(store_path))
    # each conformer its own first: consistent on its face, so only verify (which reads z) can tell
    store = open_store(store_path)
    _version_with_composition(store_path, np.concatenate([np.arange(s.n_conformers) for s in store.iter_shards([])]))
    assert any("does not match z" in p for p in verify_store(store_path)[1])
