"""Benchmark: curate_spice on one worker against reading the same datasets with plain h5py.

Builds a SPICE-format file of at least --conformers conformers by replicating the groups of the real sample
with perturbed coordinates, then prints both rates (conformers/s, best of --repeats alternating timings, page
cache warm) and their ratio, from one run. The curate timing includes hashing the input and writing the store.
Usage: python bench/bench_curate.py [--sample PATH] [--conformers 100000] [--repeats 3]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from tnq_data.sources.spice import curate_spice

NEEDED = ("atomic_numbers", "conformations", "dft_total_energy", "formation_energy", "dft_total_gradient",
          "mbis_charges", "smiles", "subset")
DEFAULT_SAMPLE = Path(__file__).resolve().parents[2] / "shared/data/spice/SPICE-1.1.4_n2.hdf5"


def scale_up(sample: Path, target: Path, conformers: int, seed: int = 0) -> tuple[int, int]:
    """Write `target` with copies of the sample's groups (coordinates perturbed by ~0.01 bohr).

    Returns (conformers, groups) written.
    """
    rng = np.random.default_rng(seed)
    with h5py.File(sample) as src, h5py.File(target, "w") as dst:
        per_copy = sum(src[name]["conformations"].shape[0] for name in src)
        copies = -(-conformers // per_copy)
        for copy in range(copies):
            for name in sorted(src):
                group = dst.create_group(f"{name}-{copy:06d}")
                for key in NEEDED:
                    if key not in src[name]:
                        continue
                    data = src[name][key][()]
                    if key == "conformations":
                        data = data + rng.normal(scale=0.01, size=data.shape).astype(data.dtype)
                    dataset = group.create_dataset(key, data=data)
                    dataset.attrs.update(src[name][key].attrs)
        return copies * per_copy, copies * len(src)


def read_plain(path: Path) -> int:
    """Read every needed dataset of every group with h5py; returns the number of conformers."""
    n = 0
    with h5py.File(path) as handle:
        for name in handle:
            group = handle[name]
            for key in NEEDED:
                if key in group:
                    group[key][()]
            n += group["conformations"].shape[0]
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, default=Path(os.environ.get("TNQ_SPICE_SAMPLE", DEFAULT_SAMPLE)))
    parser.add_argument("--conformers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="alternating timings of each; the best is reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tnq-bench-curate-") as tmp:
        source = Path(tmp) / "spice-scaled.hdf5"
        total, groups = scale_up(args.sample, source, args.conformers)
        read_plain(source)  # warm the page cache so both timings read from memory
        plain_s, curate_s = [], []
        for repeat in range(args.repeats):  # alternate, keep the best of each: the machine is shared
            start = time.perf_counter()
            read_plain(source)
            plain_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            curate_spice(source, Path(tmp) / f"store-{repeat}", workers=1)
            curate_s.append(time.perf_counter() - start)
        plain, curated = total / min(plain_s), total / min(curate_s)

    print(f"input: {total} conformers in {groups} groups")
    print(f"h5py read of the needed datasets: {plain:,.0f} conformers/s")
    print(f"curate_spice, 1 worker, to a store: {curated:,.0f} conformers/s")
    print(f"ratio curate/read: {curated / plain:.2f} (target >= 0.50)")


if __name__ == "__main__":
    main()
