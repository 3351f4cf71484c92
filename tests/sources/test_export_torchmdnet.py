"""`tnq-data export --format torchmd-hdf5`: torchmd-net's HDF5 layout (one group per molecule size), read with
h5py everywhere and with torchmd-net's own `HDF5` dataset class where torchmd-net is importable (the side
environment of bench/check_torchmdnet_hdf5.py runs this file there)."""

import h5py
import numpy as np
import pytest

import tnq_data.cli as data_cli
from tnq_core.cli import run_app
from tnq_data.store import MoleculeBatch, open_store, write_store


@pytest.fixture
def exported(tmp_path):
    """(store, HDF5 file): 30 molecules of 2-6 atoms, 1-3 conformers, charges -1..1, forces; several shards."""
    rng = np.random.default_rng(0)
    n_conf = rng.integers(1, 4, 30)
    n_atoms = np.repeat(rng.integers(2, 7, 30), n_conf)
    names = np.array([f"m{j}" for j in range(30)], dtype=object)
    batch = MoleculeBatch(
        molecule={"smiles": names, "subset": names, "source_id": names, "n_conformers": n_conf},
        conformer={"energy": rng.normal(-3000, 100, n_conf.sum()), "n_atoms": n_atoms,
                   "total_charge": rng.integers(-1, 2, n_conf.sum()).astype(np.int8),
                   "multiplicity": rng.integers(1, 4, n_conf.sum()).astype(np.int8)},
        atom={"z": rng.choice(np.array([1, 6, 8], np.uint8), n_atoms.sum()),
              "pos": rng.normal(0, 1.5, (n_atoms.sum(), 3)).astype(np.float32),
              "forces": rng.normal(0, 1, (n_atoms.sum(), 3)).astype(np.float32)})
    write_store(tmp_path / "store", [batch], shard_bytes=2000)
    out = tmp_path / "data.h5"
    assert run_app(data_cli.app, ["export", str(tmp_path / "store"), "--format", "torchmd-hdf5", "--out", str(out)],
                   prog_name="tnq-data") == 0
    return open_store(tmp_path / "store"), out


def in_file_order(store) -> list[dict]:
    """The store's conformers in the file's order: by size (groups sort by it), store order within a size."""
    rows = [store.conformer(i) for i in range(store.n_conformers)]
    return sorted(rows, key=lambda row: len(row["z"]))


def test_one_group_per_size_with_types_pos_energy_forces_and_the_labels(exported):
    store, path = exported
    assert store.n_shards > 1
    expected = in_file_order(store)
    with h5py.File(path, "r") as handle:
        assert handle.attrs["unit_energy"] == "eV" and handle.attrs["store_version"] == store.version
        sizes = sorted({len(row["z"]) for row in expected})
        assert list(handle) == [f"natoms_{n:04d}" for n in sizes]
        read = []
        for name in handle:
            group = handle[name]
            n = int(name.split("_")[1])
            assert group["types"].shape[1:] == (n,) and group["pos"].shape[1:] == (n, 3)
            for k in range(len(group["pos"])):
                read.append({key: group[key][k] for key in group})
    assert len(read) == len(expected)
    for got, row in zip(read, expected):
        assert np.array_equal(got["types"], row["z"]) and np.array_equal(got["pos"], row["pos"])
        assert got["energy"] == row["energy"] and np.array_equal(got["forces"], row["forces"])
        assert got["total_charge"] == row["total_charge"] and got["multiplicity"] == row["multiplicity"]
        assert got["molecule"] == row["molecule"]


@pytest.mark.parametrize("preload", [True, False])
def test_torchmdnets_hdf5_class_reads_it(exported, preload):
    torch = pytest.importorskip("torch")
    datasets = pytest.importorskip("torchmdnet.datasets")
    store, path = exported
    dataset = datasets.HDF5(str(path), dataset_preload_limit=1024 if preload else 0)
    expected = in_file_order(store)
    assert len(dataset) == len(expected)
    for i, row in enumerate(expected):
        sample = dataset[i]
        assert torch.equal(sample.z, torch.as_tensor(row["z"], dtype=torch.long))
        assert torch.equal(sample.pos, torch.as_tensor(row["pos"]))
        assert torch.equal(sample.neg_dy, torch.as_tensor(row["forces"]))
        assert sample.y.shape == (1,) and sample.y.item() == np.float32(row["energy"])  # torchmd-net reads float32
        assert "q" not in sample  # torchmd-net 3.1's class reads no total charge (docs/interop.md)
