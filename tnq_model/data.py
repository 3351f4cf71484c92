"""Batches of tensors streamed from a store's shards: shard-level shuffling, an in-memory buffer, DDP and workers.

Each epoch the shards are permuted (seed, epoch); rank r takes every world_size-th of them and DataLoader
worker w of that rank every num_workers-th of those. A worker loads `buffer_shards` shards at a time into
one ragged pool, permutes the selected conformers of the pool, and cuts batches from it with a vectorised
gather over the atom offsets: no per-conformer Python objects and one read per (shard, column).
"""

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from tnq_core.errors import TnqError
from tnq_core.ragged import ranges
from tnq_data.store.reader import Shard, Store

Batch = dict[str, torch.Tensor]
_ATOM_FLOATS = ("pos", "forces")
_CONFORMER_INTS = ("total_charge", "multiplicity")


def usable_conformers(store: Store, partial_charges: list[str], target: str) -> np.ndarray:
    """(C,) bool: conformers with a finite target and finite values in every partial-charge column."""
    return np.logical_and.reduce(list(finite_conformers(store, partial_charges, target).values()))


def finite_conformers(store: Store, partial_charges: list[str], target: str) -> dict[str, np.ndarray]:
    """Per column (the `target`, then each partial-charge column), (C,) bool: conformers whose values in it
    are all finite."""
    finite = {target: np.isfinite(store.column(target))}
    offsets = store.column("atom_offset") if partial_charges else None
    for name in partial_charges:
        bad_atoms = np.concatenate([[0], np.cumsum(~np.isfinite(store.column(name)))])
        finite[name] = bad_atoms[offsets[1:]] == bad_atoms[offsets[:-1]]
    return finite


def _pool(shards: list[Shard], selected: np.ndarray) -> dict[str, np.ndarray]:
    """The shards' columns concatenated, with pool-wide atom offsets, global conformer ids and the selection."""
    offsets, start = [], 0
    for shard in shards:
        offsets.append(shard.arrays["atom_offset"][:-1] + start)
        start += int(shard.arrays["atom_offset"][-1])
    names = [name for name in shards[0].arrays if name not in ("atom_offset", "conformer_offset", "molecule")
             and shards[0].axes[name] != "molecule"]
    pool = {name: np.concatenate([shard.arrays[name] for shard in shards]) for name in names}
    pool["atom_offset"] = np.concatenate(offsets + [[start]]).astype(np.int64)
    pool["conformer"] = np.concatenate([shard.first_conformer + np.arange(shard.n_conformers) for shard in shards])
    pool["selected"] = np.flatnonzero(selected[pool["conformer"]])
    return pool


def gather_batch(pool: dict[str, np.ndarray], index: np.ndarray, partial_charges: list[str], target: str,
                 charge_target: str | None = None) -> Batch:
    """The conformers `index` (positions in the pool) as one batch of tensors.

    Keys: z (N,) long, pos (N,3) Å, batch (N,) long, forces (N,3) eV/Å when read, partial_charges (N,K) e
    when requested, charge_target (N,) e (the `charge_target` column, NaN where absent) when requested,
    dipole (B,3) e·Å (NaN where absent) when read, energy (B,) float64 eV (the `target` column),
    total_charge (B,) e, multiplicity (B,) 2S+1, n_atoms (B,), conformer (B,) global conformer index.
    """
    starts = pool["atom_offset"][index]
    counts = pool["atom_offset"][index + 1] - starts
    atoms = ranges(starts, counts)
    batch: Batch = {"z": torch.from_numpy(pool["z"][atoms].astype(np.int64)),
                    "batch": torch.from_numpy(np.repeat(np.arange(len(index)), counts)),
                    "energy": torch.from_numpy(pool[target][index].astype(np.float64)),
                    "n_atoms": torch.from_numpy(counts),
                    "conformer": torch.from_numpy(pool["conformer"][index])}
    for name in _ATOM_FLOATS:
        if name in pool:
            batch[name] = torch.from_numpy(pool[name][atoms])
    for name in _CONFORMER_INTS:
        batch[name] = torch.from_numpy(pool[name][index].astype(np.int64))
    if charge_target is not None:
        batch["charge_target"] = torch.from_numpy(pool[charge_target][atoms])
    if "dipole" in pool:
        batch["dipole"] = torch.from_numpy(pool["dipole"][index])
    if partial_charges:
        batch["partial_charges"] = torch.from_numpy(np.stack([pool[name][atoms] for name in partial_charges], axis=1))
    return batch


class StoreBatches(IterableDataset):
    """Batches (dicts of tensors, see `gather_batch`) of the selected conformers of a store.

    Args:
        store: the opened store version.
        selected: (C,) bool, the conformers to serve (e.g. one split).
        batch_size: conformers per batch (the last batch of each buffer may be smaller).
        target: the conformer column served as `energy` ("energy" or "formation_energy"), eV.
        partial_charges: `charges/<scheme>` columns served as `partial_charges`.
        forces: serve the `forces` column.
        charge_target: a `charges/<scheme>` column served as `charge_target` (N,) e.
        dipole: serve the conformer column `dipole` (B, 3) e·Å.
        shuffle: permute shards and conformers (else store order, e.g. for evaluation).
        seed: seed of the permutations; they also depend on the epoch (`set_epoch`).
        buffer_shards: shards held in memory and mixed together.
        rank, world_size: this process's rank among the DDP processes and their number.
    """

    def __init__(self, store: Store, selected: np.ndarray, batch_size: int, *, target: str = "energy",
                 partial_charges: Sequence[str] = (), forces: bool = True, charge_target: str | None = None,
                 dipole: bool = False, shuffle: bool = True, seed: int = 0, buffer_shards: int = 2, rank: int = 0,
                 world_size: int = 1) -> None:
        if store.n_shards < world_size:
            raise TnqError(f"{store.root} has {store.n_shards} shard(s), fewer than the {world_size} processes; "
                           "run fewer processes or rewrite the store with smaller shards")
        self.store, self.selected, self.batch_size = store, selected, batch_size
        self.target, self.partial_charges, self.forces = target, list(partial_charges), forces
        self.shuffle, self.seed, self.buffer_shards = shuffle, seed, buffer_shards
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.charge_target = charge_target
        self.columns = ["z", "pos", target, *_CONFORMER_INTS, *self.partial_charges] + (["forces"] if forces else []) \
            + ([charge_target] if charge_target is not None and charge_target not in self.partial_charges else []) \
            + (["dipole"] if dipole else [])

    def set_epoch(self, epoch: int) -> None:
        """Use the shard and conformer permutations of `epoch`."""
        self.epoch = epoch

    def _rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, *keys])

    def worker_shards(self, worker: int, num_workers: int) -> list[list[int]]:
        """The shards of this rank's `worker`, grouped into buffers of `buffer_shards`."""
        order = self._rng().permutation(self.store.n_shards) if self.shuffle else np.arange(self.store.n_shards)
        mine = order[self.rank::self.world_size][worker::num_workers].tolist()
        return [mine[i:i + self.buffer_shards] for i in range(0, len(mine), self.buffer_shards)]

    def n_batches(self, num_workers: int) -> int:
        """Batches this rank yields in the current epoch with `num_workers` DataLoader workers (0 counts as 1)."""
        bounds = np.concatenate([[0], np.cumsum([s["conformers"] for s in self.store.manifest["shards"]])])
        per_shard = np.add.reduceat(self.selected.astype(np.int64), bounds[:-1]) if len(self.selected) else np.zeros(0)
        return sum(-(-int(per_shard[group].sum()) // self.batch_size)
                   for worker in range(max(num_workers, 1)) for group in self.worker_shards(worker, max(num_workers, 1)))

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = self._rng(self.rank, worker)
        for group in self.worker_shards(worker, num_workers):
            pool = _pool([self.store.shard(k, self.columns) for k in group], self.selected)
            order = rng.permutation(pool["selected"]) if self.shuffle else pool["selected"]
            for start in range(0, len(order), self.batch_size):
                yield gather_batch(pool, order[start:start + self.batch_size], self.partial_charges, self.target,
                                   self.charge_target)


def make_loader(dataset: StoreBatches, num_workers: int) -> DataLoader:
    """A DataLoader over `dataset`'s ready-made batches, with `num_workers` worker processes."""
    return DataLoader(dataset, batch_size=None, num_workers=num_workers, persistent_workers=False)


def potential_inputs(batch: Batch) -> tuple[torch.Tensor | None, ...]:
    """The positional arguments of `Potential.forward` / `energy_and_forces` for a batch: z, pos, batch,
    total_charge, multiplicity, partial_charges (None when the batch has none)."""
    return (batch["z"], batch["pos"], batch["batch"], batch["total_charge"], batch["multiplicity"],
            batch.get("partial_charges"))


def to_device(batch: Batch, device: torch.device, dtype: torch.dtype) -> Batch:
    """`batch` on `device`, with floating-point atom and charge tensors in the model's `dtype`."""
    return {name: value.to(device, dtype if value.is_floating_point() and name != "energy" else value.dtype)
            for name, value in batch.items()}
