"""The README's demo end to end (slow): its training learns energies and keeps a checkpoint near the best one."""

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_validation_energy_falls_and_best_checkpoint_is_near_the_lowest(tmp_path):
    done = subprocess.run(["tnq-data", "-q", "run", str(REPO / "pipelines" / "demo.yaml"), "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "train-spice"
    with open(run / "metrics.csv") as handle:
        val = [float(row["val_energy_mae_meV"]) for row in csv.DictReader(handle)]
    # val holds a neutral, an anion and a cation; each ion's state offset comes from one training molecule
    assert min(val) < 0.75 * val[0], val
    best_epoch = torch.load(run / "best.pt", weights_only=True)["extra"]["train_state"]["epoch"]
    assert val[best_epoch - 1] <= 1.25 * min(val), (best_epoch, val)
    # the sample holds >= 3 neutral, >= 3 anionic and >= 3 cationic molecules: the test report shows each state
    report = json.loads((run / "eval_test.json").read_text())
    assert {"0,1", "-1,1", "1,1"} <= set(report["by_state"]), report["by_state"].keys()
    # the physics run learns charges supervised by AM1-BCC, and reports them and its Coulomb energy
    physics = json.loads((tmp_path / "runs" / "train-spice-physics" / "eval_test.json").read_text())
    for group in (physics["overall"], *physics["by_state"].values()):
        assert group["charge_mae_e"] < 0.6 and group["dipole_mae_eA"] < 0.5, group
        assert set(group["terms_mean_eV"]) == {"coulomb"}, group
