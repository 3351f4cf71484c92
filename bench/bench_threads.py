"""Seconds per training epoch with 1 and 2 torch threads (`threads`), with the machine as it is and with a
CPU burner (`python -c "while True: pass"`) on one core meanwhile; the figures behind the default of
`threads` (docs/training.md, "Threads").

    python bench/bench_threads.py --store STORE [--epochs 6] [--threads 1 2] [--repeats 2]

STORE: e.g. the demo's stores/spice (`tnq-data -q run pipelines/demo.yaml --workdir /tmp/demo-x`). The model
and batches are the demo's train stage (pipelines/demo.yaml).
"""

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tnq_model.config import resolve_config
from tnq_model.training import train

#: The train stage of pipelines/demo.yaml.
DEMO = {"state": ["charge", "spin"], "batch_size": 8, "seed": 0,
        "model": {"hidden_channels": 32, "num_layers": 2, "num_rbf": 16, "cutoff": 5.0},
        "optim": {"lr": 0.005, "warmup_steps": 20, "early_stopping_patience": 60},
        "split": {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 0}}


def epoch_seconds(store: Path, threads: int, epochs: int) -> tuple[float, float]:
    """(median seconds of epochs 2.., wall seconds of the whole run) of one demo training."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train(resolve_config(None, {**DEMO, "store": store, "out": Path(tmp) / "run", "max_epochs": epochs,
                                    "threads": threads}))
        wall = time.perf_counter() - start
        with open(Path(tmp) / "run" / "metrics.csv") as handle:
            seconds = [float(row["seconds"]) for row in csv.DictReader(handle)]
    return statistics.median(seconds[1:] or seconds), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    print("condition  threads  s/epoch (median, each repeat)  wall s")
    for loaded in (False, True):
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if loaded else None
        try:
            for threads in args.threads:
                runs = [epoch_seconds(args.store, threads, args.epochs) for _ in range(args.repeats)]
                per_epoch = "  ".join(f"{s:.2f}" for s, _ in runs)
                wall = "  ".join(f"{w:.1f}" for _, w in runs)
                print(f"{'burner' if loaded else 'as is':<9}  {threads:>7}  {per_epoch:<30}  {wall}", flush=True)
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
