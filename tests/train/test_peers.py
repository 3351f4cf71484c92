"""The peer rows of bench/bench_states.py (bench/peers.py, bench/peer_torchmdnet.py, bench/peer_mace.py): their
error figures against hand-computed values, the reading of the peers' own output files as the peers write them,
and the wall-clock limit on a real process group."""

import importlib
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


# bench/ is on the tests' path (pyproject.toml)
peers, tmdnet, mace = (importlib.import_module(name) for name in ("peers", "peer_torchmdnet", "peer_mace"))


def test_state_errors_are_mean_absolute_errors_in_meV_per_state():
    true = np.array([-10.0, -10.0, -20.0, -30.0, -30.0])
    pred = np.array([-10.1, -9.7, -20.05, -30.0, -29.0])
    charge, mult = np.array([0, 0, 1, 0, -1]), np.array([1, 1, 2, 3, 2])
    force_err = np.array([[0.01, -0.02, 0.03], [-0.04, 0.0, 0.0]])
    out = peers.state_errors(true, pred, force_err, charge, mult)
    # |errors| in meV: 100, 300, 50, 0, 1000
    assert out["energy_mae_meV"] == pytest.approx(1450 / 5)
    assert out["energy_mae_meV_by_state"] == pytest.approx({"0,1": 200.0, "1,2": 50.0, "0,3": 0.0, "-1,2": 1000.0})
    assert out["force_mae_meV_per_A"] == pytest.approx(100 / 6)


def test_torchmdnet_best_checkpoint_is_the_lowest_validation_loss():
    names = ["epoch=0-val_loss=57.1662.ckpt", "epoch=3-val_loss=1.5e-01.ckpt", "epoch=5-val_loss=0.1500.ckpt",
             "epoch=4-val_loss=0.2000.ckpt", "hparams.yaml", "last.ckpt"]
    assert tmdnet.best_checkpoint(names) == "epoch=5-val_loss=0.1500.ckpt"  # a tie goes to the later epoch
    assert tmdnet.best_checkpoint(["hparams.yaml"]) is None


def test_torchmdnet_epochs_from_its_csv_logger_file(tmp_path):
    # torchmd-net 3.1's CSVLogger: epochs as floats; a training row without validation values in between
    (tmp_path / "metrics.csv").write_text(
        "epoch,lr,step,train_total_mse_loss,val_total_mse_loss\n0.0,0.005,83,54.1,57.2\n1.0,0.005,167,51.1,52.1\n"
        "2.0,0.005,200,50.0,\n")
    assert tmdnet.completed_epochs(tmp_path / "metrics.csv") == 2
    assert tmdnet.completed_epochs(tmp_path / "absent.csv") == 0
    epochs, stamp = tmdnet.progress(tmp_path.parent / "nowhere")
    assert (epochs, stamp) == (0, None)


def test_torchmdnet_splits_index_the_train_then_val_file(tmp_path):
    files = {s: tmp_path / f"{s}.h5" for s in ("train", "val", "test")}
    model = {"hidden": 8, "layers": 1, "rbf": 4, "cutoff": 4.0, "batch_size": 2, "lr": 1e-3, "warmup": 0}
    cmd = tmdnet.command(Path("python"), tmp_path, files, {"train": 5, "val": 3, "test": 2}, model)
    with np.load(tmp_path / "splits.npz") as splits:
        assert splits["idx_train"].tolist() == [0, 1, 2, 3, 4] and splits["idx_val"].tolist() == [5, 6, 7]
        assert splits["idx_test"].size == 0
    assert cmd[cmd.index("--dataset-root") + 1] == f"{files['train']};{files['val']}"
    assert cmd[cmd.index("--charge") + 1] == "true"


def test_fitted_atomref_recovers_per_element_energies(tmp_path):
    # energies that are exactly sums of per-element values: H -13.6, C -1030.0, O -2040.0 eV
    ref = {1: -13.6, 6: -1030.0, 8: -2040.0}
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "train.h5", "w") as handle:
        for n in (3, 5):
            types = rng.choice([1, 6, 8], (7, n))
            group = handle.create_group(f"natoms_{n:04d}")
            group["types"] = types
            group["energy"] = np.array([sum(ref[z] for z in row) for row in types])
    atomref = tmdnet.fitted_atomref(str(tmp_path / "train.h5")).numpy()
    assert atomref.shape == (100, 1)
    for z, value in ref.items():
        assert atomref[z, 0] == pytest.approx(value, abs=1e-2)
    assert not atomref[[0, 2, 7, 99]].any()


def test_mace_epochs_and_checkpoints_as_mace_writes_them(tmp_path):
    log = ["2026-12-01 21:06:21.751 INFO: Initial: head: Default, loss=18.29300880, MAE_E= 5421.72 meV",
           "2026-12-01 21:07:57.829 INFO: Epoch 0: head: Default, loss=8.06644058, MAE_E= 3479.95 meV",
           "2026-12-01 21:09:28.204 INFO: Epoch 1: head: Default, loss=5.96681976, MAE_E= 2724.45 meV",
           "2026-12-01 21:09:30.000 INFO: Epoch 1 something else"]
    ends = mace.epoch_ends(log)
    assert sorted(ends) == [0, 1] and ends[1] - ends[0] == pytest.approx(90.375)
    assert ends[0] == pytest.approx(datetime(2026, 12, 1, 21, 7, 57, 829000).timestamp())
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "mace_peer_run-0.log").write_text("\n".join(log) + "\n")
    assert mace.progress(tmp_path) == (2, ends[1])
    assert mace.progress(tmp_path / "nowhere") == (0, None)
    assert mace.latest_epoch(["mace_peer_run-0_epoch-3.pt", "mace_peer_run-0_epoch-12.pt", "notes.txt"]) == 12
    assert mace.latest_epoch([]) is None


def test_mace_state_embeddings_cover_the_stored_labels():
    spec = mace.EMBEDDINGS
    for q in (-100, -1, 0, 1, 100):  # MACE's categorical embedding takes the class total_charge + offset
        assert 0 <= q + spec["total_charge"]["offset"] < spec["total_charge"]["num_classes"]
    assert spec["total_spin"]["num_classes"] > 3  # multiplicities 1..3 of the bench


def test_run_for_stops_the_whole_process_group_at_the_budget(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = (f"import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; "
              f"time.sleep(60)']); open({str(pid_file)!r}, 'w').write(str(c.pid)); time.sleep(60)")
    start = time.perf_counter()
    elapsed, stopped = peers.run_for([sys.executable, "-c", script], 2.0, tmp_path / "log", {})
    assert stopped and 2.0 <= elapsed < 10 and time.perf_counter() - start < 40
    child = int(pid_file.read_text())
    time.sleep(0.5)
    assert subprocess.run(["ps", "-o", "stat=", "-p", str(child)], check=False, capture_output=True, text=True).stdout.strip() \
        in ("", "Z")  # the grandchild is gone too (or a zombie awaiting its reaper)
    elapsed, stopped = peers.run_for([sys.executable, "-c", "print('done')"], 30.0, tmp_path / "log", {})
    assert not stopped and "done" in (tmp_path / "log").read_text()


def test_missing_side_environment_gives_a_failed_row(tmp_path, monkeypatch):
    monkeypatch.setitem(peers.VENVS, "mace", tmp_path / "no-venv")
    row = peers.run_peer("mace", tmp_path / "store", tmp_path / "run", 1.0, {}, tmp_path / "work")
    assert "no side environment" in row["failed"] and str(tmp_path / "no-venv") in row["failed"]


@pytest.mark.parametrize(("flags", "message"), [
    (["--peers", "torchmdnet,schnet"], "unknown --peers ['schnet']; choose from ['mace', 'torchmdnet']"),
    (["--peers", "mace", "--only", "none"], "--peers trains on the default row's splits: add default to --only"),
])
def test_bench_states_refuses_bad_peer_flags_before_any_work(tmp_path, flags, message):
    done = subprocess.run([sys.executable, str(BENCH / "bench_states.py"), "--data", str(tmp_path / "data"), *flags],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0 and done.stderr.strip().splitlines()[-1] == message
    assert not (tmp_path / "data").exists()
