"""The setup cache: a run's splits, usable conformers, references and scales, kept per store version and read
back bitwise, keyed by everything they depend on; damaged entries are computed again, a cache that cannot be
written is skipped."""

import json
import shutil

import numpy as np
import pytest
import torch

from tnq_core.cli import run_app
from tnq_data.store import Column, add_columns, open_store, write_store
from tnq_model.cli import app
from tnq_model.config import ModelConfig, TrainConfig
from tnq_model.setup import build_potential, prepare_data

SMALL = ModelConfig(hidden_channels=8, num_layers=1, num_rbf=4)


def set_up(config: TrainConfig, splits: dict[str, np.ndarray] | None = None):
    """(setup, potential, scales) as `tnq-train` makes them (weights drawn after the same seed)."""
    setup = prepare_data(config, splits)
    torch.manual_seed(0)
    return (setup, *build_potential(config, setup))


def assert_same(first, second) -> None:
    """Splits, selections, every weight and buffer of the potential (references, scale) and the loss scales
    equal bitwise."""
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(first[0].splits[name], second[0].splits[name])
        np.testing.assert_array_equal(first[0].selected[name], second[0].selected[name])
    weights = first[1].state_dict()
    assert weights.keys() == second[1].state_dict().keys()
    for key, value in second[1].state_dict().items():
        assert torch.equal(weights[key], value), key
    assert first[2] == second[2]


def entries(directory) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.mark.parametrize("physics, forces, references", [([], True, "element_state"),
                                                          (["charges", "coulomb", "zbl"], True, "element_state"),
                                                          ([], False, "element")])
def test_a_second_run_reads_its_whole_setup_from_the_cache_bitwise(make_store, tmp_path, setup_cache, physics,
                                                                   forces, references):
    path = make_store(60, seed=3, shard_bytes=2000, forces=forces, charges="mbis")
    config = TrainConfig(store=path, out=tmp_path / "run", model=SMALL.model_copy(update={"physics": physics}),
                         charge_target="charges/mbis" if physics else None, references=references)
    first = set_up(config)
    assert first[0].fit is None and len(entries(setup_cache)) == 2  # the splits, and the selection with the fit
    assert first[2].energy != 1.0 and (first[2].forces != 1.0) == forces and (first[2].charges != 1.0) == bool(physics)
    second = set_up(config)
    assert second[0].fit is not None
    assert "groups" not in vars(second[0]) and "molecule" not in vars(second[0])  # no pass over the store
    assert_same(first, second)
    resumed = set_up(config, {name: ids.copy() for name, ids in first[0].splits.items()})  # splits.npz's
    assert resumed[0].fit is not None
    assert_same(first, resumed)
    assert_same(first, set_up(config.model_copy(update={"setup_cache": False})))
    assert len(entries(setup_cache)) == 2


def test_an_entry_is_used_only_for_the_settings_and_store_columns_it_was_made_for(make_store, molecules, tmp_path,
                                                                                setup_cache):
    path = make_store(50, seed=4, shard_bytes=2000, charges="mbis")
    config = TrainConfig(store=path, out=tmp_path / "run", model=SMALL)
    original = set_up(config)
    kept = len(entries(setup_cache))
    network = config.model_copy(update={"model": SMALL.model_copy(update={"hidden_channels": 16, "num_layers": 2,
                                                                           "state_mode": "spooky"}),
                                        "state": ["charge"], "max_epochs": 3, "batch_size": 4, "seed": 9})
    assert set_up(network)[0].fit is not None and len(entries(setup_cache)) == kept  # a sweep over the network
    changes = [({"references": "element"}, 1), ({"model": SMALL.model_copy(update={"cutoff": 4.0})}, 1),
               ({"model": SMALL.model_copy(update={"max_z": 20})}, 1),
               ({"state": ["charge", "spin", "charges/mbis"]}, 1),
               ({"split": config.split.model_copy(update={"seed": 1})}, 2),
               ({"split": config.split.model_copy(update={"train": 0.7, "test": 0.2})}, 2)]
    for update, new_entries in changes:
        changed = config.model_copy(update=update)
        setup = set_up(changed)
        assert setup[0].fit is None and len(entries(setup_cache)) == kept + new_entries, update
        assert_same(setup, set_up(changed.model_copy(update={"setup_cache": False})))
        kept += new_entries
    store = open_store(path)
    n_atoms = store.n_atoms
    add_columns(path, {"charges/other": Column("atom", np.zeros(n_atoms, np.float32))})  # a column setup never reads
    assert open_store(path).version != store.version
    assert set_up(config)[0].fit is not None and len(entries(setup_cache)) == kept
    add_columns(path, {"forces": Column("atom", 2 * store.column("forces"))})  # new forces: same splits, new scales
    changed = set_up(config)
    assert changed[0].fit is None and len(entries(setup_cache)) == kept + 1
    assert changed[2].forces == 2 * original[2].forces  # exact: a power of two
    assert_same(changed, set_up(config.model_copy(update={"setup_cache": False})))
    write_store(path, [molecules(7, 50)], shard_bytes=2000)  # new data
    assert set_up(config)[0].fit is None and len(entries(setup_cache)) == kept + 3


def kind(entry) -> str:
    with np.load(entry) as data:
        return "fit" if "conformers" in data.files else "splits"


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "another entry"])
def test_a_damaged_entry_is_computed_again_and_replaced(make_store, tmp_path, setup_cache, damage):
    config = TrainConfig(store=make_store(40, seed=5, shard_bytes=2000), out=tmp_path / "run", model=SMALL)
    first = set_up(config)
    names = entries(setup_cache)
    set_up(config.model_copy(update={"split": config.split.model_copy(update={"seed": 1})}))
    others = {kind(setup_cache / name): setup_cache / name for name in set(entries(setup_cache)) - set(names)}
    for name in names:
        entry = setup_cache / name
        if damage == "truncated":
            entry.write_bytes(entry.read_bytes()[:len(entry.read_bytes()) // 2])
        elif damage == "not a zip":
            entry.write_bytes(b"tnq")
        else:  # the other split seed's entry of the same kind (valid for this store), copied under this name
            shutil.copy(others[kind(entry)], entry)
    again = set_up(config)
    assert again[0].fit is None
    assert_same(first, again)
    assert set_up(config)[0].fit is not None  # replaced


def test_a_cache_that_cannot_be_written_is_skipped(make_store, tmp_path, monkeypatch):
    config = TrainConfig(store=make_store(30, seed=2), out=tmp_path / "run", model=SMALL)
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("TNQ_SETUP_CACHE", str(tmp_path / "file" / "cache"))
    first = set_up(config)
    second = set_up(config)
    assert first[0].fit is None and second[0].fit is None
    assert_same(first, second)


def test_tnq_train_says_when_its_setup_came_from_the_cache_and_can_leave_it_off(make_store, tmp_path, setup_cache,
                                                                                 capsys):
    store = make_store(30, seed=1)
    common = ["--store", store, "--max-epochs", "1", "--batch-size", "8"]
    assert run_app(app, [str(a) for a in [*common, "--out", tmp_path / "off", "--no-setup-cache"]]) == 0
    assert entries(setup_cache) == []
    assert run_app(app, [str(a) for a in [*common, "--out", tmp_path / "first"]]) == 0
    assert "setup cache" not in capsys.readouterr().err and len(entries(setup_cache)) == 2
    assert run_app(app, [str(a) for a in [*common, "--out", tmp_path / "second"]]) == 0
    assert f"of store version {open_store(store).version} read from the setup cache {setup_cache}" in \
        capsys.readouterr().err


def test_setup_only_fills_the_cache_for_a_later_run_and_refuses_what_it_cannot_do(make_store, tmp_path, setup_cache,
                                                                                   monkeypatch, capsys):
    store = make_store(30, seed=1)
    version = open_store(store).version
    run = ["--store", store, "--max-epochs", "1", "--batch-size", "8", "--out", tmp_path / "run"]
    assert run_app(app, [str(a) for a in [*run, "--setup-only"]]) == 0
    assert f"of store version {version}: set up in " in capsys.readouterr().err
    assert len(entries(setup_cache)) == 2 and not (tmp_path / "run").exists()
    assert run_app(app, [str(a) for a in [*run, "--setup-only"]]) == 0
    assert f"was already in the setup cache {setup_cache}" in capsys.readouterr().err
    assert run_app(app, [str(a) for a in run]) == 0
    assert f"of store version {version} read from the setup cache" in capsys.readouterr().err
    for extra in (["--no-setup-cache"], ["--resume"], ["--json"]):
        assert run_app(app, [str(a) for a in [*run, "--setup-only", *extra]]) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "--setup-only" in err and f"drop {extra[0]}" in err, err
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("TNQ_SETUP_CACHE", str(tmp_path / "file" / "cache"))
    assert run_app(app, [str(a) for a in [*run, "--setup-only"]]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot write the setup cache" in err and "TNQ_SETUP_CACHE" in err


def test_tnq_train_cache_lists_the_entries_with_their_store_and_clears_them(make_store, tmp_path, setup_cache,
                                                                            monkeypatch, capsys):
    stores = [make_store(30, seed=1, name="one"), make_store(20, seed=2, name="two")]
    for store in stores:
        set_up(TrainConfig(store=store, out=tmp_path / "run", model=SMALL))
    (setup_cache / "damaged.npz").write_bytes(b"tnq")
    (setup_cache / f".{'0' * 64}.1.partial").write_bytes(b"half")  # what a killed writer leaves
    capsys.readouterr()
    assert run_app(app, ["cache", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["directory"] == str(setup_cache) and len(listed["entries"]) == 5
    made = {(entry["kind"], entry["store"], entry["version"]) for entry in listed["entries"]}
    assert made == {(kind, str(store.resolve()), open_store(store).version) for kind in ("splits", "fit")
                    for store in stores} | {("unreadable", None, None)}
    sizes = {entry["file"]: entry["bytes"] for entry in listed["entries"]}
    assert sizes == {path.name: path.stat().st_size for path in setup_cache.glob("*.npz")}
    assert listed["bytes"] == sum(sizes.values())
    assert run_app(app, ["cache"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and lines[-1].startswith(f"5 entries, ") and str(setup_cache) in lines[-1]
    assert run_app(app, ["cache", "--clear", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"directory": str(setup_cache), "deleted": 6,
                                                   "bytes": listed["bytes"] + 4}
    assert list(setup_cache.iterdir()) == []
    assert run_app(app, ["cache", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == []
    setup = set_up(TrainConfig(store=stores[0], out=tmp_path / "run", model=SMALL))
    assert setup[0].fit is None  # computed again after the clear
    monkeypatch.setenv("TNQ_SETUP_CACHE", str(tmp_path / "none"))  # a cache never written: empty, not an error
    assert run_app(app, ["cache", "--clear", "--json"]) == 0 and run_app(app, ["cache", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"deleted": 0' in out and '"entries": []' in out and not (tmp_path / "none").exists()
