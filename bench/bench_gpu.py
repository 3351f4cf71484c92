"""Benchmark on one CUDA GPU: tnq against torchmd-net 3.1 in float32, TF32 and bf16, and tnq's training
throughput with its loader, with the GPU's busy fraction; one command, about 5-8 minutes on an H200.

1. Model: energy+forces and a force-training step (bench_model.make_steps) of 32 drug-like molecules and of
   5 compact 300-atom clusters (bench/model_sweep.py cases), C=128, 2 layers, 32 rbf, 5 Å; tnq and
   torchmd-net (when importable) alternating; median ms, ratio, and peak GPU memory of a training step
   (torch.cuda.max_memory_allocated). Precisions: float32 with TF32 off; TF32 matmuls; bf16 autocast. A
   precision keeps accuracy when its forces differ from strict float32's (same weights) by at most
   ACCURACY_GOAL of their RMS.
2. Training epoch, loader included: a synthetic store of --conformers SPICE-like conformers
   (bench_scale.py), one full `Trainer.train_epoch` (real loader with --num-workers workers, loss, AdamW,
   EMA) in this process: conformers/s, and the GPU's busy fraction over the epoch from NVML
   (torch.cuda.utilization, sampled every 0.1 s; needs pynvml) or else `nvidia-smi` polling.
3. End to end: `tnq-train --max-epochs 1` on the same store (setup, epoch, validation, test and figures):
   wall seconds and training conformers per wall second, and the epoch's own seconds from metrics.csv.
torchmd-net's own trainer (Lightning, HDF5 datasets) is not run: its rows are model steps only.

    python bench/bench_gpu.py                 # CUDA only; on a machine without it, says so and exits 0
    /path/to/venv-with-torchmd-net/bin/python bench/bench_gpu.py --conformers 100000
    python bench/bench_gpu.py --device cpu --conformers 500 --repeats 1 --skip model   # a smoke run of the
        # script's own code on CPU (no GPU memory or busy figures), before spending device time
"""

import argparse
import contextlib
import csv
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import torch

import bench_model  # bench/ is on sys.path when a bench script runs (and in the tests: pytest pythonpath)
import bench_scale
import model_sweep

ACCURACY_GOAL = 1e-3  # relative RMS force difference to strict float32
CASES = ("molecules", "cluster300")


@contextlib.contextmanager
def precision(mode: str):
    """`mode`: "float32" (TF32 off), "tf32" (TF32 matmuls and convolutions) or "bf16" (autocast)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "bf16"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def forces(energy_fn: Callable, pos: torch.Tensor, mode: str) -> torch.Tensor:
    with precision(mode):
        p = pos.detach().requires_grad_(True)
        return -torch.autograd.grad(energy_fn(p).float().sum(), p)[0]


def peak_step_mib(step: Callable[[], None], device: torch.device) -> float:
    """Peak GPU memory allocated during one call of `step`, above what was allocated before, MiB (NaN on CPU)."""
    if device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def model_rows(device: torch.device, repeats: int) -> None:
    """Print part 1 (see the module docstring)."""
    bm, sweep = bench_model, model_sweep
    for case in CASES:
        z, pos, batch, count = (t.to(device) if isinstance(t, torch.Tensor) else t
                                for t in sweep.case_inputs(case, torch.float32))
        models = gpu_candidates(z, batch, count, device)
        print(f"\n{case}: {len(z)} atoms, {count} molecules")
        strict = {name: forces(fn, pos, "float32") for name, (fn, _) in models.items()}
        for mode in ("float32", "tf32", "bf16"):
            steps, notes = {}, []
            for name, (fn, params) in models.items():
                try:
                    error = (forces(fn, pos, mode) - strict[name]).pow(2).mean().sqrt() / strict[name].pow(2).mean().sqrt()
                except Exception as failure:  # noqa: BLE001 - a precision a model cannot run is reported, not fatal
                    notes.append(f"{name}: fails in {mode}: {type(failure).__name__}: {str(failure).splitlines()[0]}")
                    continue
                inference, training = bm.make_steps(fn, pos, params)
                steps[name] = (_in(mode, inference), _in(mode, training))
                verdict = "keeps accuracy" if error <= ACCURACY_GOAL else "LOSES accuracy"
                notes.append(f"{name}: force error vs strict float32 {float(error):.1e} of RMS ({verdict}); "
                             f"training-step peak {peak_step_mib(steps[name][1], device):.0f} MiB")
            for kind, label in enumerate(("energy+forces", "training step")):
                times = bm.median_seconds({n: pair[kind] for n, pair in steps.items()}, 3, repeats, device)
                line = ", ".join(f"{n} {1000 * s:.2f} ms" for n, s in times.items())
                ratio = f"; ratio {times['tnq'] / times['torchmd-net']:.2f}" if len(times) == 2 else ""
                print(f"  {mode:7s} {label:14s} {line}{ratio}")
            for note in notes:
                print(f"          {note}")


def _in(mode: str, step: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        with precision(mode):
            step()
    return run


def gpu_candidates(z, batch, count, device: torch.device) -> dict[str, tuple[Callable, list]]:
    """tnq's and (when importable) torchmd-net's TensorNet on `device`, float32."""
    bm = bench_model
    from tnq_model import TensorNet

    torch.manual_seed(0)
    model = TensorNet(bm.HIDDEN, bm.LAYERS, bm.RBF, bm.CUTOFF, dtype=torch.float32).to(device)
    found = {"tnq": (lambda p: model(z, p, batch), list(model.parameters()))}
    reference = bm.torchmdnet_energy(torch.float32, device)
    if reference is not None:
        found["torchmd-net"] = (lambda p: reference(z, p, batch, count), reference.parameters)
    return found


class BusySampler:
    """GPU utilisation (% of time a kernel ran) sampled every `period` s in a thread, by NVML or nvidia-smi."""

    def __init__(self, device: torch.device, period: float = 0.1) -> None:
        self.device, self.period, self.samples = device, period, []
        self.source = self._source()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _source(self) -> str:
        try:
            torch.cuda.utilization(self.device)
            return "NVML"
        except Exception:  # noqa: BLE001 - no pynvml: fall back
            return "nvidia-smi" if shutil.which("nvidia-smi") else "none"

    def _read(self) -> float:
        if self.source == "NVML":
            return float(torch.cuda.utilization(self.device))
        index = self.device.index or 0
        out = subprocess.run(["nvidia-smi", f"--id={index}", "--query-gpu=utilization.gpu",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, check=True)
        return float(out.stdout.strip())

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.samples.append(self._read())

    def __enter__(self) -> Self:
        if self.source != "none":
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def busy(self) -> str:
        if not self.samples:
            return f"unavailable ({self.source})"
        return f"{sum(self.samples) / len(self.samples):.0f}% ({len(self.samples)} samples, {self.source})"


def epoch_row(store: Path, num_workers: int, batch_size: int, device: torch.device) -> None:
    """Print part 2 (see the module docstring)."""
    bm = bench_model
    from tnq_core.progress import SILENT
    from tnq_model.config import ModelConfig, TrainConfig
    from tnq_model.distributed import init_distributed
    from tnq_model.setup import build_potential, prepare_data
    from tnq_model.trainer import Trainer

    config = TrainConfig(store=store, out=store.parent / "unused", device=device.type, num_workers=num_workers,
                         batch_size=batch_size, model=ModelConfig(hidden_channels=bm.HIDDEN, num_layers=bm.LAYERS,
                                                                  num_rbf=bm.RBF, cutoff=bm.CUTOFF))
    setup = prepare_data(config, None)
    env = init_distributed(device.type)
    trainer = Trainer(config, setup, *build_potential(config, setup), env)
    with BusySampler(env.device) as sampler:
        start = time.perf_counter()
        trainer.train_epoch(SILENT)
        if device.type == "cuda":
            torch.cuda.synchronize(env.device)
        seconds = time.perf_counter() - start
    conformers = int(setup.selected["train"].sum())
    print(f"\ntraining epoch in process (Trainer.train_epoch, {num_workers} loader workers, batch {batch_size}): "
          f"{conformers:,} conformers in {seconds:.1f} s = {conformers / seconds:.0f} conformers/s; GPU busy "
          f"{sampler.busy()}")


def cli_row(store: Path, out: Path, num_workers: int, batch_size: int, device: torch.device) -> None:
    """Print part 3 (see the module docstring)."""
    bm = bench_model
    config = out.parent / "gpu_bench.yaml"
    config.write_text(f"model:\n  hidden_channels: {bm.HIDDEN}\n  num_layers: {bm.LAYERS}\n  num_rbf: {bm.RBF}\n"
                      f"  cutoff: {bm.CUTOFF}\n")
    command = [shutil.which("tnq-train") or "tnq-train", "--store", str(store), "--out", str(out), "--config",
               str(config), "--max-epochs", "1", "--device", device.type, "--num-workers", str(num_workers),
               "--batch-size", str(batch_size), "--quiet", "--json"]
    with BusySampler(device) as sampler:
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
    with open(out / "metrics.csv", newline="") as metrics:
        epoch_seconds = float(next(csv.DictReader(metrics))["seconds"])
    train = json.loads((out / "data.json").read_text())["conformers"]["train"]
    print(f"tnq-train --max-epochs 1: wall {wall:.1f} s, {train / wall:.0f} training conformers per wall second "
          f"(epoch with validation {epoch_seconds:.1f} s: {train / epoch_seconds:.0f} conformers/s); GPU busy over "
          f"the whole command {sampler.busy()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conformers", type=int, default=100_000, help="conformers of the synthetic store")
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader workers")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20, help="timed model steps (median reported)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: model,epoch,cli")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu: a smoke run of this script's code, no figures worth reporting")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device visible to torch; nothing measured (run it on a GPU machine)")
        return
    device = torch.device(args.device)
    skip = set(args.skip.split(","))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU smoke run"
    print(f"{name}, torch {torch.__version__}")
    if "model" not in skip:
        model_rows(device, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        if skip >= {"epoch", "cli"}:
            return
        seconds = bench_scale.write_synthetic_store(store, args.conformers)
        print(f"\nsynthetic store: {args.conformers:,} SPICE-like conformers written in {seconds:.0f} s")
        if "epoch" not in skip:
            epoch_row(store, args.num_workers, args.batch_size, device)
        if "cli" not in skip:
            cli_row(store, Path(tmp) / "run", args.num_workers, args.batch_size, device)


if __name__ == "__main__":
    main()
