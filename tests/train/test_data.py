"""The store loader: every selected conformer once per epoch with its own values, across ranks and workers."""

import numpy as np
import pytest
import torch

from tnq_data.store import add_columns, open_store
from tnq_data.store.format import Column
from tnq_model.data import StoreBatches, make_loader, usable_conformers


def served(dataset: StoreBatches, num_workers: int = 0) -> list[dict]:
    return list(make_loader(dataset, num_workers))


def test_batches_hold_each_selected_conformer_once_with_its_values(make_store):
    store = open_store(make_store(40, charges="am1bcc"))
    assert store.n_shards >= 4
    selected = np.random.default_rng(1).random(len(store)) < 0.6
    dataset = StoreBatches(store, selected, 7, partial_charges=["charges/am1bcc"], seed=3)
    batches = served(dataset)
    ids = np.concatenate([b["conformer"].numpy() for b in batches])
    np.testing.assert_array_equal(np.sort(ids), np.flatnonzero(selected))
    assert len(batches) == dataset.n_batches(0)
    for batch in batches[:5]:
        assert batch["batch"].max() + 1 == len(batch["conformer"]) == len(batch["energy"])
        for k, index in enumerate(batch["conformer"].tolist()):
            record = store.conformer(index)
            atoms = batch["batch"] == k
            np.testing.assert_array_equal(batch["z"][atoms].numpy(), record["z"])
            np.testing.assert_array_equal(batch["pos"][atoms].numpy(), record["pos"])
            np.testing.assert_array_equal(batch["forces"][atoms].numpy(), record["forces"])
            np.testing.assert_array_equal(batch["partial_charges"][atoms, 0].numpy(), record["charges/am1bcc"])
            assert batch["energy"][k] == record["energy"] and batch["n_atoms"][k] == len(record["z"])
            assert (batch["total_charge"][k], batch["multiplicity"][k]) == (record["total_charge"], record["multiplicity"])


def test_order_is_shuffled_per_epoch_and_reproducible(make_store):
    store = open_store(make_store(40))
    dataset = StoreBatches(store, np.ones(len(store), bool), 5, seed=0)

    def order(epoch: int) -> np.ndarray:
        dataset.set_epoch(epoch)
        return np.concatenate([b["conformer"].numpy() for b in served(dataset)])

    first, again, second = order(0), order(0), order(1)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second) and not np.array_equal(first, np.sort(first))
    unshuffled = StoreBatches(store, np.ones(len(store), bool), 5, shuffle=False)
    np.testing.assert_array_equal(np.concatenate([b["conformer"].numpy() for b in served(unshuffled)]), np.arange(len(store)))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_ranks_and_workers_read_disjoint_shards_covering_the_selection(make_store, num_workers):
    store = open_store(make_store(60))
    selected = np.ones(len(store), bool)
    bounds = np.cumsum([0] + [s["conformers"] for s in store.manifest["shards"]])
    seen = []
    for rank in range(2):
        dataset = StoreBatches(store, selected, 6, seed=5, rank=rank, world_size=2)
        batches = served(dataset, num_workers)
        assert len(batches) == dataset.n_batches(num_workers)
        ids = np.concatenate([b["conformer"].numpy() for b in batches])
        seen.append(set(np.searchsorted(bounds, ids, side="right") - 1))
        for batch in batches:  # a batch comes from one worker's buffer of whole shards
            assert len(set(np.searchsorted(bounds, batch["conformer"].numpy(), side="right") - 1)) <= 2
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(store.n_shards))


def test_conformers_with_failed_partial_charges_are_not_usable(make_store):
    path = make_store(10, charges="am1bcc")
    store = open_store(path)
    charges = store.column("charges/am1bcc").copy()
    offsets = store.column("atom_offset")
    charges[offsets[3] + 1] = np.nan
    add_columns(path, {"charges/am1bcc": Column("atom", charges)})
    usable = usable_conformers(open_store(path), ["charges/am1bcc"], "energy")
    np.testing.assert_array_equal(np.flatnonzero(~usable), [3])


def test_too_few_shards_for_the_processes_is_an_error(make_store):
    from tnq_core.errors import TnqError

    store = open_store(make_store(5, shard_bytes=10**7))
    with pytest.raises(TnqError, match="1 shard"):
        StoreBatches(store, np.ones(len(store), bool), 4, rank=0, world_size=2)


def test_batch_tensors_have_model_dtypes(make_store):
    store = open_store(make_store(8))
    batch = next(iter(StoreBatches(store, np.ones(len(store), bool), 4)))
    assert batch["z"].dtype == batch["batch"].dtype == batch["total_charge"].dtype == torch.int64
    assert batch["pos"].dtype == torch.float32 and batch["energy"].dtype == torch.float64
