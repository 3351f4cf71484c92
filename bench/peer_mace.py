"""MACE (mace-torch) with its total-charge and total-spin embeddings as a peer row of bench/bench_states.py (issue 14).

The host side (`command`, `progress`, `finish`) is called by bench/peers.py: MACE's own `mace_run_train` on tnq's extxyz
export (keys `REF_energy`, `REF_forces`, `total_charge`, `total_spin` = 2S+1; docs/interop.md), the state given
to the model by `--embedding_specs` (a categorical embedding per graph of the total charge and of the total spin,
added to the node features) and `--use_embedding_readout`. When the budget ends the trainer is stopped; a second
`mace_run_train --restart_latest` with `--max_num_epochs` set to the epoch of the last checkpoint (MACE keeps the
one of the lowest validation loss) trains nothing and writes MACE's model file of that checkpoint. The side
environment then runs this file:

    /work/venvs/mace/bin/python bench/peer_mace.py evaluate MODEL TEST.xyz OUT.npz

which predicts the test file with MACE's ASE calculator, its total charge and spin read from the frames' keys.
(`mace_eval_configs` of mace-torch 0.3.16 reads no total charge or spin: it builds its inputs without key
specification, so every frame gets charge 0 and spin 1.)
"""

import re
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

FORMAT, SUFFIX = "extxyz", ".xyz"
NAME = "mace_peer"
#: MACE's checkpoint files: "<name>_run-<seed>_epoch-<epoch>.pt" (the epoch counts from 0).
CHECKPOINT = re.compile(r"_epoch-(\d+)\.pt$")
#: MACE's log line after each epoch's validation: "2026-12-01 21:07:57.829 INFO: Epoch 0: head: Default, ...".
EPOCH_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) INFO: Epoch (\d+):")
#: The state embeddings: categorical per graph; `offset` moves total charges -100..100 to classes 0..200.
EMBEDDINGS = {"total_charge": {"type": "categorical", "per": "graph", "num_classes": 201, "offset": 100, "emb_dim": 16},
              "total_spin": {"type": "categorical", "per": "graph", "num_classes": 101, "emb_dim": 16}}


def latest_epoch(names: list[str]) -> int | None:
    """The epoch of the latest MACE checkpoint among file names; None when there is none."""
    epochs = [int(m.group(1)) for name in names if (m := CHECKPOINT.search(name))]
    return max(epochs) if epochs else None


def epoch_ends(lines: list[str]) -> dict[int, float]:
    """Epoch -> the time (s since the epoch of the clock, local time) MACE logged its validation, from its log."""
    ends = {}
    for line in lines:
        if m := EPOCH_LINE.match(line):
            ends[int(m.group(2))] = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
    return ends


def _train_args(work: Path, files: dict[str, Path], model: dict) -> list[str]:
    return ["--name", NAME, "--work_dir", str(work), "--seed", "0", "--device", "cpu", "--default_dtype", "float32",
            "--model", "MACE", "--train_file", str(files["train"]), "--valid_file", str(files["val"]),
            "--E0s", "average", "--num_channels", str(model["hidden"]), "--max_L", "1",
            "--num_interactions", str(model["layers"]), "--num_radial_basis", str(model["rbf"]),
            "--r_max", str(model["cutoff"]), "--batch_size", str(model["batch_size"]), "--valid_batch_size", "64",
            "--lr", str(model["lr"]), "--ema", "--ema_decay", "0.99", "--eval_interval", "1",
            "--error_table", "TotalMAE", "--num_workers", "0", "--embedding_specs", repr(EMBEDDINGS),
            "--use_embedding_readout", "True"]


def command(python: Path, work: Path, files: dict[str, Path], sizes: dict[str, int], model: dict) -> list[str]:
    """The training command: mace_run_train for (far) more epochs than the budget allows."""
    return [str(python.parent / "mace_run_train"), *_train_args(work, files, model), "--max_num_epochs", "100000"]


def progress(work: Path) -> tuple[int, float | None]:
    """(epochs completed, the time stamp of the last one: its validation line in MACE's log; None before any)."""
    log = work / "logs" / f"{NAME}_run-0.log"
    ends = epoch_ends(log.read_text().splitlines()) if log.is_file() else {}
    return (max(ends) + 1, ends[max(ends)]) if ends else (0, None)


def finish(python: Path, work: Path, files: dict[str, Path], model: dict) -> list[list[str]]:
    """The commands that write MACE's model of the best checkpoint and evaluate it into work/test.npz; none
    when MACE saved no checkpoint."""
    best = latest_epoch([p.name for p in (work / "checkpoints").glob("*.pt")]) if (work / "checkpoints").is_dir() \
        else None
    if best is None:
        return []
    write_model = [str(python.parent / "mace_run_train"), *_train_args(work, files, model), "--restart_latest",
                   "--max_num_epochs", str(best)]
    evaluate = [str(python), __file__, "evaluate", str(work / f"{NAME}.model"), str(files["test"]),
                str(work / "test.npz")]
    return [write_model, evaluate]


def evaluate(model_file: str, test_file: str, out: str) -> None:
    """Energies and forces of the MACE model on every frame of `test_file`, with the frames' labels, into `out`."""
    import ase.io
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=model_file, device="cpu", default_dtype="float32",
                          info_keys={"total_charge": "total_charge", "total_spin": "total_spin"})
    parts: dict[str, list] = {k: [] for k in ("energy_true", "energy_pred", "force_err", "total_charge",
                                              "multiplicity")}
    for atoms in ase.io.read(test_file, index=":"):
        true_forces = atoms.arrays["REF_forces"]
        atoms.calc = calc
        parts["energy_pred"].append(atoms.get_potential_energy())
        parts["force_err"].append((atoms.get_forces() - true_forces).reshape(-1))
        parts["energy_true"].append(atoms.info["REF_energy"])
        parts["total_charge"].append(atoms.info["total_charge"])
        parts["multiplicity"].append(atoms.info["total_spin"])
    np.savez(out, energy_true=np.array(parts["energy_true"]), energy_pred=np.array(parts["energy_pred"]),
             force_err=np.concatenate(parts["force_err"]), total_charge=np.array(parts["total_charge"]),
             multiplicity=np.array(parts["multiplicity"]))


def main() -> None:
    """Entry point inside the MACE side environment (see the module docstring)."""
    if len(sys.argv) == 5 and sys.argv[1] == "evaluate":
        evaluate(*sys.argv[2:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
