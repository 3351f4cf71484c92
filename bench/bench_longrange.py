"""Long-range benchmark (issue 12): what Coulomb and the other physical terms give a 2-layer, 5 Å TensorNet on
pairs it cannot see across. GFN2-xTB scans of cation–anion, ion–molecule and molecule–molecule pairs from 3 to
16 Å plus the distorted monomers (bench/longrange_pairs.py), split by pair; one training per model, same budget.

    OMP_NUM_THREADS=1 python bench/bench_longrange.py [--models local,coulomb,zbl,d4,nonlocal,nonlocal-no-d4]
        [--epochs 80] [--pairs 24] [--runs DIR] [--set loss.energy_weight=10] [--json out.json]

Prints, per model, the test energy MAE (eV) for centre separations above 10 Å and at or below, and the long-range
shape error: per test pair, the MAE over its separations of 6 Å and more of the energy error minus that pair's mean
error there (monomer geometries are fixed within a pair, so this isolates the interaction), averaged over pairs;
with its ratio to the local model (goal: Coulomb cuts the shape error 5x, moonshot 20x, and the >10 Å MAE 2x),
and the training time (the sum of the run's epoch times). It also prints the floor of a local model, the shape
error of the monomer sum (the true interaction's own spread), what point charges of the isolated monomers leave of
it, and the charge on the cation, GFN2's and the learned one. Models whose terms this tnq cannot build get one line
saying why: the d4 rows need the d4 extra, which needs numpy<2, so they run in a side environment over the
core one (zarr, tblite and the rest come from it; only numpy and tad-dftd4 are its own):

    python -m venv --system-site-packages /work/venvs/longrange
    /work/venvs/longrange/bin/pip install 'numpy<2' 'tad-dftd4>=0.8,<0.9'
    OMP_NUM_THREADS=1 /work/venvs/longrange/bin/python bench/bench_longrange.py --models d4,nonlocal

Stores are cached in --data; runs already in --runs are continued or just evaluated.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tnq_core.errors import TnqError
from tnq_data.store import open_store
from tnq_data.store.reader import Store
from tnq_model.checkpoint import load
from tnq_model.config import SplitConfig
from tnq_model.nn.errors import ModelInputError
from tnq_model.nn.tensornet import TensorNet
from tnq_model.rundir import read_metrics
from tnq_model.setup import new_splits
from tnq_model.splits import conformer_mask, load_splits
from tnq_model.train import train

import bench_states  # bench/ is on sys.path when a bench script runs (and in the tests: pytest pythonpath)
import longrange_pairs



#: Models compared at the same budget: name -> (row label, model.physics, other config keys). "coulomb" learns
#: free charges; "coulomb-q" also trains them on the pairs' GFN2 charges, and every row after it adds terms to
#: that model (free charges do not always settle on the ions, and with ZBL they collapse on some pairs);
#: "nonlocal-no-d4" is the nonlocal model where D4's extra cannot be installed.
GFN2_CHARGES = {"charge_target": "charges/gfn2"}
MODELS: dict[str, tuple[str, list[str], dict[str, Any]]] = {
    "local": ("local", [], {}),
    "coulomb": ("+charges+coulomb", ["charges", "coulomb"], {}),
    "coulomb-q": ("+coulomb, q on GFN2", ["charges", "coulomb"], GFN2_CHARGES),
    "zbl": ("+zbl", ["charges", "coulomb", "zbl"], GFN2_CHARGES),
    "d4": ("+zbl+d4", ["charges", "coulomb", "zbl", "d4"], GFN2_CHARGES),
    "nonlocal": ("+nonlocal", ["charges", "coulomb", "zbl", "d4", "nonlocal"], GFN2_CHARGES),
    "nonlocal-no-d4": ("+zbl+nonlocal (no d4)", ["charges", "coulomb", "zbl", "nonlocal"], GFN2_CHARGES),
}
#: Separations (Å) above which a 2-layer, 5 Å model sees nothing of the partner, and from which the shape counts.
FAR, SHAPE_FROM = 10.0, 6.0
SPLIT = {"train": 0.7, "val": 0.1, "test": 0.2}


def shape_error(pair: np.ndarray, separation: np.ndarray, error: np.ndarray, start: float = SHAPE_FROM) -> float:
    """Mean over pairs of the MAE, over the pair's separations >= `start` Å, of its energy error (eV) minus the
    pair's mean error there; pair (C,) ids, separation (C,) Å, error (C,) eV. NaN when no pair reaches `start`."""
    keep = separation >= start
    if not keep.any():
        return float("nan")
    _, group = np.unique(pair[keep], return_inverse=True)
    count = np.bincount(group)
    centred = error[keep] - (np.bincount(group, error[keep]) / count)[group]
    return float((np.bincount(group, np.abs(centred)) / count).mean())


def range_maes(separation: np.ndarray, error: np.ndarray, far: float = FAR) -> dict[str, float]:
    """Energy MAE (eV) over separations above `far` Å and at or below (NaN where there are none)."""
    out = {}
    for key, rows in (("mae_far_eV", separation > far), ("mae_near_eV", separation <= far)):
        out[key] = float(np.abs(error[rows]).mean()) if rows.any() else float("nan")
    return out


def pair_metrics(pair: np.ndarray, kind: np.ndarray, separation: np.ndarray, error: np.ndarray) -> dict[str, Any]:
    """The figures of one error series over pair conformers: range MAEs, the shape error and it per pair kind."""
    by_kind = {k: shape_error(pair[kind == k], separation[kind == k], error[kind == k])
               for k in longrange_pairs.PAIR_KINDS}
    return {**range_maes(separation, error), "shape_eV": shape_error(pair, separation, error),
            "shape_eV_by_kind": by_kind}


def pair_columns(store: Store, molecules: np.ndarray) -> dict[str, np.ndarray]:
    """Conformer columns (store order) of the pair scans among `molecules`: mask over the store, molecule id,
    pair kind, separation and the GFN2 interaction columns."""
    kinds = store.column("subset")[store.column("molecule")]
    mask = conformer_mask(store.column("molecule"), molecules)
    pairs = mask & (kinds != "monomer")
    columns = {name: store.column(name)[pairs] for name in
               ("molecule", "separation", "interaction_energy", "interaction_coulomb", "fragment_charge",
                "fragment_atoms", "energy", "total_charge")}
    return {"selected": mask, "pairs_in_selected": pairs[mask], "kind": kinds[pairs], **columns}


def covering_split(store: Store, seed: int, tries: int = 200) -> tuple[int, dict[str, np.ndarray]]:
    """The first split seed from `seed` whose test split holds a pair of every kind, and its splits."""
    kinds = store.column("subset")
    for candidate in range(seed, seed + tries):
        splits = new_splits(store, SplitConfig(**SPLIT, seed=candidate))
        if set(longrange_pairs.PAIR_KINDS) <= set(kinds[splits["test"]]):
            return candidate, splits
    raise SystemExit(f"no split seed in {seed}..{seed + tries - 1} puts every pair kind in test; use more --pairs")


def unavailable(physics: list[str]) -> str | None:
    """Why a model with these terms cannot be built here (None when it can)."""
    try:
        TensorNet(hidden_channels=8, num_layers=1, num_rbf=4, state=("charge",), physics=physics)
    except (TnqError, ModelInputError, ImportError) as err:
        return str(err)
    return None


def learned_cation_charge(run: Path, store: Store, cols: dict[str, np.ndarray], rows: np.ndarray) -> list[float]:
    """Learned charge (e) on the first monomer of the pair conformers `rows` (indices into `cols`)."""
    predictor = load(run / "best.pt")
    offsets, z, pos = store.column("atom_offset"), store.column("z"), store.column("pos")
    conformers = np.flatnonzero(cols["selected"])[cols["pairs_in_selected"]]
    charges = []
    for i in rows:
        c = conformers[i]
        atoms = slice(offsets[c], offsets[c + 1])
        q, _ = predictor.charges_and_dipole(z[atoms], pos[atoms], int(cols["total_charge"][i]), 1)
        charges.append(float(q[:cols["fragment_atoms"][i]].sum()))
    return charges


def run_model(name: str, base: dict[str, Any], store_path: Path, runs: Path, cols: dict[str, np.ndarray],
              test: np.ndarray) -> dict[str, Any]:
    """Train one model (continuing the run already in `runs`, if any) and compute its figures on the test pairs;
    a model that cannot run says why."""
    label, physics, extra = MODELS[name]
    row: dict[str, Any] = {"name": name, "label": label, "physics": physics, "run": str(runs / name)}
    why = unavailable(physics)
    if why is not None:
        return {**row, "skipped": why}
    start = time.perf_counter()
    try:
        config = bench_states.make_config({**base, **extra, "model.physics": physics}, store_path, runs / name)
        row["resumed"] = (runs / name / "last.pt").is_file()
        train(config, resume=row["resumed"])
        if not np.array_equal(load_splits(runs / name / "splits.npz")["test"], test):
            raise RuntimeError("the run drew another test split than the bench chose")
        pred = bench_states.predictions(runs / name, store_path, test)
        assert np.array_equal(pred.energy_true[cols["pairs_in_selected"]], cols["energy"]), "predictions out of order"
        error = (pred.energy_pred - pred.energy_true)[cols["pairs_in_selected"]]
        row.update(pair_metrics(cols["molecule"], cols["kind"], cols["separation"], error))
        row["train_seconds"] = sum(epoch["seconds"] for epoch in read_metrics(runs / name / "metrics.csv"))
        if "charges" in physics:
            far_ions = np.flatnonzero((cols["kind"] == "cation-anion") & (cols["separation"] > FAR))
            row["learned_cation_charge_far_e"] = learned_cation_charge(runs / name, open_store(store_path), cols,
                                                                       far_ions)
    except (TnqError, ModelInputError) as err:
        row["refused"] = str(err)
    except Exception as err:  # a model mid-change must not end the bench
        row["failed"] = f"{type(err).__name__}: {err}"
    row["seconds"] = time.perf_counter() - start
    return row


def floor(cols: dict[str, np.ndarray]) -> dict[str, Any]:
    """What a local model cannot learn: the figures of the monomer sum (error = −E_int) and of point charges of
    the isolated monomers (error = E_coulomb − E_int), and GFN2's charge on the cation beyond `FAR`."""
    far_ions = (cols["kind"] == "cation-anion") & (cols["separation"] > FAR)
    args = cols["molecule"], cols["kind"], cols["separation"]
    return {"monomer_sum": pair_metrics(*args, -cols["interaction_energy"]),
            "point_charges": pair_metrics(*args, cols["interaction_coulomb"] - cols["interaction_energy"]),
            "gfn2_cation_charge_far_e": cols["fragment_charge"][far_ions].tolist()}


def fmt(value: float | None) -> str:
    return "        -" if value is None or not np.isfinite(value) else f"{value:9.3f}"


def print_table(rows: list[dict[str, Any]], reference: dict[str, Any] | None) -> None:
    kinds = list(longrange_pairs.PAIR_KINDS)
    print(f"\n{'model (test pairs, eV)':24s} {'MAE>10Å':>9s} {'MAE<=10Å':>9s} {'shape':>9s} {'shape x':>9s} "
          f"{'MAE>10 x':>9s} " + " ".join(f"{'shape ' + k[:5]:>11s}" for k in kinds) + f" {'train s':>8s}")
    for row in rows:
        if "shape_eV" not in row:
            why = row.get("skipped") or row.get("refused") or f"FAILED: {row.get('failed')}"
            print(f"{row['label']:24s} not run: {why}")
            continue
        shape_x = reference["shape_eV"] / row["shape_eV"] if reference else None
        far_x = reference["mae_far_eV"] / row["mae_far_eV"] if reference else None
        print(f"{row['label']:24s} {fmt(row['mae_far_eV'])} {fmt(row['mae_near_eV'])} {fmt(row['shape_eV'])} "
              f"{fmt(shape_x)} {fmt(far_x)} " + " ".join(f"{fmt(row['shape_eV_by_kind'][k]):>11s}" for k in kinds)
              + f" {row['train_seconds']:8.0f}")


def goal_line(rows: list[dict[str, Any]]) -> str:
    """The issue's goal on each Coulomb model against the local one."""
    done = {row["name"]: row for row in rows if "shape_eV" in row}
    coulomb = [name for name in ("coulomb", "coulomb-q") if name in done]
    if "local" not in done or not coulomb:
        return "goal: needs the local and a coulomb row"
    lines = []
    for name in coulomb:
        shape = done["local"]["shape_eV"] / done[name]["shape_eV"]
        far = done["local"]["mae_far_eV"] / done[name]["mae_far_eV"]
        verdict = "met" if shape >= 5 and far >= 2 else "missed"
        lines.append(f"goal ({name} vs local: shape >= 5x, MAE>10Å >= 2x; moonshot shape >= 20x): shape "
                     f"{shape:.2f}x, MAE>10Å {far:.2f}x: {verdict}" + (", moonshot met" if shape >= 20 else ""))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/tmp/tnq-bench-longrange", help="cache folder of the GFN2-xTB stores")
    parser.add_argument("--runs", help="folder for the run directories (default: a new temporary folder); a model "
                        "whose run is already there is continued to --epochs, or just evaluated")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {list(MODELS)}")
    parser.add_argument("--pairs", type=int, default=24, help="pairs of each kind")
    parser.add_argument("--copies", type=int, default=3, help="distorted copies of each monomer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the monomers, orientations and pairs")
    parser.add_argument("--split-seed", type=int, default=0, help="first split seed tried (see covering_split)")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--rbf", type=int, default=16)
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--warmup", type=int, default=50, help="warm-up steps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every model, e.g. loss.energy_weight=10 (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", help="write the results as JSON to this path")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    torch.set_num_threads(args.threads)
    names = [n for n in args.models.split(",") if n]
    if set(names) - set(MODELS):
        raise SystemExit(f"unknown models {sorted(set(names) - set(MODELS))}; choose from {list(MODELS)}")

    store_path = Path(args.data) / f"pairs-p{args.pairs}-c{args.copies}-s{args.seed}-q"  # -q: with charges/gfn2
    bench_states.ensure_store(store_path, lambda p: longrange_pairs.write_pairs_store(p, args.pairs, args.copies,
                                                                                      args.seed))
    store = open_store(store_path)
    split_seed, splits = covering_split(store, args.split_seed)
    args.split_seed = split_seed
    base = {**bench_states.budget(args), "state": ["charge"], "references": "element_state",
            **{k: v for item in args.set for k, v in bench_states.parse_assignments(item).items()}}
    cols = pair_columns(store, splits["test"])
    runs = Path(args.runs or tempfile.mkdtemp(prefix="tnq-bench-longrange-"))
    kinds = store.column("subset")
    print(f"store {store_path}: {store.n_conformers} conformers, {int((kinds != 'monomer').sum())} pairs "
          f"({', '.join(f'{k} {int((kinds == k).sum())}' for k in longrange_pairs.PAIR_KINDS)}) at "
          f"{longrange_pairs.SEPARATIONS.min():g}-{longrange_pairs.SEPARATIONS.max():g} Å and "
          f"{int((kinds == 'monomer').sum())} monomers; runs in {runs}")
    print(f"split seed {split_seed}: test pairs " + ", ".join(
        f"{k} {len(np.unique(cols['molecule'][cols['kind'] == k]))}" for k in longrange_pairs.PAIR_KINDS)
          + f" ({len(cols['molecule'])} conformers, {int((cols['separation'] > FAR).sum())} beyond {FAR:g} Å)")
    print(f"budget: {base}")
    limits = floor(cols)
    gfn2_q = np.array(limits["gfn2_cation_charge_far_e"])
    print(f"floor of a local model (test pairs): shape of the monomer sum (the interaction's own spread over "
          f">= {SHAPE_FROM:g} Å) {limits['monomer_sum']['shape_eV']:.3f} eV, its MAE>10Å "
          f"{limits['monomer_sum']['mae_far_eV']:.3f} eV; left by point charges of the isolated monomers: shape "
          f"{limits['point_charges']['shape_eV']:.3f} eV, MAE>10Å {limits['point_charges']['mae_far_eV']:.3f} eV")
    if len(gfn2_q):
        print(f"GFN2 charge on the cation of test cation-anion pairs beyond {FAR:g} Å: mean {gfn2_q.mean():.3f} e "
              f"(min {gfn2_q.min():.3f})")

    start = time.perf_counter()
    rows = []
    for name in names:
        rows.append(run_model(name, base, store_path, runs, cols, splits["test"]))
        row = rows[-1]
        text = (f"MAE>10Å {row['mae_far_eV']:.3f} eV, MAE<=10Å {row['mae_near_eV']:.3f} eV, shape "
                f"{row['shape_eV']:.3f} eV" + (" (run continued from --runs)" if row["resumed"] else "")) \
            if "shape_eV" in row else \
            (row.get("skipped") or row.get("refused") or row.get("failed"))
        print(f"  {row['label']}: {text}" + (f" ({row['seconds']:.0f} s)" if "seconds" in row else ""))
        if row.get("learned_cation_charge_far_e"):
            q = np.array(row["learned_cation_charge_far_e"])
            print(f"    learned charge on the cation beyond {FAR:g} Å: mean {q.mean():.3f} e (min {q.min():.3f}, "
                  f"max {q.max():.3f})")
    local = next((row for row in rows if row["name"] == "local" and "shape_eV" in row), None)
    print_table(rows, local)
    print(goal_line(rows))
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "budget": base, "floor": limits, "rows": rows,
                                               "goal": goal_line(rows), "total_seconds": total},
                                              indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
