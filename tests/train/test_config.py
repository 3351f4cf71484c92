"""The training config: YAML, CLI overrides on top, validation errors as one line, saved and read back."""

import pytest

from tnq_core.errors import TnqError
from tnq_model.config import TrainConfig, resolve_config, write_config


def test_flags_override_the_file_and_the_saved_config_reads_back(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("store: a\nbatch_size: 8\nstate: [charge]\nmodel: {hidden_channels: 16}\noptim: {lr: 0.01}\n")
    config = resolve_config(path, {"batch_size": 4, "state": ["charge", "spin", "charges/am1bcc"], "max_epochs": None})
    assert config.batch_size == 4 and config.model.hidden_channels == 16 and config.optim.lr == 0.01
    assert config.state == ["charge", "spin", "charges/am1bcc"] and config.partial_charges == ["charges/am1bcc"]
    assert config.max_epochs == TrainConfig.model_fields["max_epochs"].default
    write_config(config, tmp_path / "saved.yaml")
    assert resolve_config(tmp_path / "saved.yaml") == config


@pytest.mark.parametrize("text, message", [
    ("store: a\nbatch_sise: 3\n", "batch_sise: Extra inputs"),
    ("store: a\nstate: [charge, spn]\n", "state\\[1\\]: String should match"),
    ("store: a\nsplit: {train: 0.8, val: 0.3, test: 0.1}\n", "sum to 1"),
    ("store: a\nmodel: {state_mode: other}\n", "model.state_mode"),
    ("batch_size: 3\n", "store: Field required"),
    ("- a\n- b\n", "must hold a mapping"),
])
def test_invalid_configs_fail_with_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(TnqError, match=message) as err:
        resolve_config(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
