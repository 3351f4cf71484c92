"""torchmd-net 3.1 TensorNet as a peer row of bench/bench_states.py (issue 14), trained by `torchmd-train --charge true`.

The host side (`command`, `progress`, `finish`) is called by bench/peers.py. The side environment runs this file itself:

    /work/venvs/tmdnet/bin/python bench/peer_torchmdnet.py train WORK -- TORCHMD_TRAIN_ARGS...
    /work/venvs/tmdnet/bin/python bench/peer_torchmdnet.py evaluate CHECKPOINT TEST.h5 OUT.npz

`train` registers the dataset class `HDF5WithCharge` in torchmd-net's dataset registry and runs torchmd-net's own
training script (`torchmdnet.scripts.train.main`, what `torchmd-train` runs) with the given arguments. The class is
torchmd-net's `HDF5` reading tnq's `tnq-data export --format torchmd-hdf5` files with the stored `total_charge`
as `q` (the model input of `--charge`; docs/interop.md) and per-element reference energies (eV) for its `Atomref`
prior, fitted by least squares on the first file (the training split). `evaluate` loads the checkpoint with
torchmd-net's `load_model` and writes the test energies (eV) and forces (eV/Å) with the stored labels.
"""

import csv
import re
import sys
from pathlib import Path

import numpy as np

FORMAT, SUFFIX = "torchmd-hdf5", ".h5"
#: Checkpoint names torchmd-train writes: "epoch={epoch}-val_loss={monitored value:.4f}" (no test loss: the
#: peer's splits give torchmd-net no test indices; the test split is evaluated here).
CHECKPOINT = re.compile(r"epoch=(\d+)-val_loss=([0-9.eE+-]+)\.ckpt$")


def best_checkpoint(names: list[str]) -> str | None:
    """The checkpoint name of the lowest validation loss (the later epoch on a tie); None when there is none."""
    scored = [(float(m.group(2)), -int(m.group(1)), name) for name in names if (m := CHECKPOINT.search(name))]
    return min(scored)[2] if scored else None


def completed_epochs(metrics_csv: Path) -> int:
    """Epochs torchmd-net validated, from its CSVLogger file (rows with `val_total_mse_loss`); 0 when absent."""
    if not metrics_csv.is_file():
        return 0
    with metrics_csv.open() as handle:
        epochs = {int(float(row["epoch"])) for row in csv.DictReader(handle) if row.get("val_total_mse_loss")}
    return max(epochs) + 1 if epochs else 0


def progress(work: Path) -> tuple[int, float | None]:
    """(epochs completed, the time stamp of the last one: when torchmd-net wrote its metrics; None before any)."""
    metrics = work / "logs" / "metrics.csv"
    return completed_epochs(metrics), metrics.stat().st_mtime if metrics.is_file() else None


def command(python: Path, work: Path, files: dict[str, Path], sizes: dict[str, int], model: dict) -> list[str]:
    """The training command: torchmd-net's trainer on the train+val files, its splits as index ranges."""
    n_train, n_val = sizes["train"], sizes["val"]
    np.savez(work / "splits.npz", idx_train=np.arange(n_train), idx_val=np.arange(n_train, n_train + n_val),
             idx_test=np.arange(0))
    args = ["--dataset", "HDF5WithCharge", "--dataset-root", f"{files['train']};{files['val']}",
            "--splits", str(work / "splits.npz"), "--log-dir", str(work / "logs"), "--model", "tensornet",
            "--charge", "true", "--prior-model", "Atomref", "--derivative", "true",
            "--embedding-dimension", str(model["hidden"]), "--num-layers", str(model["layers"]),
            "--num-rbf", str(model["rbf"]), "--cutoff-upper", str(model["cutoff"]),
            "--batch-size", str(model["batch_size"]), "--inference-batch-size", "64", "--lr", str(model["lr"]),
            "--lr-warmup-steps", str(model["warmup"]), "--num-epochs", "100000", "--save-interval", "1",
            "--num-workers", "0", "--ngpus", "1", "--seed", "0", "--max-z", "100",
            "--y-weight", "1", "--neg-dy-weight", "1"]
    return [str(python), __file__, "train", str(work), "--", *args]


def finish(python: Path, work: Path, files: dict[str, Path], model: dict) -> list[list[str]]:
    """The command that evaluates the best checkpoint into work/test.npz; none when torchmd-net saved none."""
    logs = work / "logs"
    best = best_checkpoint([p.name for p in logs.glob("*.ckpt")]) if logs.is_dir() else None
    if best is None:
        return []
    return [[str(python), __file__, "evaluate", str(logs / best), str(files["test"]), str(work / "test.npz")]]


def fitted_atomref(train_file: str, max_z: int = 100):
    """Per-element energies (max_z, 1) in eV: least squares of the file's energies on its element counts."""
    import h5py
    import torch

    counts, energies = [], []
    with h5py.File(train_file, "r") as handle:
        for group in handle.values():
            types = np.asarray(group["types"])
            counts.append(np.stack([np.bincount(row, minlength=max_z) for row in types]))
            energies.append(np.asarray(group["energy"], np.float64).reshape(-1))
    a, y = np.concatenate(counts).astype(np.float64), np.concatenate(energies)
    present = a.any(axis=0)
    ref = np.zeros(max_z)
    ref[present] = np.linalg.lstsq(a[:, present], y, rcond=None)[0]
    return torch.tensor(ref, dtype=torch.float32).view(-1, 1)


def register_dataset() -> None:
    """Add `HDF5WithCharge` to torchmd-net's dataset registry (torchmd-train picks `--dataset` from it)."""
    import torch
    from torchmdnet import datasets

    class HDF5WithCharge(datasets.HDF5):
        def __init__(self, filename: str, dataset_preload_limit: int = 1024, **kwargs) -> None:
            super().__init__(filename, dataset_preload_limit=0)  # the field list is complete before preloading
            self.fields.append(("q", "total_charge", torch.long))
            self.cached = True
            self._preload_data()
            self._atomref = fitted_atomref(filename.split(";")[0])

        def get_atomref(self):
            return self._atomref

    datasets.HDF5WithCharge = HDF5WithCharge
    datasets.__all__.append("HDF5WithCharge")


def evaluate(checkpoint: str, test_file: str, out: str) -> None:
    """Energies and forces of the checkpoint on every sample of `test_file`, with the stored labels, into `out`."""
    import h5py
    import torch
    from torchmdnet.models.model import load_model

    model = load_model(checkpoint, derivative=True)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("energy_true", "energy_pred", "force_err", "total_charge",
                                                          "multiplicity")}
    with h5py.File(test_file, "r") as handle:
        for group in handle.values():
            types, pos = np.asarray(group["types"]), np.asarray(group["pos"], np.float32)
            for start in range(0, len(types), 64):
                z, r = types[start:start + 64], pos[start:start + 64]
                k, n = z.shape
                batch = torch.arange(k).repeat_interleave(n)
                q = torch.as_tensor(np.asarray(group["total_charge"][start:start + 64]), dtype=torch.long)
                energy, forces = model(torch.as_tensor(z.reshape(-1)), torch.as_tensor(r.reshape(-1, 3)), batch, q=q)
                parts["energy_pred"].append(energy.detach().numpy().reshape(-1))
                parts["force_err"].append((forces.detach().numpy().reshape(k, n, 3)
                                           - np.asarray(group["forces"][start:start + 64])).reshape(-1))
            parts["energy_true"].append(np.asarray(group["energy"], np.float64).reshape(-1))
            parts["total_charge"].append(np.asarray(group["total_charge"]))
            parts["multiplicity"].append(np.asarray(group["multiplicity"]))
    np.savez(out, **{key: np.concatenate(value) for key, value in parts.items()})


def main() -> None:
    """Entry point inside the torchmd-net side environment (see the module docstring)."""
    if len(sys.argv) > 2 and sys.argv[1] == "train":
        register_dataset()
        from torchmdnet.scripts import train

        sys.argv = ["torchmd-train", *sys.argv[sys.argv.index("--") + 1:]]
        train.main()
    elif len(sys.argv) == 5 and sys.argv[1] == "evaluate":
        evaluate(*sys.argv[2:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
