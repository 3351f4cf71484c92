"""import_asedb builds a block's columns from the decoded rows without per-row arrays: values stored in any
form (ase-JSON float64 or float32 arrays, plain lists) give the same columns, checked against numpy on the
values written; the inputs' sha256, read in a background thread, is the file's (hashlib), and a changed input is
still refused before anything is committed."""

import hashlib

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from tnq_core.errors import TnqError
from tnq_data.sources.asedb import import_asedb
from tnq_data.store import open_store


def write_lmdb(path, rows):
    """(atoms, forces, lowdin charges as given to ase-db-backends) rows, neutral singlets."""
    from ase_db_backends.aselmdb import LMDBDatabase

    with LMDBDatabase(path) as db:
        for i, (atoms, forces, lowdin) in enumerate(rows):
            atoms = atoms.copy()
            atoms.calc = SinglePointCalculator(atoms, energy=-10.0 * i, forces=forces)
            db.write(atoms, data={"charge": 0, "spin": 1, "lowdin_charges": lowdin})
    return path


def water(rng):
    return Atoms("OH2", positions=rng.normal(size=(3, 3)))


def test_columns_match_the_values_written_in_every_stored_form(tmp_path):
    rng = np.random.default_rng(3)
    molecules = [water(rng) for _ in range(4)]
    forces = [rng.normal(size=(3, 3)) for _ in range(4)]
    lowdin = [rng.normal(size=3), rng.normal(size=3).astype(np.float32), [0.25, -0.5, 0.25], np.array([1, 0, -1])]
    path = write_lmdb(tmp_path / "forms.aselmdb", zip(molecules, forces, lowdin))
    import_asedb([path], tmp_path / "s", charges_key=["lowdin_charges=lowdin"])
    store = open_store(tmp_path / "s")
    for i in range(4):
        conformer = store.conformer(i)
        assert np.array_equal(conformer["z"], molecules[i].numbers)
        assert np.array_equal(conformer["pos"], molecules[i].positions.astype(np.float32))
        assert np.array_equal(conformer["forces"], forces[i].astype(np.float32))
        assert np.array_equal(conformer["charges/lowdin"], np.asarray(lowdin[i], dtype=np.float64).astype(np.float32))


def test_provenance_has_the_sha256_of_each_input(tmp_path):
    rng = np.random.default_rng(5)
    paths = [write_lmdb(tmp_path / f"{name}.aselmdb", [(water(rng), rng.normal(size=(3, 3)), rng.normal(size=3))])
             for name in ("a", "b")]
    import_asedb(paths, tmp_path / "s")
    inputs = open_store(tmp_path / "s").manifest["provenance"]["inputs"]
    assert [entry["sha256"] for entry in inputs] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert [entry["name"] for entry in inputs] == ["a.aselmdb", "b.aselmdb"]


def test_an_input_changed_since_its_download_is_refused_before_anything_is_committed(tmp_path):
    from tnq_data.sources.checksums import write_record

    rng = np.random.default_rng(6)
    path = write_lmdb(tmp_path / "c.aselmdb", [(water(rng), rng.normal(size=(3, 3)), rng.normal(size=3))])
    write_record(path, hashlib.sha256(b"the file as it was downloaded").hexdigest())
    with pytest.raises(TnqError, match=r"c.aselmdb: its sha256 .* changed since"):
        import_asedb([path], tmp_path / "s")
    assert not (tmp_path / "s" / "HEAD").exists()
