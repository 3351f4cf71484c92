"""Checks `tnq-data export --format torchmd-hdf5` with torchmd-net's own `HDF5` dataset class.

torchmd-net is not a tnq dependency, so the check runs in a side environment, made here when missing:

    python -m venv --system-site-packages /work/venvs/tmdnet
    /work/venvs/tmdnet/bin/pip install --no-deps 'torchmd-net==3.1.*' warp-lang lightning-utilities

(with system site packages it sees tnq, torch 2.13 CPU, torch-geometric and h5py of the main environment).
Then, with any interpreter, from the repository root:

    python bench/check_torchmdnet_hdf5.py [--venv /work/venvs/tmdnet] [--conformers 20000]

runs tests/sources/test_export_torchmdnet.py there (every sample read by the class, with and without its
preloading, equals the store) and prints, from the side environment: torchmd-net's version, the export's
conformers per second, the seconds torchmd-net takes to open the file and to read every sample, and whether a
batch carries the total charge `q` that torchmd-net's `--charge` option passes to the model, both with the
class as it is (3.1: no) and with a subclass that adds the field ``("q", "total_charge", torch.long)``.
"""

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = Path("/work/venvs/tmdnet")
PACKAGES = ["torchmd-net==3.1.*", "warp-lang", "lightning-utilities"]


def make_venv(venv: Path) -> None:
    """Create the side environment (the commands of the module docstring)."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", *PACKAGES], check=True)


def with_total_charge(base):
    """torchmd-net's HDF5 class with the stored `total_charge` read as its model input `q`."""

    class WithCharge(base):
        def __init__(self, filename: str, **kwargs) -> None:
            import torch

            super().__init__(filename, dataset_preload_limit=0)  # fields are known here; nothing cached yet
            self.fields.append(("q", "total_charge", torch.long))

    return WithCharge


def figures(n_conformers: int) -> None:
    """Export a synthetic store and read it back with torchmd-net; print the figures."""
    from importlib.metadata import version

    import h5py
    import numpy as np
    from torchmdnet.datasets import HDF5

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_export import synthetic_store

    from tnq_data.export import export_store
    from tnq_data.store import open_store

    with tempfile.TemporaryDirectory() as scratch:
        store, out = Path(scratch) / "store", Path(scratch) / "data.h5"
        synthetic_store(store, n_conformers)
        total = open_store(store).n_conformers
        start = time.perf_counter()
        export_store(store, "torchmd-hdf5", out)
        export_s = time.perf_counter() - start
        start = time.perf_counter()
        dataset = HDF5(str(out))
        open_s = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        read_s = time.perf_counter() - start
        charged = with_total_charge(HDF5)(str(out))
        q = np.array([charged[i].q.item() for i in range(len(charged))])
        with h5py.File(out, "r") as handle:
            stored = np.concatenate([handle[name]["total_charge"][:] for name in handle])
        print(f"torchmd-net {version('torchmd-net')}, {total} conformers of 10-30 atoms")
        print(f"export: {total / export_s:,.0f} conformers/s ({export_s:.2f} s, {out.stat().st_size / 2**20:.1f} MiB)")
        print(f"torchmd-net HDF5: open (preload) {open_s:.2f} s, read every sample {read_s:.2f} s")
        print(f"q in a sample of the class as it is: {'q' in dataset[0]}; with the total_charge field: "
              f"{'q' in charged[0]}, equal to the stored total charge for every sample: {np.array_equal(q, stored)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=VENV)
    parser.add_argument("--conformers", type=int, default=20000)
    args = parser.parse_args()
    if importlib.util.find_spec("torchmdnet") is None:
        if not (args.venv / "bin" / "python").exists():
            make_venv(args.venv)
        python = str(args.venv / "bin" / "python")
        tests = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                "tests/sources/test_export_torchmdnet.py"], cwd=REPO, check=False)
        subprocess.run([python, __file__, "--conformers", str(args.conformers)], cwd=REPO, check=True)
        sys.exit(tests.returncode)
    figures(args.conformers)


if __name__ == "__main__":
    main()
