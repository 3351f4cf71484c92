"""Batches/s of the store loader (shuffled, from disk) against a small model's training step and against
collating torch-geometric `Data` objects one by one; all figures from one run.

    python bench/bench_loader.py [--molecules 2000] [--batch-size 32] [--threads 1]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from tnq_data.store import MoleculeBatch, open_store, write_store
from tnq_model import Potential, TensorNet
from tnq_model.data import StoreBatches, make_loader


def synthetic_store(path: Path, n_molecules: int, seed: int = 0) -> None:
    """Molecules of 10-30 atoms with 5 conformers each, written in shards of about 1 MiB."""
    rng = np.random.default_rng(seed)
    n_conf = np.full(n_molecules, 5)
    n_atoms = np.repeat(rng.integers(10, 31, n_molecules), n_conf)
    c, a = int(n_conf.sum()), int(n_atoms.sum())
    names = np.array([f"m{i}" for i in range(n_molecules)], object)
    batch = MoleculeBatch(
        molecule={"smiles": names, "subset": names, "source_id": names, "n_conformers": n_conf},
        conformer={"energy": rng.normal(-1e4, 10, c), "total_charge": rng.integers(-1, 2, c).astype(np.int8),
                   "multiplicity": rng.integers(1, 3, c).astype(np.int8), "n_atoms": n_atoms},
        atom={"z": rng.choice(np.array([1, 6, 7, 8], np.uint8), a), "pos": rng.normal(0, 3, (a, 3)).astype(np.float32),
              "forces": rng.normal(0, 1, (a, 3)).astype(np.float32)})
    write_store(path, [batch], shard_bytes=2**20)


def rate(count: int, seconds: float) -> float:
    return count / seconds


def loader_rate(store_path: Path, batch_size: int) -> tuple[float, int]:
    """Batches/s over one shuffled epoch, read from disk (a freshly opened store)."""
    store = open_store(store_path)
    dataset = StoreBatches(store, np.ones(len(store), bool), batch_size, seed=1)
    start = time.perf_counter()
    count = sum(1 for _ in make_loader(dataset, 0))
    return rate(count, time.perf_counter() - start), count


def model_rate(store_path: Path, batch_size: int, steps: int) -> float:
    """Training steps/s (forward, forces, backward, AdamW) of a small charge/spin TensorNet."""
    store = open_store(store_path)
    batches = iter(make_loader(StoreBatches(store, np.ones(len(store), bool), batch_size, seed=2), 0))
    potential = Potential(TensorNet(hidden_channels=32, num_layers=1, num_rbf=16, state=("charge", "spin")))
    optimizer = torch.optim.AdamW(potential.parameters(), lr=1e-4)

    def step() -> None:
        b = next(batches)
        energy, forces = potential.energy_and_forces(b["z"], b["pos"], b["batch"], b["total_charge"],
                                                     b["multiplicity"], create_graph=True)
        loss = ((energy.double() - b["energy"]) ** 2).mean() + ((forces - b["forces"]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return rate(steps, time.perf_counter() - start)


def pyg_rates(store_path: Path, batch_size: int, n_batches: int) -> tuple[float, float]:
    """Batches/s of Batch.from_data_list: including building per-conformer Data from the store, and collating only."""
    store = open_store(store_path)
    order = np.random.default_rng(3).permutation(len(store))[: n_batches * batch_size]

    def data(index: int) -> Data:
        r = store.conformer(int(index))
        return Data(z=torch.from_numpy(r["z"].astype(np.int64)), pos=torch.from_numpy(r["pos"]),
                    forces=torch.from_numpy(r["forces"]), energy=torch.tensor([r["energy"]]),
                    total_charge=torch.tensor([int(r["total_charge"])]), multiplicity=torch.tensor([int(r["multiplicity"])]))

    start = time.perf_counter()
    samples = [data(i) for i in order]
    for k in range(n_batches):
        Batch.from_data_list(samples[k * batch_size:(k + 1) * batch_size])
    with_reads = rate(n_batches, time.perf_counter() - start)
    start = time.perf_counter()
    for k in range(n_batches):
        Batch.from_data_list(samples[k * batch_size:(k + 1) * batch_size])
    return with_reads, rate(n_batches, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model-steps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        synthetic_store(path, args.molecules)
        store = open_store(path)
        print(f"store: {len(store)} conformers, {store.n_atoms} atoms, {store.n_shards} shards; "
              f"batch size {args.batch_size}; torch threads {args.threads}")
        loader, n_batches = loader_rate(path, args.batch_size)
        model = model_rate(path, args.batch_size, args.model_steps)
        pyg_reads, pyg_collate = pyg_rates(path, args.batch_size, min(n_batches, 200))
    print(f"tnq loader (shuffled, from disk):          {loader:10.1f} batches/s  ({n_batches} batches)")
    print(f"model training step (forces, small model): {model:10.2f} batches/s")
    print(f"PyG Data one by one + from_data_list:      {pyg_reads:10.1f} batches/s")
    print(f"PyG from_data_list only (prebuilt Data):   {pyg_collate:10.1f} batches/s")
    print(f"loader / model: {loader / model:.0f}x (must be >= 10: {'ok' if loader >= 10 * model else 'FAIL'})")
    print(f"loader / PyG (with reads): {loader / pyg_reads:.1f}x;  loader / PyG (collate only): {loader / pyg_collate:.1f}x")


if __name__ == "__main__":
    main()
