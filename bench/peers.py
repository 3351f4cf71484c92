"""Peers side by side with tnq (issue 14): torchmd-net 3.1 TensorNet (`--charge`) and MACE (total charge and spin
embeddings), each trained by its own trainer in its side environment on the molecules of a tnq run's splits for
a wall-clock budget, then evaluated on the test molecules per (total charge, multiplicity).

    python bench/peers.py --run RUN_DIR [--peers torchmdnet,mace] [--minutes M] [--json out.json]

runs the peers against the splits of an existing `tnq-train` run (its store from data.json, the model size from
its config.yaml); `bench/bench_states.py --peers torchmdnet,mace` runs them after its tnq rows. Each peer's
files (exports, logs, checkpoints) stay in RUN_DIR/../peer-<name>. Side environments (outside the repository):

    python -m venv --system-site-packages /work/venvs/tmdnet
    /work/venvs/tmdnet/bin/pip install --no-deps 'torchmd-net==3.1.*' warp-lang lightning-utilities lightning torchmetrics
    python -m venv --system-site-packages /work/venvs/mace
    /work/venvs/mace/bin/pip install --no-deps mace-torch==0.3.16
    /work/venvs/mace/bin/pip install e3nn==0.4.4 torch-ema opt_einsum matscipy configargparse prettytable \\
        GitPython python-hostlist pandas torchmetrics     # checked with --dry-run first: torch 2.13 stays
"""

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tnq_data.export import export_store

VENVS = {"torchmdnet": Path("/work/venvs/tmdnet"), "mace": Path("/work/venvs/mace")}
MODULES = {"torchmdnet": "peer_torchmdnet", "mace": "peer_mace"}
#: Row names in the bench table.
LABELS = {"torchmdnet": "peer torchmd-net TensorNet", "mace": "peer MACE charge+spin"}
SPLITS = ("train", "val", "test")


def state_errors(energy_true: np.ndarray, energy_pred: np.ndarray, force_err: np.ndarray, total_charge: np.ndarray,
                 multiplicity: np.ndarray) -> dict[str, Any]:
    """Energy MAE (meV) overall and per "charge,multiplicity" state, force MAE (meV/Å) over all components.

    Energies (K,) in eV; `force_err` any shape, predicted minus true forces in eV/Å; labels (K,) integers.
    """
    error = np.abs(np.asarray(energy_pred, np.float64) - np.asarray(energy_true, np.float64))
    q, m = np.asarray(total_charge).astype(int), np.asarray(multiplicity).astype(int)
    states = sorted(set(zip(q.tolist(), m.tolist())))
    return {"energy_mae_meV": float(1000 * error.mean()),
            "force_mae_meV_per_A": float(1000 * np.abs(force_err).mean()),
            "energy_mae_meV_by_state": {f"{a},{b}": float(1000 * error[(q == a) & (m == b)].mean()) for a, b in states}}


def run_for(cmd: list[str], seconds: float | None, log: Path, env: dict[str, str]) -> tuple[float, bool]:
    """Run `cmd` (output to `log`), stopping its whole process group after `seconds` (None: no limit).

    Returns (wall seconds, whether it was stopped). SIGTERM first, SIGKILL 30 s later.
    """
    start = time.perf_counter()
    with log.open("ab") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            process.wait(timeout=seconds)
            return time.perf_counter() - start, False
        except subprocess.TimeoutExpired:
            elapsed = time.perf_counter() - start
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            return elapsed, True


def export_splits(store: Path, run: Path, fmt: str, suffix: str, work: Path) -> tuple[dict[str, Path], dict[str, int]]:
    """The run's train/val/test molecules as files of `fmt` (what `tnq-data export --split S --run RUN` writes);
    paths and conformer counts."""
    files = {split: work / f"{split}{suffix}" for split in SPLITS}
    sizes = {split: export_store(store, fmt, files[split], split, run, force=True)["conformers"] for split in SPLITS}
    return files, sizes


def run_peer(name: str, store: Path, run: Path, seconds: float, model: dict[str, Any], work: Path,
             threads: int = 1) -> dict[str, Any]:
    """Train one peer for `seconds` of wall clock on the splits of tnq run `run`; its bench row.

    `model`: hidden, layers, rbf, cutoff (Å), batch_size, lr, warmup (the tnq row's sizes). A peer whose side
    environment is missing or that fails gives a row with `failed`.
    """
    row: dict[str, Any] = {"name": LABELS[name], "peer": name, "run": str(work), "budget_seconds": seconds,
                           "seconds": 0.0}
    python = VENVS[name] / "bin" / "python"
    if not python.exists():
        return {**row, "failed": f"no side environment {VENVS[name]} (see bench/peers.py for the commands)"}
    peer = importlib.import_module(MODULES[name])
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log = work / "peer.log"
    files, sizes = export_splits(store, run, peer.FORMAT, peer.SUFFIX, work)
    start = time.time()
    elapsed, stopped = run_for(peer.command(python, work, files, sizes, model), seconds, log, env)
    epochs, last_epoch_end = peer.progress(work)
    to_last_epoch = elapsed if last_epoch_end is None else last_epoch_end - start
    row.update(seconds=elapsed, train_seconds=to_last_epoch, stopped_at_budget=stopped, epochs=epochs,
               train_conformers=sizes["train"], conformers_per_s=epochs * sizes["train"] / to_last_epoch)
    after = peer.finish(python, work, files, model)
    if not after:
        return {**row, "failed": f"{name} saved no checkpoint in {elapsed:.0f} s (see {log})"}
    for cmd in after:
        with log.open("ab") as out:
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode != 0:
                return {**row, "failed": f"{Path(cmd[0]).name} {cmd[1]} failed (see {log})"}
    with np.load(work / "test.npz") as test:
        row.update(state_errors(**{key: test[key] for key in test.files}))
    return row


def model_sizes(run: Path) -> dict[str, Any]:
    """The model size and optimiser settings of a tnq run (its config.yaml) that the peers copy."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    return {"hidden": config["model"]["hidden_channels"], "layers": config["model"]["num_layers"],
            "rbf": config["model"]["num_rbf"], "cutoff": config["model"]["cutoff"],
            "batch_size": config["batch_size"], "lr": config["optim"]["lr"], "warmup": config["optim"]["warmup_steps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a tnq-train run directory (its splits and store)")
    parser.add_argument("--peers", default="torchmdnet,mace", help=f"comma-separated, of {sorted(VENVS)}")
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-clock training budget per peer")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the rows as JSON to this path")
    args = parser.parse_args()
    if set(args.peers.split(",")) - set(VENVS):
        parser.error(f"unknown peers {sorted(set(args.peers.split(',')) - set(VENVS))}; choose from {sorted(VENVS)}")
    store = Path(json.loads((args.run / "data.json").read_text())["store"])
    rows = [run_peer(name, store, args.run, 60 * args.minutes, model_sizes(args.run), args.run.parent / f"peer-{name}",
                     args.threads) for name in args.peers.split(",")]
    for row in rows:
        print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
