"""Benchmark: TensorNet against torchmd-net 3.1 over molecule sizes: time and peak memory, one table from one run.

Cases: 32 drug-like molecules; batches of compact random clusters of 50, 100, 200, 300 and 500 atoms (about
1,500 atoms per batch); a mixed batch of 16 drug-like molecules and one cluster each of 50, 100, 200 and 300
atoms. Per case: median ms of energy+forces and of a force-training step (energy, forces with create_graph,
backward; bench_model.make_steps), tnq and torchmd-net alternating in this process so that load changes hit
both alike, and their ratio. Memory: each (case, model) runs one training step in a fresh subprocess (the
same interpreter) that resets its peak resident set just before the step (writing 5 to /proc/self/clear_refs)
and reads it after (VmHWM in /proc/self/status; getrusage's ru_maxrss would not do: Linux carries the parent's
peak into a forked child); the step's peak is that minus the resident set before the step, so imports and
inputs (torchmd-net imports more) do not count. torchmd-net rows appear when it is importable (run with an
interpreter that has it). Linux only.

    python bench/model_sweep.py --threads 1
    python bench/model_sweep.py --big-molecule 2000     # a training step of one 2,000-atom molecule: peak RSS
"""

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from tnq_model import TensorNet

import bench_model  # bench/ is on sys.path when a bench script runs (and in the tests: pytest pythonpath)

Inputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]  # z, pos (Å), batch, number of molecules
CLUSTERS = {50: 32, 100: 16, 200: 8, 300: 5, 500: 3}  # atoms per cluster: clusters per batch
MEMORY_GOAL_GIB = 8.0


def merged(parts: list[Inputs]) -> Inputs:
    """One batch of several batches: molecule indices shifted so that they stay distinct."""
    offsets = [0]
    for part in parts:
        offsets.append(offsets[-1] + part[3])
    return (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
            torch.cat([p[2] + offset for p, offset in zip(parts, offsets)]), offsets[-1])


def case_inputs(case: str, dtype: torch.dtype) -> Inputs:
    """The inputs of `case`: "molecules", "cluster<N>" (CLUSTERS[N] clusters, or one when N is not in CLUSTERS)
    or "mixed"."""
    bm = bench_model
    if case == "molecules":
        return (*bm.molecule_batch(32, dtype), 32)
    if case == "mixed":
        return merged([(*bm.molecule_batch(16, dtype), 16)] + [(*bm.cluster_batch(1, n, dtype), 1) for n in (50, 100, 200, 300)])
    atoms = int(case.removeprefix("cluster"))
    count = CLUSTERS.get(atoms, 1)
    return (*bm.cluster_batch(count, atoms, dtype), count)


def candidates(inputs: Inputs, dtype: torch.dtype, models: tuple[str, ...]) -> dict[str, tuple[Callable, list]]:
    """name -> (energy of pos, parameters) of plain tnq TensorNet and, when importable, torchmd-net's."""
    bm = bench_model
    z, _, batch, count = inputs
    found = {}
    if "tnq" in models:
        torch.manual_seed(0)
        model = TensorNet(bm.HIDDEN, bm.LAYERS, bm.RBF, bm.CUTOFF, dtype=dtype)
        found["tnq"] = (lambda p: model(z, p, batch), list(model.parameters()))
    reference = bm.torchmdnet_energy(dtype, torch.device("cpu")) if "torchmd-net" in models else None
    if reference is not None:
        found["torchmd-net"] = (lambda p: reference(z, p, batch, count), reference.parameters)
    return found


def resident_kib(field: str = "VmRSS") -> int:
    """This process's resident set now ("VmRSS") or its peak since the last reset ("VmHWM"), KiB (Linux)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def reset_peak_resident() -> None:
    """Start VmHWM again from the current resident set (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def probe(case: str, model: str, dtype: str) -> dict:
    """In this process: one training step of `model` on `case`; RSS before and peak RSS, KiB, and seconds."""
    torch_dtype = getattr(torch, dtype)
    inputs = case_inputs(case, torch_dtype)
    found = candidates(inputs, torch_dtype, (model,))
    if model not in found:
        return {"available": False}
    energy_fn, params = found[model]
    _, training = bench_model.make_steps(energy_fn, inputs[1], params)
    reset_peak_resident()
    before = resident_kib()
    start = time.perf_counter()
    training()
    return {"available": True, "before_kib": before, "peak_kib": resident_kib("VmHWM"),
            "seconds": time.perf_counter() - start, "atoms": len(inputs[0])}


def probe_in_subprocess(case: str, model: str, dtype: str, threads: int) -> dict:
    """`probe` in a fresh interpreter (this one), so that no earlier case's peak counts."""
    command = [sys.executable, __file__, "--probe", case, model, "--dtype", dtype, "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def step_mib(result: dict) -> float:
    return (result["peak_kib"] - result["before_kib"]) / 1024


CASES = ("molecules", *(f"cluster{n}" for n in CLUSTERS), "mixed")


def sweep(threads: int, repeats: int, warmup: int, dtype: str, times: bool = True, cases: tuple = CASES) -> None:
    """Print the size-sweep table of `cases`: times (this process; skipped unless `times`) and training-step
    memory (subprocesses)."""
    bm = bench_model
    torch_dtype = getattr(torch, dtype)
    print(f"C={bm.HIDDEN}, {bm.LAYERS} layers, {bm.RBF} rbf, cutoff {bm.CUTOFF} Å, {dtype}, CPU, {threads} thread(s), "
          f"median of {repeats}; load average at start {os.getloadavg()[0]:.1f}")
    header = ("case", "atoms", "e+f tnq", "e+f tmd", "ratio", "train tnq", "train tmd", "ratio", "MiB tnq", "MiB tmd",
              "ratio")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for case in cases:
        inputs = case_inputs(case, torch_dtype)
        found = candidates(inputs, torch_dtype, ("tnq", "torchmd-net"))
        steps = {name: bm.make_steps(fn, inputs[1], params) for name, (fn, params) in found.items()}
        cells = [case, str(len(inputs[0]))] + ([] if times else ["-"] * 6)
        for kind in range(2 if times else 0):
            times = bm.median_seconds({n: pair[kind] for n, pair in steps.items()}, warmup, repeats, torch.device("cpu"))
            cells += _triple(1000 * times["tnq"], 1000 * times["torchmd-net"] if "torchmd-net" in times else None)
        memory = {name: probe_in_subprocess(case, name, dtype, threads) for name in found}
        cells += _triple(step_mib(memory["tnq"]), step_mib(memory["torchmd-net"]) if "torchmd-net" in memory else None)
        print("| " + " | ".join(cells) + " |", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.1f}; ms per step; MiB: peak RSS of a training step above the "
          "RSS before it (fresh process per case and model)")


def _triple(ours: float, theirs: float | None) -> list[str]:
    if theirs is None:
        return [f"{ours:.1f}", "-", "-"]
    return [f"{ours:.1f}", f"{theirs:.1f}", f"{ours / theirs:.2f}"]


def big_molecule(atoms: int, dtype: str, threads: int) -> None:
    """Print the peak RSS of a training step on one compact `atoms`-atom molecule, per model, against the goal."""
    for model in ("tnq", "torchmd-net"):
        result = probe_in_subprocess(f"cluster{atoms}", model, dtype, threads)
        if not result["available"]:
            print(f"{model}: unavailable (not importable in this interpreter)")
            continue
        peak_gib = result["peak_kib"] / 2**20
        print(f"{model}: one {result['atoms']}-atom molecule, {dtype}, {threads} thread(s): training step "
              f"{result['seconds']:.1f} s, peak RSS {peak_gib:.2f} GiB ({step_mib(result):.0f} MiB above the "
              f"{result['before_kib'] / 1024:.0f} MiB before the step); goal <= {MEMORY_GOAL_GIB:.0f} GiB: "
              f"{'ok' if peak_gib <= MEMORY_GOAL_GIB else 'OVER'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--big-molecule", type=int, default=0, metavar="ATOMS",
                        help="instead of the sweep: peak RSS of a training step on one compact molecule of ATOMS atoms")
    parser.add_argument("--memory-only", action="store_true", help="the sweep's memory columns only (no timing)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--probe", nargs=2, metavar=("CASE", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.cases.split(",")) - set(CASES)
    if unknown:
        parser.error(f"--cases: unknown {', '.join(sorted(unknown))}; choose from {', '.join(CASES)}")
    torch.set_num_threads(args.threads)
    if args.probe:
        print(json.dumps(probe(*args.probe, args.dtype)))
    elif args.big_molecule:
        big_molecule(args.big_molecule, args.dtype, args.threads)
    else:
        sweep(args.threads, args.repeats, args.warmup, args.dtype, times=not args.memory_only,
              cases=tuple(args.cases.split(",")))


if __name__ == "__main__":
    main()
