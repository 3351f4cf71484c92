"""Benchmark: training at scale on one machine: time to first batch, an epoch's conformers/s and peak RSS, at
two store sizes (RSS should stay flat in the store size, the first batch should come within 5 s).

Writes two synthetic stores with SPICE-like sizes (3-110 atoms per molecule, mean about 40; 50 conformers per
molecule, as SPICE's PubChem sets; H, C, N, O, F, P, S, Cl; total charge -1, 0 or +1), then measures each in a
fresh process with the real training code: `prepare_data` (splits, usable conformers), `build_potential`
(references and scales fitted on the training split), `Trainer` and the first batch of its training loader:
that sum is the time to first batch, measured twice: in a first run on the store (an empty setup cache, so
setup reads the store) and in a second (splits, references and scales from the setup cache). The first run
then goes on with `Trainer.train_epoch` (its real loader, loss, AdamW and EMA), stopped after --steps
batches (a full epoch of a 1M store takes hours on a CPU): conformers/s of those batches, and the epoch time
extrapolated from them. Peak RSS: VmHWM of the measuring process after each
phase (Linux; fresh at its exec, unlike ru_maxrss, which Linux carries over from the parent); loader workers
(--num-workers > 0) are separate processes and not counted.

    python bench/bench_scale.py                                   # 1,000,000 and 100,000 conformers
    python bench/bench_scale.py --conformers 200000 --compare 20000 --steps 30   # a quick run
    python bench/bench_scale.py --data /tmp/scale    # keep the stores there; a later run reuses them
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from tnq_core.progress import SILENT
from tnq_data.store import MoleculeBatch, open_store, write_store
from tnq_model.config import ModelConfig, TrainConfig
from tnq_model.data import make_loader
from tnq_model.distributed import init_distributed
from tnq_model.setup import build_potential, prepare_data
from tnq_model.trainer import Trainer

CONFORMERS_PER_MOLECULE = 50
ELEMENTS = np.array([1, 6, 7, 8, 9, 15, 16, 17], np.uint8)
ELEMENT_SHARES = np.array([0.48, 0.33, 0.07, 0.08, 0.01, 0.005, 0.015, 0.01])
FIRST_BATCH_GOAL_S = 5.0


def molecule_chunks(n_molecules: int, seed: int, chunk: int = 500) -> Iterator[MoleculeBatch]:
    """Synthetic molecules in batches of `chunk`: SPICE-like sizes, random compact positions (0.11 atoms/Å^3),
    random energies (eV) and forces (eV/Å); only their sizes matter here."""
    rng = np.random.default_rng(seed)
    for first in range(0, n_molecules, chunk):
        count = min(chunk, n_molecules - first)
        atoms_per_molecule = np.clip(rng.gamma(4.0, 10.0, count).astype(int), 3, 110)
        n_conf = np.full(count, CONFORMERS_PER_MOLECULE)
        n_atoms = np.repeat(atoms_per_molecule, n_conf)
        c, a = int(n_conf.sum()), int(n_atoms.sum())
        z = np.concatenate([np.tile(rng.choice(ELEMENTS, n, p=ELEMENT_SHARES), CONFORMERS_PER_MOLECULE)
                            for n in atoms_per_molecule])
        side = np.repeat((n_atoms / 0.11) ** (1.0 / 3.0), n_atoms)[:, None]
        names = np.array([f"m{first + i}" for i in range(count)], object)
        charge = np.repeat(rng.integers(-1, 2, count), n_conf).astype(np.int8)
        yield MoleculeBatch(
            molecule={"smiles": names, "subset": names, "source_id": names, "n_conformers": n_conf},
            conformer={"energy": rng.normal(-1e4, 10, c), "total_charge": charge,
                       "multiplicity": np.ones(c, np.int8), "n_atoms": n_atoms},
            atom={"z": z, "pos": (side * rng.random((a, 3))).astype(np.float32),
                  "forces": rng.normal(0, 1, (a, 3)).astype(np.float32)})


def write_synthetic_store(path: Path, conformers: int, seed: int = 0) -> float:
    """Write a store of about `conformers` conformers at `path`; returns the seconds it took."""
    start = time.perf_counter()
    write_store(path, molecule_chunks(-(-conformers // CONFORMERS_PER_MOLECULE), seed))
    return time.perf_counter() - start


def peak_mib() -> float:
    """Peak RSS of this process so far, MiB (VmHWM, Linux)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


class PartialEpoch(Trainer):
    """The real Trainer, whose training epoch stops after `limit` batches."""

    limit = 0

    def _steps(self, dataset) -> int:
        return min(self.limit, super()._steps(dataset))


def measure(store: Path, steps: int, batch_size: int, num_workers: int, device: str, threads: int) -> dict:
    """In this process: the phases up to the first training batch, then `steps` training batches (see the
    module docstring); seconds, conformers/s and peak RSS after each phase."""
    torch.set_num_threads(threads)
    config = TrainConfig(store=store, out=store.parent / "run", batch_size=batch_size, num_workers=num_workers, device=device,
                         model=ModelConfig(hidden_channels=32, num_layers=1, num_rbf=16), threads=threads)
    marks, rss = {"start": time.perf_counter()}, {}
    setup = prepare_data(config, None)
    marks["prepare_data"], rss["prepare_data"] = time.perf_counter(), peak_mib()
    potential, scales = build_potential(config, setup)
    marks["build_potential"], rss["build_potential"] = time.perf_counter(), peak_mib()
    trainer = PartialEpoch(config, setup, potential, scales, init_distributed(device))
    marks["trainer"] = time.perf_counter()
    next(iter(make_loader(trainer.datasets["train"], num_workers)))
    marks["first_batch"], rss["first_batch"] = time.perf_counter(), peak_mib()
    trainer.limit = steps
    trainer.train_epoch(SILENT)
    marks["train"], rss["train"] = time.perf_counter(), peak_mib()
    dataset = trainer.datasets["train"]
    epoch_batches = dataset.n_batches(num_workers)
    train_conformers = int(dataset.selected.sum())
    served = min(steps, epoch_batches) * train_conformers / epoch_batches
    names = list(marks)
    return {"conformers": len(setup.store), "atoms": setup.store.n_atoms, "train_conformers": train_conformers,
            "seconds": {b: marks[b] - marks[a] for a, b in itertools.pairwise(names)},
            "first_batch_s": marks["first_batch"] - marks["start"],
            "conformers_per_s": served / (marks["train"] - marks["first_batch"]),
            "steps": min(steps, epoch_batches), "epoch_batches": epoch_batches, "peak_mib": rss}


def measure_in_subprocess(store: Path, args: argparse.Namespace, setup_cache: Path, steps: int) -> dict:
    """`measure` in a fresh process whose setup cache is `setup_cache` (empty: the first run on a store)."""
    command = [sys.executable, __file__, "--measure", str(store), "--steps", str(steps), "--batch-size",
               str(args.batch_size), "--num-workers", str(args.num_workers), "--device", args.device,
               "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, "TNQ_SETUP_CACHE": str(setup_cache)})
    return json.loads(done.stdout.strip().splitlines()[-1])


def first_batch_line(result: dict) -> str:
    seconds, first = result["seconds"], result["first_batch_s"]
    phases = ", ".join(f"{phase} {seconds[phase]:.2f}" for phase in ("prepare_data", "build_potential", "trainer",
                                                                      "first_batch"))
    verdict = "ok" if first < FIRST_BATCH_GOAL_S else "OVER"
    return f"{first:.2f} s ({phases}); goal < {FIRST_BATCH_GOAL_S:.0f} s: {verdict}"


def report(result: dict, cached: dict) -> None:
    """The first run on a store (empty setup cache) and the first batch of a second run (setup from the cache)."""
    epoch_s = result["train_conformers"] / result["conformers_per_s"]
    print(f"\nstore: {result['conformers']:,} conformers, {result['atoms']:,} atoms; training split "
          f"{result['train_conformers']:,} conformers, {result['epoch_batches']:,} batches per epoch")
    print(f"  time to first batch, first run (empty setup cache): {first_batch_line(result)}")
    print(f"  time to first batch, next run (setup from the cache): {first_batch_line(cached)}")
    print(f"  training, loader included: {result['conformers_per_s']:.0f} conformers/s over {result['steps']} "
          f"batches; a full epoch extrapolated: {epoch_s / 60:.1f} min")
    print("  peak RSS, MiB: " + ", ".join(f"after {phase} {value:.0f}" for phase, value in result["peak_mib"].items())
          + f"; next run, after its first batch {cached['peak_mib']['first_batch']:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conformers", type=int, default=1_000_000, help="conformers of the large store")
    parser.add_argument("--compare", type=int, default=100_000, help="conformers of the small store (RSS flatness)")
    parser.add_argument("--steps", type=int, default=100, help="training batches timed (the epoch is extrapolated)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, help="folder to keep the stores in (store<conformers>) and reuse them "
                        "from (default: a temporary folder)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.steps, args.batch_size, args.num_workers, args.device,
                                 args.threads)))
        return
    print(f"model: TensorNet C=32, 1 layer, 16 rbf, charge+spin; batch {args.batch_size}; {args.num_workers} loader "
          f"workers; {args.device}, {args.threads} thread(s); load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        for conformers in (args.compare, args.conformers):
            path = (args.data or Path(tmp)) / f"store{conformers}"
            written = "reused" if path.exists() else f"wrote in {write_synthetic_store(path, conformers):.0f} s:"
            store = open_store(path)
            print(f"\n{written} {len(store):,} conformers ({store.n_shards} shards) at {path}")
            cache = Path(tmp) / f"setup-cache{conformers}"
            report(measure_in_subprocess(path, args, cache, args.steps), measure_in_subprocess(path, args, cache, 1))
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
