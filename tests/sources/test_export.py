"""`tnq-data export --format extxyz`: MACE's keys read back by ase, the round trip through `import xyz` to the
same content id, the split of a real training run on the version it trained on, and every refusal as one line
that leaves existing files untouched."""

import json

import ase.io
import numpy as np
import pytest
from ase import Atoms

import tnq_data.cli as data_cli
from tnq_core.cli import run_app
from tnq_data.sources.extxyz import import_xyz
from tnq_data.store import Column, add_columns, open_store
from tnq_data.store.manifest import content_id
from tnq_model.cli import app as train_app

#: The options of `import xyz` that read MACE's keys back (docs/interop.md).
MACE_IMPORT = ["--charge-key", "total_charge", "--spin-key", "total_spin", "--energy-key", "REF_energy",
               "--forces-key", "REF_forces"]
ELEMENTS = np.array([1, 6, 7, 8])


def tnq_data(*args) -> int:
    return run_app(data_cli.app, [str(a) for a in args], prog_name="tnq-data")


def random_frames(seed: int, n_molecules: int) -> list[Atoms]:
    """Frames written by ase (an independent writer): molecules of 2-6 atoms with 1-3 conformers each, labelled
    `mol`; charge -1..1, the lowest multiplicity the electron count allows (or +2); forces with small values."""
    rng = np.random.default_rng(seed)
    frames = []
    for j in range(n_molecules):
        z = rng.choice(ELEMENTS, rng.integers(2, 7))
        for _ in range(rng.integers(1, 4)):
            atoms = Atoms(numbers=z, positions=rng.normal(0, 1.5, (len(z), 3)))
            charge = int(rng.integers(-1, 2))
            atoms.info.update(mol=f"m{j}", energy=float(rng.normal(-1000, 50)), charge=charge,
                              multiplicity=1 + (int(z.sum()) - charge) % 2 + 2 * int(rng.integers(0, 2)))
            atoms.arrays["forces"] = rng.normal(0, 1, (len(z), 3)) * 10.0 ** rng.integers(-6, 1, (len(z), 1))
            frames.append(atoms)
    return frames


@pytest.fixture
def source(tmp_path):
    """A store imported from `data.xyz` by `import xyz` (one molecule per frame)."""
    path = tmp_path / "in" / "data.xyz"
    path.parent.mkdir()
    ase.io.write(path, random_frames(0, 12), format="extxyz")
    import_xyz([path], tmp_path / "store")
    return tmp_path / "store"


def test_ase_reads_mace_keys_units_and_every_value(source, tmp_path):
    out = tmp_path / "data.xyz"
    assert tnq_data("export", source, "--format", "extxyz", "--out", out) == 0
    store, frames = open_store(source), ase.io.read(out, index=":", format="extxyz")
    assert len(frames) == store.n_conformers
    for i, atoms in enumerate(frames):
        row = store.conformer(i)
        assert atoms.calc is None and not atoms.pbc.any()  # REF_ keys stay out of ase's calculator
        assert atoms.info["REF_energy"] == row["energy"]  # eV, every bit
        assert atoms.info["total_charge"] == row["total_charge"]
        assert atoms.info["total_spin"] == row["multiplicity"]  # MACE's total_spin is 2S+1
        assert atoms.info["source_id"] == store.molecule(int(row["molecule"]))["source_id"]
        assert atoms.info["config_type"] == "data.xyz"
        assert np.array_equal(atoms.numbers, row["z"])
        assert np.array_equal(atoms.positions.astype(np.float32), row["pos"])  # Å
        assert np.array_equal(atoms.arrays["REF_forces"].astype(np.float32), row["forces"])  # eV/Å
    # an odd electron count carries an even total_spin: the multiplicity, not the unpaired electrons
    odd = [a for a in frames if (a.numbers.sum() - a.info["total_charge"]) % 2]
    assert odd and all(a.info["total_spin"] % 2 == 0 for a in odd)


def test_keys_can_be_renamed_and_energy_forces_then_reach_ases_calculator(source, tmp_path):
    out = tmp_path / "plain.xyz"
    assert tnq_data("export", source, "--format", "extxyz", "--out", out, "--energy-key", "energy", "--forces-key",
                    "forces", "--charge-key", "charge", "--spin-key", "multiplicity") == 0
    atoms, row = ase.io.read(out, index=0), open_store(source).conformer(0)
    assert atoms.get_potential_energy() == row["energy"]
    assert np.array_equal(atoms.get_forces().astype(np.float32), row["forces"])
    assert (atoms.info["charge"], atoms.info["multiplicity"]) == (row["total_charge"], row["multiplicity"])


def test_round_trip_through_import_xyz_gives_the_same_content_id(source, tmp_path):
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "data.xyz"  # import xyz names the subset after the file
    assert tnq_data("export", source, "--format", "extxyz", "--out", out) == 0
    assert tnq_data("-q", "import", "xyz", out, "--out", tmp_path / "back", *MACE_IMPORT) == 0
    assert content_id(open_store(tmp_path / "back").manifest) == content_id(open_store(source).manifest)


def test_round_trip_keeps_molecules_with_the_molecule_key_source_id(tmp_path):
    path = tmp_path / "in" / "mols.xyz"
    path.parent.mkdir()
    ase.io.write(path, random_frames(1, 15), format="extxyz")
    import_xyz([path], tmp_path / "store", molecule_key="mol")
    store = open_store(tmp_path / "store")
    assert store.n_molecules < store.n_conformers
    (tmp_path / "out").mkdir()
    assert tnq_data("export", tmp_path / "store", "--format", "extxyz", "--out", tmp_path / "out" / "mols.xyz") == 0
    assert tnq_data("-q", "import", "xyz", tmp_path / "out" / "mols.xyz", "--out", tmp_path / "back", *MACE_IMPORT,
                    "--molecule-key", "source_id") == 0
    assert content_id(open_store(tmp_path / "back").manifest) == content_id(store.manifest)


TINY = "model: {hidden_channels: 8, num_layers: 1, num_rbf: 8, cutoff: 3.0}\noptim: {warmup_steps: 3}\n"


@pytest.fixture
def run(source, tmp_path):
    """A 1-epoch tnq-train run on `source`, after which the store gets a new HEAD (a charges column)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY + "split: {train: 0.5, val: 0.25, test: 0.25, seed: 0}\n")
    assert run_app(train_app, ["--store", str(source), "--config", str(config), "--out", str(tmp_path / "run"),
                               "--max-epochs", "1", "-q"], prog_name="tnq-train") == 0
    store = open_store(source)
    add_columns(source, {"charges/x": Column("atom", np.zeros(store.n_atoms, np.float32))})
    return tmp_path / "run"


def test_split_of_a_run_is_its_molecules_on_the_version_it_trained_on(source, run, tmp_path, capsys):
    trained = json.loads((run / "data.json").read_text())["version"]
    assert open_store(source).version != trained
    with np.load(run / "splits.npz") as saved:
        test = saved["test"]
    out = tmp_path / "test.xyz"
    capsys.readouterr()
    assert tnq_data("export", source, "--format", "extxyz", "--out", out, "--split", "test", "--run", run,
                    "--json") == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["store_version"] == trained and f"the one {run} trained on" in captured.err
    store = open_store(source, version=trained)
    expected = [store.molecule(int(j))["source_id"] for j in test
                for _ in range(*store.molecule(int(j))["conformers"])]
    frames = ase.io.read(out, index=":")
    assert [a.info["source_id"] for a in frames] == expected and summary["conformers"] == len(expected)
    assert not any("x_charges" in a.arrays for a in frames)  # the column added after training is not there


def test_charges_columns_become_per_atom_scheme_charges(source, tmp_path):
    store = open_store(source)
    charges = np.random.default_rng(3).normal(0, 0.4, store.n_atoms).astype(np.float32)
    add_columns(source, {"charges/am1bcc": Column("atom", charges)})
    assert tnq_data("export", source, "--format", "extxyz", "--out", tmp_path / "q.xyz") == 0
    frames = ase.io.read(tmp_path / "q.xyz", index=":")
    assert np.array_equal(np.concatenate([a.arrays["am1bcc_charges"] for a in frames]).astype(np.float32), charges)


def one_line_error(capsys, *args) -> str:
    capsys.readouterr()
    assert tnq_data(*args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:"), err
    return err


def test_refusals_are_one_line_naming_the_flag(source, run, tmp_path, capsys):
    out = tmp_path / "o.xyz"
    base = ["export", source, "--out", out]
    assert "--format 'cif' is not one of" in one_line_error(capsys, *base, "--format", "cif")
    assert "go together" in one_line_error(capsys, *base, "--format", "extxyz", "--split", "test")
    assert "not one of train, val, test" in one_line_error(capsys, *base, "--format", "extxyz", "--split", "all",
                                                           "--run", run)
    assert "no such run directory" in one_line_error(capsys, *base, "--format", "extxyz", "--split", "test", "--run",
                                                     tmp_path / "nope")
    assert "for extxyz only" in one_line_error(capsys, *base, "--format", "asedb", "--energy-key", "e")
    assert "--spin-key 'total spin'" in one_line_error(capsys, *base, "--format", "extxyz", "--spin-key", "total spin")
    assert "share one name" in one_line_error(capsys, *base, "--format", "extxyz", "--charge-key", "total_spin")
    assert "suffix .aselmdb" in one_line_error(capsys, *base, "--format", "asedb")
    assert "does not exist" in one_line_error(capsys, "export", source, "--format", "extxyz", "--out",
                                              tmp_path / "no" / "o.xyz")
    other_file = tmp_path / "other.xyz"
    ase.io.write(other_file, random_frames(5, 4), format="extxyz")
    import_xyz([other_file], tmp_path / "other")
    message = one_line_error(capsys, "export", tmp_path / "other", "--format", "extxyz", "--out", out, "--split",
                             "val", "--run", run)
    assert "was trained on store version" in message and "does not hold" in message
    np.savez(run / "splits.npz", train=np.arange(3), test=np.arange(3))
    assert "no split 'val'" in one_line_error(capsys, *base, "--format", "extxyz", "--split", "val", "--run", run)
    np.savez(run / "splits.npz", train=np.arange(3), val=np.arange(0), test=np.arange(3))
    assert "nothing to export" in one_line_error(capsys, *base, "--format", "extxyz", "--split", "val", "--run", run)
    assert not out.exists() and not list(tmp_path.glob(".tmp-export-*"))


def test_an_existing_output_is_kept_unless_forced_and_a_failed_export_leaves_it_whole(source, tmp_path, capsys):
    out = tmp_path / "o.xyz"
    out.write_text("precious\n")
    assert "exists; pass --force" in one_line_error(capsys, "export", source, "--format", "extxyz", "--out", out)
    assert out.read_text() == "precious\n"
    # a damaged array stops the export once its temporary file is open: the old file stays, no temporary is left
    damaged = open_store(source).manifest["arrays"]["pos"]["shards"][0]["path"]
    chunk = next(p for p in (source / damaged).rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"\0" * chunk.stat().st_size)
    assert "pos" in one_line_error(capsys, "export", source, "--format", "extxyz", "--out", out, "--force")
    assert out.read_text() == "precious\n" and not list(tmp_path.glob(".tmp-export-*"))


def test_force_replaces_the_output_once_complete(source, tmp_path):
    out = tmp_path / "o.xyz"
    out.write_text("old\n")
    assert tnq_data("export", source, "--format", "extxyz", "--out", out, "--force") == 0
    assert len(ase.io.read(out, index=":")) == open_store(source).n_conformers
