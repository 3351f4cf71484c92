"""import_asedb on real ASE databases written here with ase (SQLite) and ase-db-backends (aselmdb): values,
units, labels and their refusals, charges columns, molecule grouping, archives and bad paths."""

import tarfile

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

import tnq_data.cli as data_cli
from tnq_core.cli import run_app
from tnq_core.errors import TnqError
from tnq_data.sources import asedb as asedb_module
from tnq_data.sources.asedb import import_asedb
from tnq_data.store import open_store

WATER = Atoms("OH2", positions=[(0.0, 0.0, 0.1173), (0.0, 0.7572, -0.4692), (0.0, -0.7572, -0.4692)])
HYDROXYL = Atoms("OH", positions=[(0.0, 0.0, 0.0), (0.0, 0.0, 0.97)])


def connect(path):
    """A writable database of the kind its name says: ase-db-backends for .aselmdb, ase's SQLite for .db."""
    import ase.db
    from ase_db_backends.aselmdb import LMDBDatabase

    return LMDBDatabase(path) if path.suffix == ".aselmdb" else ase.db.connect(path, append=False)


def write_rows(path, rows):
    """Write (atoms, energy or None, forces or None, data) rows; energy/forces go to a SinglePointCalculator."""
    with connect(path) as db:
        for atoms, energy, forces, data in rows:
            atoms = atoms.copy()
            if energy is not None:
                atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
            db.write(atoms, data=data)
    return path


def forces_of(atoms, scale=0.1):
    return scale * np.arange(3 * len(atoms), dtype=np.float64).reshape(-1, 3)


@pytest.fixture(params=[".aselmdb", ".db"])
def suffix(request):
    return request.param


def test_calculator_values_charge_and_multiplicity(tmp_path, suffix):
    moved = WATER.copy()
    moved.positions += 0.5
    path = write_rows(tmp_path / f"rows{suffix}", [
        (WATER, -2079.5, forces_of(WATER), {"charge": 0, "spin": 1}),
        (moved, -2070.25, -forces_of(WATER), {"charge": 1, "spin": 2}),
        (HYDROXYL, -2000.0, forces_of(HYDROXYL), {"charge": 0, "spin": 2}),
    ])
    version = import_asedb([path], tmp_path / "s")
    store = open_store(tmp_path / "s")
    assert store.version == version and store.n_molecules == 3 and len(store) == 3
    assert store.column("energy").tolist() == [-2079.5, -2070.25, -2000.0]
    assert store.column("total_charge").tolist() == [0, 1, 0]
    assert store.column("multiplicity").tolist() == [1, 2, 2]
    second = store.conformer(1)
    np.testing.assert_allclose(second["pos"], WATER.positions + 0.5, atol=1e-6)
    np.testing.assert_allclose(second["forces"], -forces_of(WATER), atol=1e-6)
    assert store.conformer(2)["z"].tolist() == [8, 1]
    assert [store.molecule(i)["source_id"] for i in range(3)] == [f"rows{suffix}:{i}" for i in (1, 2, 3)]
    assert store.molecule(0)["subset"] == f"rows{suffix}"
    assert store.tables["curation"] == [{"reason": "kept", "molecules": 3, "conformers": 3}]
    assert store.manifest["provenance"]["command"] == "import asedb"


def test_energy_and_forces_from_data_keys_and_labels_from_key_value_pairs(tmp_path):
    import ase.db

    path = tmp_path / "plain.db"
    with ase.db.connect(path) as db:
        db.write(WATER, q=-1, mult=2, data={"E": -10.5, "F": forces_of(WATER)})
    import_asedb([path], tmp_path / "s", charge_key="q", spin_key="mult", energy_key="E", forces_key="F")
    store = open_store(tmp_path / "s")
    assert store.column("energy").tolist() == [-10.5]
    assert (int(store.column("total_charge")[0]), int(store.column("multiplicity")[0])) == (-1, 2)
    np.testing.assert_allclose(store.conformer(0)["forces"], forces_of(WATER), atol=1e-6)


def test_units_are_ase_ev_and_angstrom_stored_unchanged(tmp_path, suffix):
    """EMT (eV, Å) labels a distorted Cu3 cluster; the stored forces are minus the finite-difference gradient
    of EMT's energy at the stored positions, and the stored energy is EMT's there: no unit was converted."""
    cluster = Atoms("Cu3", positions=[(0.0, 0.0, 0.0), (2.6, 0.1, 0.0), (1.2, 2.1, 0.3)])
    cluster.calc = EMT()
    path = write_rows(tmp_path / f"cu{suffix}", [(cluster, cluster.get_potential_energy(), cluster.get_forces(),
                                                  {"charge": 0, "spin": 2})])
    import_asedb([path], tmp_path / "s")
    store = open_store(tmp_path / "s")
    assert store.manifest["units"]["energy"] == "eV" and store.manifest["units"]["length"] == "angstrom"
    conformer = store.conformer(0)
    probe = Atoms("Cu3", positions=conformer["pos"].astype(np.float64), calculator=EMT())
    assert conformer["energy"] == pytest.approx(probe.get_potential_energy(), abs=1e-5)
    step, gradient = 1e-4, np.zeros((3, 3))
    for atom in range(3):
        for axis in range(3):
            energies = []
            for sign in (1, -1):
                shifted = probe.copy()
                shifted.calc = EMT()
                shifted.positions[atom, axis] += sign * step
                energies.append(shifted.get_potential_energy())
            gradient[atom, axis] = (energies[0] - energies[1]) / (2 * step)
    np.testing.assert_allclose(conformer["forces"], -gradient, atol=1e-4)


def test_spin_is_the_multiplicity_as_in_fairchem(tmp_path):
    """OH has 9 electrons: a doublet is spin=2 (2S+1), so spin=1 (what 2S = 1 would be read as) is refused."""
    path = write_rows(tmp_path / "oh.aselmdb", [(HYDROXYL, -1.0, forces_of(HYDROXYL), {"charge": 0, "spin": 1})])
    with pytest.raises(TnqError, match=r"oh.aselmdb: row 1: 9 electrons \(charge 0\) cannot have multiplicity 1"):
        import_asedb([path], tmp_path / "s")
    assert not (tmp_path / "s" / "HEAD").exists()


@pytest.mark.parametrize("data, message", [
    ({"spin": 1}, r"rows.aselmdb: row 2 has no 'charge' in its data or key_value_pairs; add it or pass "
                  r"`default_charge` \(or name its key with `charge_key`\)"),
    ({"charge": 0}, r"row 2 has no 'spin' .*`default_multiplicity` \(or name its key with `spin_key`\)"),
    ({"charge": 0.5, "spin": 1}, r"row 2: 'charge'=0.5 is not an integer"),
    ({"charge": 1, "spin": 1}, r"row 2: 9 electrons \(charge 1\) cannot have multiplicity 1"),
])
def test_bad_labels_name_the_row_and_the_parameter(tmp_path, data, message):
    path = write_rows(tmp_path / "rows.aselmdb", [(WATER, -1.0, forces_of(WATER), {"charge": 0, "spin": 1}),
                                                  (WATER, -1.0, forces_of(WATER), data)])
    with pytest.raises(TnqError, match=message):
        import_asedb([path], tmp_path / "s")


def test_whole_floats_are_integers(tmp_path):
    path = write_rows(tmp_path / "f.aselmdb", [(WATER, -1.0, forces_of(WATER), {"charge": 1.0, "spin": 2.0})])
    import_asedb([path], tmp_path / "s")
    store = open_store(tmp_path / "s")
    assert (int(store.column("total_charge")[0]), int(store.column("multiplicity")[0])) == (1, 2)


def test_defaults_are_used_only_when_asked_for(tmp_path):
    path = write_rows(tmp_path / "bare.aselmdb", [(WATER, -1.0, forces_of(WATER), {"charge": 0, "spin": 1}),
                                                  (HYDROXYL, -1.5, forces_of(HYDROXYL), {})])
    import_asedb([path], tmp_path / "s", default_charge=-1, default_multiplicity=1)
    store = open_store(tmp_path / "s")
    assert store.column("total_charge").tolist() == [0, -1] and store.column("multiplicity").tolist() == [1, 1]


def test_missing_labels_from_the_command_line_are_one_line_with_flags(tmp_path, capsys):
    path = write_rows(tmp_path / "bare.aselmdb", [(WATER, -1.0, forces_of(WATER), {"charge": 0})])
    code = run_app(data_cli.app, ["import", "asedb", str(path), "--out", str(tmp_path / "s")], prog_name="tnq-data")
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "bare.aselmdb: row 1 has no 'spin'" in err and "--default-multiplicity" in err and "--spin-key" in err
    assert not (tmp_path / "s" / "HEAD").exists()
    code = run_app(data_cli.app, ["-q", "import", "asedb", str(path), "-o", str(tmp_path / "s"), "--default-multiplicity",
                                  "1", "--charges-key", "nothing=x"], prog_name="tnq-data")
    assert code == 1 and "drop 'nothing=x' from --charges-key" in capsys.readouterr().err
    code = run_app(data_cli.app, ["-q", "import", "asedb", str(path), "-o", str(tmp_path / "s"), "--default-multiplicity",
                                  "1"], prog_name="tnq-data")
    assert code == 0 and "kept" in capsys.readouterr().out
    assert open_store(tmp_path / "s").column("multiplicity").tolist() == [1]


def test_charges_keys_become_charges_columns(tmp_path, suffix):
    lowdin, mulliken = np.array([-0.6, 0.3, 0.3]), np.array([-0.8, 0.4, 0.4])
    path = write_rows(tmp_path / f"q{suffix}", [
        (WATER, -1.0, forces_of(WATER), {"charge": 0, "spin": 1, "lowdin_charges": lowdin, "mulliken_charges": mulliken}),
    ])
    import_asedb([path], tmp_path / "s", charges_key=["lowdin_charges=lowdin", "mulliken_charges=mulliken"])
    store = open_store(tmp_path / "s")
    np.testing.assert_allclose(store.conformer(0)["charges/lowdin"], lowdin, atol=1e-7)
    np.testing.assert_allclose(store.conformer(0)["charges/mulliken"], mulliken, atol=1e-7)
    assert store.column_info("charges/lowdin")["unit"] == "e"


@pytest.mark.parametrize("charges_keys, data, message", [
    (["lowdin"], {}, r"`charges_key` 'lowdin' is not KEY=SCHEME"),
    (["a=x", "b=x"], {}, r"names a scheme twice"),
    (["q=bad name"], {}, r"invalid column name 'charges/bad name'"),
    (["q=q"], {"q": np.zeros(2)}, r"row 1: 'q' has shape \(2,\), not \(3\)"),
    (["q=q"], {}, r"row 1 has no 'q' .*drop 'q=q' from `charges_key`"),
])
def test_bad_charges_keys(tmp_path, charges_keys, data, message):
    path = write_rows(tmp_path / "q.aselmdb", [(WATER, -1.0, forces_of(WATER), {"charge": 0, "spin": 1, **data})])
    with pytest.raises(TnqError, match=message):
        import_asedb([path], tmp_path / "s", charges_key=charges_keys)


def test_molecule_key_groups_rows_across_files_and_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(asedb_module, "BLOCK_ROWS", 2)
    a = write_rows(tmp_path / "a.aselmdb", [(WATER, -1.0, forces_of(WATER), {"charge": 0, "spin": 1, "mol": "w"}),
                                            (HYDROXYL, -2.0, forces_of(HYDROXYL), {"charge": 0, "spin": 2, "mol": "oh"}),
                                            (WATER, -3.0, forces_of(WATER), {"charge": 0, "spin": 3, "mol": "w"})])
    b = write_rows(tmp_path / "b.db", [(HYDROXYL, -4.0, forces_of(HYDROXYL), {"charge": -1, "spin": 1, "mol": "oh"}),
                                       (WATER, -5.0, forces_of(WATER), {"charge": 0, "spin": 1, "mol": "w"})])
    import_asedb([a, b], tmp_path / "s", molecule_key="mol")
    store = open_store(tmp_path / "s")
    assert store.n_molecules == 2
    assert [store.molecule(i)["source_id"] for i in range(2)] == ["w", "oh"]
    assert store.molecule(0)["conformers"] == (0, 3) and store.molecule(0)["subset"] == "a.aselmdb"
    assert store.column("energy").tolist() == [-1.0, -3.0, -5.0, -2.0, -4.0]
    assert store.column("multiplicity").tolist() == [1, 3, 1, 2, 1]


def test_molecule_key_refusals(tmp_path):
    path = write_rows(tmp_path / "m.aselmdb", [(WATER, -1.0, forces_of(WATER), {"charge": 0, "spin": 1, "mol": "x"}),
                                               (HYDROXYL, -2.0, forces_of(HYDROXYL), {"charge": 0, "spin": 2, "mol": "x"})])
    with pytest.raises(TnqError, match=r"m.aselmdb: row 2: its atoms differ from those of .*m.aselmdb: row 1"):
        import_asedb([path], tmp_path / "s", molecule_key="mol")
    with pytest.raises(TnqError, match=r"row 1 has no 'name' .*drop `molecule_key`"):
        import_asedb([path], tmp_path / "s", molecule_key="name")


def test_rows_must_all_have_forces_or_none_and_must_not_be_periodic(tmp_path):
    mixed = write_rows(tmp_path / "mixed.aselmdb", [(WATER, -1.0, forces_of(WATER), {"charge": 0, "spin": 1}),
                                                    (WATER, None, None, {"charge": 0, "spin": 1})])
    with pytest.raises(TnqError, match=r"row 2: forces \('forces'\) are present in some rows and absent"):
        import_asedb([mixed], tmp_path / "s", energy_key="charge")
    without = write_rows(tmp_path / "noforce.aselmdb", [(WATER, None, None, {"charge": 0, "spin": 1, "E": -1.0})])
    import_asedb([without], tmp_path / "s", energy_key="E")
    assert "forces" not in open_store(tmp_path / "s").columns
    crystal = WATER.copy()
    crystal.cell, crystal.pbc = np.eye(3) * 5.0, True
    periodic = write_rows(tmp_path / "pbc.aselmdb", [(crystal, -1.0, forces_of(WATER), {"charge": 0, "spin": 1})])
    with pytest.raises(TnqError, match=r"pbc.aselmdb: row 1 is periodic"):
        import_asedb([periodic], tmp_path / "p")


def test_bad_paths_fail_in_one_line_and_write_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.aselmdb").write_bytes(b"\0not an lmdb file" * 100)
    (tmp_path / "broken.db").write_text("not sqlite either " * 100)
    (tmp_path / "empty").mkdir()
    for path, message in [(tmp_path / "missing.aselmdb", r"missing.aselmdb: no such file or folder"),
                          (tmp_path / "notes.txt", r"notes.txt: not an ASE database by its name"),
                          (tmp_path / "broken.aselmdb", r"broken.aselmdb: cannot open as an LMDB database"),
                          (tmp_path / "broken.db", r"broken.db: not an ase SQLite database"),
                          (tmp_path / "empty", r"empty: no ASE database .* below this folder")]:
        with pytest.raises(TnqError, match=message):
            import_asedb([path], tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_folders_and_archives_of_databases(tmp_path):
    folder = tmp_path / "omol"
    folder.mkdir()
    write_rows(folder / "data0001.aselmdb", [(HYDROXYL, -2.0, forces_of(HYDROXYL), {"charge": -1, "spin": 1})])
    write_rows(folder / "data0000.aselmdb", [(WATER, -1.0, forces_of(WATER), {"charge": 0, "spin": 1})])
    archive = tmp_path / "omol.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "data0000.aselmdb", "train/data0000.aselmdb")
        tar.add(folder / "data0001.aselmdb", "train/data0001.aselmdb")
    from_folder = import_asedb([folder], tmp_path / "a")
    from_archive = import_asedb([archive], tmp_path / "b")
    assert from_folder == from_archive
    store = open_store(tmp_path / "b")
    assert store.column("energy").tolist() == [-1.0, -2.0]
    assert store.manifest["provenance"]["inputs"][0]["name"] == "omol.tar.gz"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tnq-asedb-")]
