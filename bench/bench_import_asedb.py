"""`tnq-data import asedb` against a plain loop over `ase.db` rows, and its peak memory.

    python bench/bench_import_asedb.py [--rows 200000] [--atoms 20] [--workers 1 2] [--db PATH]

Writes an OMol25-like `.aselmdb` with ase-db-backends itself (energy and forces from a
SinglePointCalculator; `charge`, `spin` and per-atom `lowdin_charges` in `data`), then prints:
- rows/s of a plain loop over `ase.db` rows (`db.select()`, reading numbers, positions, energy, forces and
  the data labels of each row: the least any importer must do);
- rows/s of `import_asedb` (reading, checking and writing the store) with each worker count, the ratio to
  the plain loop (goal: at least 1.0), and the peak RSS of the importing process (goal: below 1 GiB) in a
  fresh child process (its VmHWM), with the largest and the summed RSS of it and its dask workers.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_database(path: Path, rows: int, atoms: int, seed: int = 0) -> None:
    """An `.aselmdb` of `rows` molecules of `atoms` atoms (H, C, N, O), multiplicity fitting the electrons."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase_db_backends.aselmdb import LMDBDatabase

    rng = np.random.default_rng(seed)
    with LMDBDatabase(path) as db:
        for i in range(rows):
            numbers = rng.choice([1, 6, 7, 8], atoms)
            charge = int(rng.integers(-1, 2))
            spin = 1 + (int(numbers.sum()) - charge) % 2
            molecule = Atoms(numbers=numbers, positions=rng.normal(scale=2.0, size=(atoms, 3)))
            molecule.calc = SinglePointCalculator(molecule, energy=-1000.0 - i, forces=rng.normal(size=(atoms, 3)))
            db.write(molecule, data={"charge": charge, "spin": spin, "lowdin_charges": rng.normal(size=atoms)})


def row_count(path: Path) -> int:
    """The number of rows of an .aselmdb, as ase-db-backends counts them."""
    from ase_db_backends.aselmdb import LMDBDatabase

    return LMDBDatabase(path, readonly=True).count()


def plain_loop(path: Path) -> float:
    """Seconds of a plain loop over the rows of `path` with ase (ase-db-backends for LMDB)."""
    from ase_db_backends.aselmdb import LMDBDatabase

    start = time.perf_counter()
    db = LMDBDatabase(path, readonly=True)
    for row in db.select():
        row.numbers, row.positions, row.energy, row.forces, row.data["charge"], row.data["spin"]
    return time.perf_counter() - start


_CHILD = """
import json, sys, threading, time
import psutil
from tnq_data.sources.asedb import import_asedb

peaks = {"largest": 0, "total": 0}
done = threading.Event()

def sample():
    me = psutil.Process()
    while not done.wait(0.05):
        try:
            sizes = [p.memory_info().rss for p in [me, *me.children(recursive=True)]]
        except psutil.Error:
            continue
        peaks["largest"], peaks["total"] = max(peaks["largest"], *sizes), max(peaks["total"], sum(sizes))

threading.Thread(target=sample, daemon=True).start()
start = time.perf_counter()
import_asedb([sys.argv[1]], sys.argv[2], charges_key=["lowdin_charges=lowdin"], workers=int(sys.argv[3]))
seconds = time.perf_counter() - start
done.set()
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "main_kib": hwm, "largest": peaks["largest"], "total": peaks["total"]}))
"""


def measure_import(path: Path, out: Path, workers: int) -> dict:
    """Seconds of one import, the peak RSS of its process (VmHWM, KiB: exact, and not inherited from this
    script as ru_maxrss would be) and, sampled every 50 ms, the largest RSS of one process and of all of
    them together (bytes; dask workers included)."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(out), str(workers)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the import failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--atoms", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--db", type=Path, default=None,
                        help="The .aselmdb to use: written there if absent and kept (default: a temporary one).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.aselmdb"
        if not path.exists():
            start = time.perf_counter()
            make_database(path, args.rows, args.atoms)
            print(f"wrote {args.rows} rows of {args.atoms} atoms in {time.perf_counter() - start:.0f} s")
        rows = row_count(path)
        print(f"{path}: {rows} rows, {path.stat().st_size / 2**20:.0f} MiB")
        plain = rows / plain_loop(path)
        print(f"plain ase.db loop: {plain:,.0f} rows/s")
        for workers in args.workers:
            result = measure_import(path, Path(tmp) / f"store-{workers}", workers)
            rate = rows / result["seconds"]
            print(f"import asedb, {workers} worker(s): {rate:,.0f} rows/s = {rate / plain:.2f}x the plain loop; "
                  f"peak RSS {result['main_kib'] / 2**20:.2f} GiB (importing process), largest process "
                  f"{result['largest'] / 2**30:.2f} GiB, all processes {result['total'] / 2**30:.2f} GiB")
    print(f"(this script's own peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB)")


if __name__ == "__main__":
    main()
