"""Evidence for the paper's claim on real GFN2-xTB data: the same geometries in four charge/spin states are
learnable with the state as input, and not without it (energy errors several times lower)."""

import pytest

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
    """Energy MAE (meV) on `split` of a run trained with `state` for `epochs` (LEARN otherwise)."""
    config_file = tmp_path / "learn.yaml"
    config_file.write_text(LEARN)
    out = tmp_path / ("-".join(state).replace("/", "_") or "plain")
    train(resolve_config(config_file, {"store": store, "out": out, "state": state, "max_epochs": epochs}), quiet=True)
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
