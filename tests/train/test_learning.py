"""Evidence on real GFN2-xTB data: the same geometries in four charge/spin states are learnable with the state
as input, and not without it (energy errors several times lower); with the default loss and monitor the
validation energy error falls over training and the chosen checkpoint has (close to) the lowest one."""

import csv

import pytest
import torch

from tnq_model.config import resolve_config
from tnq_model.evaluate import evaluate_run
from tnq_model.train import train

LEARN = """
batch_size: 32
model: {state_mode: spooky, hidden_channels: 32, num_layers: 1, num_rbf: 16, cutoff: 4.0}
optim: {lr: 0.005, warmup_steps: 10, ema_decay: 0.9}
loss: {energy_weight: 1.0, force_weight: 0.01}
split: {train: 0.75, val: 0.0, test: 0.25, seed: 1}
"""


def energy_mae(store, tmp_path, state: list[str], epochs: int, split: str) -> float:
    """Energy MAE (meV) on `split` of a run trained with `state` for `epochs` (LEARN otherwise).

    Without a state the references are per element only, as for a model that knows nothing of states.
    """
    config_file = tmp_path / "learn.yaml"
    config_file.write_text(LEARN)
    out = tmp_path / ("-".join(state).replace("/", "_") or "plain")
    references = "element_state" if state else "element"
    overrides = {"store": store, "out": out, "state": state, "max_epochs": epochs, "references": references}
    train(resolve_config(config_file, overrides))
    report = evaluate_run(out, store, split)
    if split == "test":
        assert set(report["by_total_charge"]) == {"-1", "0", "1"} and set(report["by_multiplicity"]) == {"1", "2", "3"}
    return report["overall"]["energy_mae_meV"]


def test_states_make_training_energy_errors_several_times_lower(xtb_store, tmp_path):
    """Fast: without the state the model cannot fit the four energies of one geometry even in-sample."""
    with_state = energy_mae(xtb_store, tmp_path, ["charge", "spin"], 4, "train")
    without = energy_mae(xtb_store, tmp_path, [], 4, "train")
    assert without > 2 * with_state, (with_state, without)


@pytest.mark.slow
def test_states_make_test_energy_errors_several_times_lower(xtb_store, tmp_path):
    """Held-out molecules: the learnt state dependence transfers (about 3x lower MAE after 12 epochs)."""
    with_state = energy_mae(xtb_store, tmp_path, ["charge", "spin"], 12, "test")
    without = energy_mae(xtb_store, tmp_path, [], 12, "test")
    assert without > 2.5 * with_state, (with_state, without)


def test_default_training_learns_energies_and_keeps_the_best_energy_checkpoint(xtb_store, tmp_path):
    """Defaults (charge+spin, channel lambda, scaled loss, energy_force monitor) on a val split of 4 molecules."""
    config_file = tmp_path / "small.yaml"
    config_file.write_text("batch_size: 16\nmodel: {hidden_channels: 16, num_layers: 1, num_rbf: 16, cutoff: 4.0}\n"
                           "optim: {lr: 0.005, warmup_steps: 10}\nsplit: {train: 0.7, val: 0.2, test: 0.1, seed: 1}\n")
    out = tmp_path / "default"
    train(resolve_config(config_file, {"store": xtb_store, "out": out, "max_epochs": 8}))
    with open(out / "metrics.csv") as handle:
        val = [float(row["val_energy_mae_meV"]) for row in csv.DictReader(handle)]
    assert val[-1] < 0.75 * val[0] and min(val) < min(val[:4]), val
    best_epoch = torch.load(out / "best.pt", weights_only=True)["extra"]["train_state"]["epoch"]
    assert val[best_epoch - 1] <= 1.25 * min(val), (best_epoch, val)
