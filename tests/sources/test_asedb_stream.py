"""import_asedb streams blocks of rows into the writer, and gives the same version id with 1 and 2 dask
workers (real LocalCluster processes), with and without molecule grouping."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from tnq_data.sources import asedb as asedb_module
from tnq_data.sources import asedb_block
from tnq_data.sources.asedb import import_asedb
from tnq_data.store import open_store


def many_rows(path, n_rows: int, seed: int = 0):
    """An .aselmdb of `n_rows` waters and hydroxide anions (10 electrons: singlets) in random geometries,
    with a `mol` key shared by every third row."""
    from ase_db_backends.aselmdb import LMDBDatabase

    rng = np.random.default_rng(seed)
    with LMDBDatabase(path) as db:
        for i in range(n_rows):
            atoms = Atoms("OH2" if i % 2 else "OH", positions=rng.normal(size=(3 if i % 2 else 2, 3)))
            atoms.calc = SinglePointCalculator(atoms, energy=-float(i), forces=rng.normal(size=(len(atoms), 3)))
            db.write(atoms, data={"charge": 0 if i % 2 else -1, "spin": 1, "mol": f"m{i % 2}-{i % 3}",
                                  "lowdin_charges": rng.normal(size=len(atoms))})
    return path


def test_rows_stream_into_the_writer_block_by_block(tmp_path, monkeypatch):
    """With blocks of 4 rows, each batch reaches the writer before the rows of later blocks are read."""
    monkeypatch.setattr(asedb_module, "BLOCK_ROWS", 4)
    path = many_rows(tmp_path / "many.aselmdb", 14)
    rows_read = []
    real_read_rows, real_write_store = asedb_block.read_rows, asedb_module.write_store

    def counting_read_rows(*args):
        for row in real_read_rows(*args):
            rows_read.append(row.id)
            yield row

    seen = []

    def recording_write_store(out, batches, **kwargs):
        def watched():
            for batch in batches:
                seen.append((len(batch.conformer["energy"]), len(rows_read)))
                yield batch
        return real_write_store(out, watched(), **kwargs)

    monkeypatch.setattr(asedb_block, "read_rows", counting_read_rows)
    monkeypatch.setattr(asedb_module, "write_store", recording_write_store)
    import_asedb([path], tmp_path / "s")
    assert [size for size, _ in seen] == [4, 4, 4, 2]
    assert [read for _, read in seen] == [4, 8, 12, 14]
    assert len(open_store(tmp_path / "s")) == 14


@pytest.mark.parametrize("molecule_key", [None, "mol"])
def test_one_and_two_workers_give_the_same_version(tmp_path, monkeypatch, molecule_key):
    monkeypatch.setattr(asedb_module, "BLOCK_ROWS", 5)
    path = many_rows(tmp_path / "many.aselmdb", 23)
    options = {"molecule_key": molecule_key, "charges_key": ["lowdin_charges=lowdin"]}
    one = import_asedb([path], tmp_path / "one", workers=1, **options)
    two = import_asedb([path], tmp_path / "two", workers=2, **options)
    assert one == two
    store = open_store(tmp_path / "two")
    assert len(store) == 23 and store.n_molecules == (6 if molecule_key else 23)
