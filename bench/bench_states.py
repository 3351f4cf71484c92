"""Multi-state benchmark (issue 11): GFN2-xTB energies and forces of the same geometries as neutral singlet, cation
and anion doublet and neutral triplet; one training per state conditioning at the same budget, split by molecule.

    OMP_NUM_THREADS=1 python bench/bench_states.py [--only none,default] [--set loss.energy_weight=100]
        [--loss-variant e100:loss.energy_weight=100,loss.force_weight=1] [--json out.json]
        [--peers torchmdnet,mace [--peer-minutes M]]

Prints test energy MAE (meV) and force MAE (meV/Å) overall and energy MAE per (total charge, multiplicity),
the error ratios no-state/default and charge-only/default, and a held-out spin-state check (SpookyNet's
claim): the default and the no-state conditioning trained without the neutral triplets of half of the
training molecules, then asked for exactly those triplets. Stores are cached in --data.

`--peers` adds rows of other packages trained by their own trainers on the default row's train/val/test molecules,
each for the wall-clock time the default row trained (or --peer-minutes), in side environments (bench/peers.py:
torchmd-net 3.1 TensorNet with `--charge`, MACE with total charge and spin embeddings). Every row also gives its
training throughput: training conformers times completed epochs per second of training.
"""

import argparse
import importlib.util
import json
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from tnq_core.errors import TnqError
from tnq_data.sample_states import STATE_SMILES, STATES, write_states_store
from tnq_data.store import open_store
from tnq_model.checkpoint import load_potential
from tnq_model.config import TrainConfig, resolve_config
from tnq_model.data import StoreBatches
from tnq_model.evaluate import Predictions, error_metrics, predict
from tnq_model.nn.errors import ModelInputError
from tnq_model.rundir import read_metrics
from tnq_model.setup import new_splits
from tnq_model.splits import conformer_mask, load_splits
from tnq_model.train import train

BOTH = ["charge", "spin"]
#: Conditionings compared at the same budget: name -> config overrides (dotted keys).
#: "none" and "charge-only" (torchmd-net 3.1's model) fit per-element references only, so no state information
#: reaches them through per-state reference offsets; "none+state-refs" shows what those offsets alone give.
CONDITIONINGS: dict[str, dict[str, Any]] = {
    "none": {"state": [], "references": "element"},
    "none+state-refs": {"state": []},
    "charge-only": {"state": ["charge"], "references": "element", "model.state_mode": "tensornet",
                    "model.lambda_mode": "constant"},
    "default": {"state": BOTH},
    "lambda-constant": {"state": BOTH, "model.state_mode": "tensornet", "model.lambda_mode": "constant"},
    "lambda-learnable": {"state": BOTH, "model.state_mode": "tensornet", "model.lambda_mode": "learnable"},
    "lambda-channel": {"state": BOTH, "model.state_mode": "tensornet", "model.lambda_mode": "channel"},
    "spooky": {"state": BOTH, "model.state_mode": "spooky"},
}
#: Loss balances and schedules tried on the default conditioning: name -> overrides (row "default+<name>"). "old-loss" is the
#: loss before per-quantity scaling: eV/atom and eV/Å errors weighted 1 : 10. Rows whose force weight exceeds
#: their energy weight count as force-weighted in the goal check.
LOSS_VARIANTS: dict[str, dict[str, Any]] = {
    "weights-1:10": {"loss.force_weight": 10.0},
    "patience-5": {"optim.plateau_patience": 5},
    "equal-weights": {"loss.energy_weight": 1.0, "loss.force_weight": 1.0},
    "forces-100": {"loss.energy_weight": 1.0, "loss.force_weight": 100.0},
    "old-loss": {"loss.energy_weight": 1.0, "loss.force_weight": 10.0, "loss.scaled": False},
}
TRIPLET = (0, 3)


def budget(args: argparse.Namespace) -> dict[str, Any]:
    """Overrides shared by every run: model size, epochs, batch and the split by molecule."""
    return {"max_epochs": args.epochs, "batch_size": args.batch_size, "seed": 0, "model.hidden_channels": args.hidden,
            "model.num_layers": args.layers, "model.num_rbf": args.rbf, "model.cutoff": args.cutoff,
            "optim.lr": args.lr, "optim.warmup_steps": args.warmup,
            "split": {"train": 0.7, "val": 0.1, "test": 0.2, "seed": args.split_seed}}


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """{"model.cutoff": 4} -> {"model": {"cutoff": 4}}; later keys win."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = deepcopy(value)
    return out


def parse_assignments(text: str, sep: str = ",") -> dict[str, Any]:
    """"a.b=1,c=[x]" -> {"a.b": 1, "c": ["x"]} (values read as YAML)."""
    pairs = [item.split("=", 1) for item in text.split(sep) if item]
    if any(len(pair) != 2 for pair in pairs):
        raise SystemExit(f"cannot read {text!r}: use key=value")
    return {key.strip(): yaml.safe_load(value) for key, value in pairs}


def make_config(flat: dict[str, Any], store: Path, out: Path) -> TrainConfig:
    """The run's config: defaults, then `flat` overrides."""
    return resolve_config(None, {**nested(flat), "store": store, "out": out})


def throughput(run: Path) -> dict[str, float]:
    """Training seconds (the sum of the run's epoch times), epochs and training conformers per second."""
    epochs = read_metrics(run / "metrics.csv")
    n_train = json.loads((run / "data.json").read_text())["conformers"]["train"]
    seconds = sum(epoch["seconds"] for epoch in epochs)
    return {"train_seconds": seconds, "epochs": len(epochs), "conformers_per_s": len(epochs) * n_train / seconds}


def predictions(run: Path, store_path: Path, molecules: np.ndarray | None = None) -> Predictions:
    """Predictions of the run's best checkpoint on `molecules` of a store (every conformer when None)."""
    store = open_store(store_path)
    selected = np.ones(store.n_conformers, bool) if molecules is None \
        else conformer_mask(store.column("molecule"), molecules)
    batches = StoreBatches(store, selected, 64, forces=True, shuffle=False)
    return predict(load_potential(run / "best.pt"), batches, torch.device("cpu"))


def state_metrics(pred: Predictions) -> dict[str, Any]:
    """Overall energy/force MAE and energy MAE per (total charge, multiplicity) state."""
    overall = error_metrics(pred, np.ones(len(pred.energy_true), bool))
    per_state = {f"{q},{m}": error_metrics(pred, (pred.total_charge == q) & (pred.multiplicity == m))["energy_mae_meV"]
                 for q, m in STATES if np.any((pred.total_charge == q) & (pred.multiplicity == m))}
    return {"energy_mae_meV": overall["energy_mae_meV"], "force_mae_meV_per_A": overall["force_mae_meV_per_A"],
            "energy_mae_meV_by_state": per_state}


METRICS = ("energy_mae_meV", "force_mae_meV_per_A", "energy_mae_meV_by_state")
THROUGHPUT = ("train_seconds", "epochs", "conformers_per_s")


def run_one(name: str, flat: dict[str, Any], store: Path, runs: Path,
            done: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Train one row and evaluate it on the test molecules; a refused config gives its message instead.

    `done` maps resolved configs to earlier rows: a row whose config equals one of them reuses its results.
    """
    row: dict[str, Any] = {"name": name, "overrides": flat, "run": str(runs / name)}
    start = time.perf_counter()
    try:
        config = make_config(flat, store, runs / name)
        row["loss"] = config.loss.model_dump(mode="json")
        key = json.dumps(config.model_dump(mode="json", exclude={"out"}), sort_keys=True)
        if done is not None and key in done:
            same = done[key]
            return {**row, **{k: same[k] for k in METRICS + THROUGHPUT}, "run": same["run"], "same_as": same["name"],
                    "seconds": 0.0}
        train(config)
        test = load_splits(runs / name / "splits.npz")["test"]
        row.update(state_metrics(predictions(runs / name, store, test)), **throughput(runs / name))
    except (TnqError, ModelInputError) as err:  # a config tnq refuses, with its one-line reason
        row["refused"] = str(err)
    except Exception as err:  # a broken row (e.g. a config key mid-change) must not end the bench
        row["failed"] = f"{type(err).__name__}: {err}"
    row["seconds"] = time.perf_counter() - start
    if done is not None and "energy_mae_meV" in row:
        done[key] = row
    return row


def held_out_check(args: argparse.Namespace, base: dict[str, Any], store: Path, runs: Path) -> dict[str, Any]:
    """Train default and no-state runs without the triplets of half the training molecules; predict those triplets."""
    smiles = STATE_SMILES[:args.molecules]
    whole = open_store(store)
    splits = new_splits(whole, make_config({**base, **args.extra}, store, runs / "unused").split)  # as train() draws
    held = [smiles[i] for i in splits["train"][::2]]
    tag = f"heldout{zlib.crc32(' '.join(held).encode()):08x}"  # the cache name follows the held-out molecules
    train_store, eval_store = data_paths(args, f"{tag}-train"), data_paths(args, f"{tag}-eval")
    pairs = [(s, TRIPLET) for s in held]
    ensure_store(train_store, lambda p: write_states_store(p, smiles, args.geometries, seed=args.seed, exclude=pairs))
    ensure_store(eval_store, lambda p: write_states_store(p, held, args.geometries, (STATES[0], TRIPLET),
                                                           seed=args.seed))
    result: dict[str, Any] = {"held_out_molecules": held, "n_triplet_conformers": len(held) * args.geometries}
    pred_eval = None
    for name in ("default", "none"):
        row = run_one(f"heldout-{name}", {**base, **CONDITIONINGS[name], **args.extra}, train_store, runs)
        report_row(row)
        if "energy_mae_meV" not in row:
            result[name] = row
            continue
        trained_on = load_splits(runs / f"heldout-{name}" / "splits.npz")["train"]
        assert set(splits["train"][::2]) <= set(trained_on.tolist()), "held-out molecules must be training molecules"
        pred_eval = predictions(runs / f"heldout-{name}", eval_store)
        triplet = pred_eval.multiplicity == 3
        result[name] = {"triplet_energy_mae_meV": error_metrics(pred_eval, triplet)["energy_mae_meV"],
                        "test_energy_mae_meV": row["energy_mae_meV"], "seconds": row["seconds"]}
    if pred_eval is not None:  # the eval store holds each geometry as singlet then triplet
        true, mult = pred_eval.energy_true, pred_eval.multiplicity
        singlet, triplet = true[mult == 1], true[mult == 3]
        result["singlet_as_triplet_mae_meV"] = float(1000 * np.abs(triplet - singlet).mean())
    if (runs / "default" / "best.pt").is_file():  # the main default run saw these triplets in training
        seen = predictions(runs / "default", eval_store)
        result["default_seen_triplet_mae_meV"] = error_metrics(seen, seen.multiplicity == 3)["energy_mae_meV"]
    return result


def data_paths(args: argparse.Namespace, kind: str) -> Path:
    """The cached store `kind` for this size and seed."""
    return Path(args.data) / f"{kind}-m{args.molecules}-g{args.geometries}-s{args.seed}"


def ensure_store(path: Path, write: Callable[[Path], str]) -> None:
    """Write the store at `path` unless it is already there (stores are deterministic)."""
    try:
        open_store(path)
        return
    except TnqError:
        start = time.perf_counter()
        write(path)
        print(f"wrote {path} in {time.perf_counter() - start:.1f} s")


def report_row(row: dict[str, Any]) -> None:
    """One progress line per finished run."""
    if "energy_mae_meV" in row:
        text = f"E {row['energy_mae_meV']:.1f} meV, F {row['force_mae_meV_per_A']:.1f} meV/Å"
        text += f" (same config as {row['same_as']}, not retrained)" if "same_as" in row else ""
    else:
        text = f"refused: {row['refused']}" if "refused" in row else f"FAILED: {row['failed']}"
    print(f"  {row['name']}: {text} ({row['seconds']:.0f} s)", flush=True)


def fmt(value: float | None, width: int = 8) -> str:
    return f"{value:{width}.1f}" if value is not None else " " * (width - 1) + "-"


def print_table(rows: list[dict[str, Any]]) -> None:
    states = [f"{q},{m}" for q, m in STATES]
    print(f"\n{'run':26s} {'E meV':>8s} {'F meV/Å':>8s} " + " ".join(f"{'E(' + s + ')':>8s}" for s in states)
          + f" {'seconds':>8s} {'train s':>8s} {'epochs':>6s} {'conf/s':>8s}")
    for row in rows:
        if "energy_mae_meV" not in row:
            why = f"refused: {row['refused']}" if "refused" in row else f"FAILED: {row['failed']}"
            print(f"{row['name']:26s} {why}")
            continue
        by_state = row["energy_mae_meV_by_state"]
        print(f"{row['name']:26s} {fmt(row['energy_mae_meV'])} {fmt(row['force_mae_meV_per_A'])} "
              + " ".join(fmt(by_state.get(s)) for s in states) + f" {fmt(row['seconds'])}"
              + f" {fmt(row.get('train_seconds'))} {row.get('epochs', '-'):>6} {fmt(row.get('conformers_per_s'))}"
              + (f"  (= {row['same_as']})" if "same_as" in row else ""))


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Ratios against the default row and the issue's goal checks."""
    done = {row["name"]: row for row in rows if "energy_mae_meV" in row}
    out: dict[str, float] = {}
    if "default" not in done:
        return out
    default = done["default"]
    for other in ("none", "charge-only"):
        if other in done:
            out[f"{other}/default energy"] = done[other]["energy_mae_meV"] / default["energy_mae_meV"]
    for row in done.values():
        if "peer" in row:
            out[f"{row['name']}/default energy"] = row["energy_mae_meV"] / default["energy_mae_meV"]
    weighted = [row["force_mae_meV_per_A"] for row in done.values()
                if "loss" in row and row["loss"]["force_weight"] > row["loss"]["energy_weight"]]
    if weighted:
        out["default force / best force-weighted force"] = default["force_mae_meV_per_A"] / min(weighted)
    return out


def print_heldout(heldout: dict[str, Any]) -> None:
    print(f"\nheld-out triplets ({heldout['n_triplet_conformers']} conformers of "
          f"{len(heldout['held_out_molecules'])} training molecules whose triplet was left out), energy MAE meV:")
    for name in ("default", "none"):
        part = heldout[name]
        if "triplet_energy_mae_meV" in part:
            print(f"  {name + ' conditioning':36s}{part['triplet_energy_mae_meV']:8.1f}   "
                  f"(its test MAE {part['test_energy_mae_meV']:.1f}, {part['seconds']:.0f} s)")
        else:
            print(f"  {name + ' conditioning':36s} {part.get('refused') or part.get('failed')}")
    for key, label in (("singlet_as_triplet_mae_meV", "singlet energy as triplet energy"),
                       ("default_seen_triplet_mae_meV", "default, triplets seen (main run)")):
        if key in heldout:
            print(f"  {label:36s}{heldout[key]:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/tmp/tnq-bench-states", help="cache folder of the GFN2-xTB stores")
    parser.add_argument("--runs", help="folder for the run directories (default: a new temporary folder)")
    parser.add_argument("--molecules", type=int, default=len(STATE_SMILES),
                        help=f"first N of the {len(STATE_SMILES)} molecules")
    parser.add_argument("--geometries", type=int, default=5, help="geometries per molecule (each in 4 states)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the geometries")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rbf", type=int, default=16)
    parser.add_argument("--cutoff", type=float, default=4.5)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--warmup", type=int, default=50, help="warm-up steps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run, e.g. loss.energy_weight=100 (repeatable)")
    parser.add_argument("--loss-variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                        help="extra row default+NAME: the default conditioning with these overrides (any config keys), "
                             "e.g. e100:loss.energy_weight=100,loss.force_weight=1 (repeatable)")
    parser.add_argument("--only", help="comma-separated row names to run (heldout: the held-out check)")
    parser.add_argument("--no-heldout", action="store_true", help="skip the held-out spin-state check")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (also of the peers)")
    parser.add_argument("--peers", help="comma-separated peer rows after the tnq rows: torchmdnet, mace (needs the "
                                        "default row; side environments, see bench/peers.py)")
    parser.add_argument("--peer-minutes", type=float,
                        help="wall-clock training budget of each peer (default: the default row's training time)")
    parser.add_argument("--json", help="write the results as JSON to this path")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    torch.set_num_threads(args.threads)
    args.extra = {k: v for item in args.set for k, v in parse_assignments(item).items()}

    variants = dict(LOSS_VARIANTS)
    for item in args.loss_variant:
        name, _, text = item.partition(":")
        variants[name] = parse_assignments(text)
    rows_spec = {**CONDITIONINGS, **{f"default+{n}": {**CONDITIONINGS["default"], **v} for n, v in variants.items()}}
    only = set(args.only.split(",")) if args.only else None
    if only and only - set(rows_spec) - {"heldout"}:
        raise SystemExit(f"unknown rows {sorted(only - set(rows_spec))}; choose from {sorted(rows_spec)} or heldout")
    peers = importlib.import_module("peers") if args.peers else None
    peer_names = args.peers.split(",") if args.peers else []
    if peers and set(peer_names) - set(peers.VENVS):
        raise SystemExit(f"unknown --peers {sorted(set(peer_names) - set(peers.VENVS))}; choose from {sorted(peers.VENVS)}")
    if peers and only is not None and "default" not in only:
        raise SystemExit("--peers trains on the default row's splits: add default to --only")

    store = data_paths(args, "states")
    ensure_store(store, lambda p: write_states_store(p, STATE_SMILES[:args.molecules], args.geometries, seed=args.seed))
    runs = Path(args.runs or tempfile.mkdtemp(prefix="tnq-bench-states-"))
    base = budget(args)
    defaults = make_config({**base, **CONDITIONINGS["default"], **args.extra}, store, runs / "unused")
    print(f"store {store} ({open_store(store).n_conformers} conformers, {args.molecules} molecules x "
          f"{args.geometries} geometries x {len(STATES)} states); runs in {runs}")
    print(f"budget: {base}; --set: {args.extra}")
    print(f"default row (budget + defaults at run time): state {defaults.state}, "
          f"model {defaults.model.model_dump(mode='json')}, loss {defaults.loss.model_dump(mode='json')}, "
          f"optim {defaults.optim.model_dump(mode='json')}, references {defaults.references!r}")

    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    done: dict[str, dict[str, Any]] = {}
    for name, overrides in rows_spec.items():
        if only is None or name in only:
            rows.append(run_one(name, {**base, **overrides, **args.extra}, store, runs, done))
            report_row(rows[-1])
    default = next((row for row in rows if row["name"] == "default"), None)
    if peers and (default is None or "train_seconds" not in default):
        print("peers skipped: the default row did not train")
    elif peers:
        seconds = 60 * args.peer_minutes if args.peer_minutes else default["train_seconds"]
        run = Path(default["run"])
        for name in peer_names:
            rows.append(peers.run_peer(name, store, run, seconds, peers.model_sizes(run), runs / f"peer-{name}",
                                       args.threads))
            report_row(rows[-1])
    print_table(rows)
    ratios = summary(rows)
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")
    print("goal: none/default >= 10, charge-only/default >= 5, default force / best force-weighted force <= 1")

    heldout = None
    if not args.no_heldout and (only is None or "heldout" in only):
        heldout = held_out_check(args, base, store, runs)
        print_heldout(heldout)
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: v for k, v in vars(args).items()}, "budget": base,
                                               "rows": rows, "ratios": ratios, "heldout": heldout,
                                               "total_seconds": total}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
