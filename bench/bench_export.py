"""Throughput and memory of `tnq-data export` in each format on a synthetic SPICE-sized store.

    python bench/bench_export.py [--conformers 200000] [--formats extxyz,torchmd-hdf5,asedb]

writes a store of molecules of 10-30 atoms (5 conformers each, with forces), exports it in each format in a
child process and prints conformers per second, the file size and the child's peak RSS (the export streams
shard by shard, so the peak should not grow with the store).
"""

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

SUFFIX = {"extxyz": ".xyz", "torchmd-hdf5": ".h5", "asedb": ".aselmdb"}


def synthetic_store(path: Path, n_conformers: int) -> None:
    """A store of molecules of 10-30 atoms (H, C, N, O), 5 conformers each, with forces and labels."""
    import numpy as np

    from tnq_data.store import MoleculeBatch, write_store

    rng = np.random.default_rng(0)
    n_molecules = max(1, n_conformers // 5)
    n_conf = np.full(n_molecules, 5)
    n_atoms = np.repeat(rng.integers(10, 31, n_molecules), 5)
    names = np.array([f"m{j}" for j in range(n_molecules)], dtype=object)
    batch = MoleculeBatch(
        molecule={"smiles": names, "subset": names, "source_id": names, "n_conformers": n_conf},
        conformer={"energy": rng.normal(-2e4, 1e3, n_conf.sum()), "n_atoms": n_atoms,
                   "total_charge": rng.integers(-1, 2, n_conf.sum()).astype(np.int8),
                   "multiplicity": np.ones(n_conf.sum(), np.int8)},
        atom={"z": rng.choice(np.array([1, 6, 7, 8], np.uint8), n_atoms.sum()),
              "pos": rng.normal(0, 2, (n_atoms.sum(), 3)).astype(np.float32),
              "forces": rng.normal(0, 1, (n_atoms.sum(), 3)).astype(np.float32)})
    write_store(path, [batch])


CHILD = """
import resource, sys, time
from tnq_data.export import export_store
start = time.perf_counter()
summary = export_store(sys.argv[1], sys.argv[2], sys.argv[3])
print(summary["conformers"], time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conformers", type=int, default=200000)
    parser.add_argument("--formats", default=",".join(SUFFIX))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        store = Path(scratch) / "store"
        synthetic_store(store, args.conformers)
        print(f"{args.conformers} conformers of 10-30 atoms; peak RSS of this process after writing the store: "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        for fmt in args.formats.split(","):
            out = Path(scratch) / f"out{SUFFIX[fmt]}"
            result = subprocess.run([sys.executable, "-c", CHILD, str(store), fmt, str(out)], capture_output=True,
                                    text=True, check=True)
            count, seconds, rss_kib = result.stdout.split()
            print(f"{fmt:>13}: {int(count) / float(seconds):9,.0f} conformers/s ({float(seconds):6.1f} s), "
                  f"{out.stat().st_size / 2**20:7.1f} MiB, peak RSS {int(rss_kib) / 1024:5.0f} MiB")
            out.unlink()


if __name__ == "__main__":
    main()
