"""`tnq-data export --format asedb`: `.aselmdb` (ase-db-backends) and SQLite `.db` read the way fairchem's
AseDBDataset reads them (ase.db.connect, row.toatoms, row.data into atoms.info), and the round trip through
`import asedb` to the same content id."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

import tnq_data.cli as data_cli
from tnq_core.cli import run_app
from tnq_data.sources.asedb import import_asedb
from tnq_data.store import open_store
from tnq_data.store.manifest import content_id


def tnq_data(*args) -> int:
    return run_app(data_cli.app, [str(a) for a in args], prog_name="tnq-data")


def connect(path):
    """A new database of the kind its suffix names, written by ase-db-backends or ase (independent writers)."""
    import ase.db
    from ase_db_backends.aselmdb import LMDBDatabase

    return LMDBDatabase(path) if path.suffix == ".aselmdb" else ase.db.connect(path, append=False)


def write_database(path, seed: int = 0, n_molecules: int = 8) -> None:
    """OMol25-like rows: charge and spin (2S+1) in data, energy and forces in a calculator, Löwdin charges,
    and `mol` naming molecules of 1-3 conformers."""
    rng = np.random.default_rng(seed)
    with connect(path) as db:
        for j in range(n_molecules):
            z = rng.choice(np.array([1, 6, 7, 8]), rng.integers(2, 6))
            for _ in range(rng.integers(1, 4)):
                atoms = Atoms(numbers=z, positions=rng.normal(0, 1.5, (len(z), 3)))
                atoms.calc = SinglePointCalculator(atoms, energy=float(rng.normal(-5000, 100)),
                                                   forces=rng.normal(0, 0.5, (len(z), 3)))
                charge = int(rng.integers(-1, 2))
                db.write(atoms, data={"charge": charge, "spin": 1 + (int(z.sum()) - charge) % 2, "mol": f"m{j}",
                                      "lowdin_charges": rng.normal(0, 0.3, len(z))})


@pytest.fixture(params=[".aselmdb", ".db"])
def suffix(request):
    return request.param


def test_fairchem_reading_path_gets_every_value(tmp_path, suffix):
    import ase.db

    write_database(tmp_path / f"in{suffix}")
    import_asedb([tmp_path / f"in{suffix}"], tmp_path / "store", charges_key=["lowdin_charges=lowdin"],
                 molecule_key="mol")
    out = tmp_path / f"out{suffix}"
    assert tnq_data("export", tmp_path / "store", "--format", "asedb", "--out", out) == 0
    store = open_store(tmp_path / "store")
    db = ase.db.connect(str(out), **({"readonly": True, "use_lock_file": False} if suffix == ".aselmdb" else {}))
    rows = list(db.select())
    assert len(rows) == store.n_conformers
    for i, row in enumerate(rows):
        atoms, expected = row.toatoms(), store.conformer(i)
        atoms.info.update(row.data)  # what fairchem's AseDBDataset.get_atoms does
        assert atoms.info["charge"] == expected["total_charge"]
        assert atoms.info["spin"] == expected["multiplicity"]  # fairchem's spin is 2S+1
        assert atoms.get_potential_energy() == expected["energy"]  # eV, every bit
        assert np.array_equal(atoms.get_forces().astype(np.float32), expected["forces"])  # eV/Å
        assert np.array_equal(atoms.positions.astype(np.float32), expected["pos"])  # Å
        assert np.array_equal(atoms.numbers, expected["z"]) and not atoms.pbc.any()
        assert np.array_equal(atoms.info["lowdin_charges"].astype(np.float32), expected["charges/lowdin"])
        assert row.key_value_pairs == {"source_id": store.molecule(int(expected["molecule"]))["source_id"],
                                       "subset": f"in{suffix}"}


def test_round_trip_through_import_asedb_gives_the_same_content_id(tmp_path, suffix):
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    source = tmp_path / "in" / f"rows{suffix}"  # import asedb names the subset (and row ids) after the file
    write_database(source, seed=1)
    import_asedb([source], tmp_path / "store", charges_key=["lowdin_charges=lowdin"])
    out = tmp_path / "out" / f"rows{suffix}"
    assert tnq_data("export", tmp_path / "store", "--format", "asedb", "--out", out) == 0
    assert tnq_data("-q", "import", "asedb", out, "--out", tmp_path / "back", "--charges-key",
                    "lowdin_charges=lowdin") == 0
    assert content_id(open_store(tmp_path / "back").manifest) == content_id(open_store(tmp_path / "store").manifest)


def test_round_trip_keeps_molecules_with_the_molecule_key_source_id(tmp_path, suffix):
    write_database(tmp_path / f"in{suffix}", seed=2, n_molecules=10)
    import_asedb([tmp_path / f"in{suffix}"], tmp_path / "store", molecule_key="mol")
    store = open_store(tmp_path / "store")
    assert store.n_molecules < store.n_conformers
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / f"in{suffix}"
    assert tnq_data("export", tmp_path / "store", "--format", "asedb", "--out", out) == 0
    assert tnq_data("-q", "import", "asedb", out, "--out", tmp_path / "back", "--molecule-key", "source_id") == 0
    assert content_id(open_store(tmp_path / "back").manifest) == content_id(store.manifest)
