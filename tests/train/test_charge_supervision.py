"""Charge and dipole supervision of the learned charges (issue 12, item 1, training half): a tiny real run learns
element-wise target charges only when `loss.charge_weight` > 0 while the charges keep summing to the total
charge; the model-side dipole equals an independent numpy one; bad configs and stores fail with one clear error;
eval reports charge and dipole MAE."""

import numpy as np
import pytest
import torch
from ase.data import atomic_masses

from tnq_core.errors import TnqError
from tnq_data.store import open_store, write_store
from tnq_model.checkpoint import load_potential
from tnq_model.cli import main
from tnq_model.config import resolve_config
from tnq_model.dipole import molecular_dipole
from tnq_model.evaluate import evaluate_run, predict, split_batches
from tnq_model.splits import load_splits
from tnq_model.summary import report_lines
from tnq_model.train import train

from .conftest import random_molecules

#: Element charges (e) the target is built from, before the shift that makes each conformer sum to Q.
ELEMENT_Q = {1: 0.3, 6: -0.1, 7: -0.4, 8: -0.5}
SMALL = {"batch_size": 16, "max_epochs": 12, "references": "element",
         "model": {"hidden_channels": 16, "num_layers": 1, "num_rbf": 8, "cutoff": 4.0, "physics": ["charges"]},
         "optim": {"lr": 0.01, "warmup_steps": 5, "ema_decay": 0.0},
         "split": {"train": 0.8, "val": 0.1, "test": 0.1, "seed": 0}}


def numpy_dipole(q: np.ndarray, pos: np.ndarray, z: np.ndarray) -> np.ndarray:
    """sum_i q_i (r_i - R_com) of one molecule, e·Å."""
    mass = atomic_masses[z]
    com = (mass[:, None] * pos).sum(0) / mass.sum()
    return (q[:, None] * (pos - com)).sum(0)


def charged_store(path, n_molecules: int = 40):
    """A random store with a `charges/toy` column (element charges shifted to sum to Q; NaN on the first
    conformer) and a `dipole` column of those charges (NaN on the second conformer)."""
    batch = random_molecules(3, n_molecules)
    offsets = np.concatenate([[0], np.cumsum(batch.conformer["n_atoms"])])
    z = batch.atom["z"].astype(np.int64)
    pos = batch.atom["pos"].astype(np.float64)
    q = np.array([ELEMENT_Q[int(a)] for a in z])
    dipole = np.zeros((len(offsets) - 1, 3))
    for k, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:])):
        q[lo:hi] += (batch.conformer["total_charge"][k] - q[lo:hi].sum()) / (hi - lo)
        dipole[k] = numpy_dipole(q[lo:hi], pos[lo:hi], z[lo:hi])
    q[offsets[0]:offsets[1]] = np.nan
    dipole[1] = np.nan
    batch.atom["charges/toy"] = q.astype(np.float32)
    batch.conformer["dipole"] = dipole
    write_store(path, [batch], shard_bytes=4000)
    return path


def test_model_dipole_equals_numpy_about_the_centre_of_mass():
    rng = np.random.default_rng(0)
    z = np.array([8, 1, 1, 6, 7, 1, 1])
    pos, q = rng.normal(0, 1.5, (7, 3)), rng.normal(0, 0.4, 7)
    batch = np.array([0, 0, 0, 1, 1, 1, 1])
    got = molecular_dipole(torch.tensor(q), torch.tensor(pos), torch.tensor(z), torch.tensor(batch), 2).numpy()
    want = np.stack([numpy_dipole(q[batch == m], pos[batch == m], z[batch == m]) for m in (0, 1)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def run(store, out, charge_weight: float, dipole_weight: float = 0.0):
    loss = {"energy_weight": 0.1, "force_weight": 0.01, "charge_weight": charge_weight, "dipole_weight": dipole_weight}
    config = resolve_config(None, {**SMALL, "store": store, "out": out, "charge_target": "charges/toy", "loss": loss})
    return train(config)


def test_charge_supervision_learns_the_target_charges_and_keeps_their_sum(tmp_path):
    store = charged_store(tmp_path / "store")
    free = evaluate_run(run(store, tmp_path / "free", 0.0), store, "train")
    supervised_dir = run(store, tmp_path / "supervised", 1.0, dipole_weight=0.5)
    supervised = evaluate_run(supervised_dir, store, "train")
    for report in (free, supervised):
        for group in (report["overall"], *report["by_total_charge"].values()):
            assert np.isfinite(group["charge_mae_e"]) and np.isfinite(group["dipole_mae_eA"])
    assert supervised["overall"]["charge_mae_e"] < 0.5 * free["overall"]["charge_mae_e"], (supervised, free)
    assert supervised["overall"]["dipole_mae_eA"] < free["overall"]["dipole_mae_eA"]
    overall_line = report_lines(supervised)[0]  # what `tnq-train eval` prints
    assert f"q {supervised['overall']['charge_mae_e']:.3f} e" in overall_line, overall_line
    assert f"μ {supervised['overall']['dipole_mae_eA']:.3f} e·Å" in overall_line, overall_line
    potential = load_potential(supervised_dir / "best.pt")
    config = resolve_config(None, {**SMALL, "store": store, "charge_target": "charges/toy"})
    pred = predict(potential, split_batches(open_store(store), config, "train", True,
                                            load_splits(supervised_dir / "splits.npz")), torch.device("cpu"))
    sums = np.add.reduceat(pred.charge_pred, np.concatenate([[0], np.cumsum(pred.n_atoms)[:-1]]))
    np.testing.assert_allclose(sums, pred.total_charge, atol=1e-5)


def test_charge_target_needs_learned_charges(tmp_path, capsys):
    with pytest.raises(TnqError, match="charge_target 'charges/toy' needs learned charges"):
        resolve_config(None, {"store": tmp_path, "charge_target": "charges/toy"})
    with pytest.raises(TnqError, match="dipole_weight"):
        resolve_config(None, {"store": tmp_path, "loss": {"dipole_weight": 1.0}})
    with pytest.raises(SystemExit) as exit_info:
        main(["--store", str(tmp_path), "--charge-target", "charges/toy", "--physics", "zbl"])
    assert exit_info.value.code != 0
    assert "needs learned charges" in capsys.readouterr().err


def test_missing_target_columns_are_named(make_store, tmp_path):
    store = make_store(10)
    config = resolve_config(None, {**SMALL, "store": store, "out": tmp_path / "a", "charge_target": "charges/mbis"})
    with pytest.raises(TnqError, match="no column 'charges/mbis' for `charge_target`"):
        train(config)
    config = resolve_config(None, {**SMALL, "store": store, "out": tmp_path / "b", "loss": {"dipole_weight": 1.0}})
    with pytest.raises(TnqError, match="no `dipole` column"):
        train(config)
    assert not (tmp_path / "a" / "best.pt").exists()


def test_physics_flag_sets_model_physics_over_the_config_file(tmp_path):
    store = charged_store(tmp_path / "store", 12)
    config_file = tmp_path / "c.yaml"
    config_file.write_text("model: {hidden_channels: 8, num_layers: 1, num_rbf: 8}\nsplit: {seed: 0}\n")
    out = tmp_path / "flag"
    with pytest.raises(SystemExit) as exit_info:
        main(["--store", str(store), "--config", str(config_file), "--out", str(out), "--max-epochs", "1",
              "--physics", "charges,zbl", "--charge-target", "charges/toy", "--quiet"])
    assert exit_info.value.code == 0
    saved = resolve_config(out / "config.yaml")
    assert saved.model.physics == ["charges", "zbl"] and saved.model.hidden_channels == 8
    assert saved.charge_target == "charges/toy"
