"""Two training processes under a real torchrun (gloo on CPU): each rank trains on its own shards."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tnq_data.store import open_store
from tnq_model.checkpoint import read_checkpoint
from tnq_model.data import StoreBatches
from tnq_model.splits import conformer_mask, load_splits

from .test_train import TINY


def test_torchrun_two_processes_split_the_shards(make_store, tmp_path):
    store_path = make_store(60)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "tnq_model.train", "--store", str(store_path), "--config", str(config), "--out", str(run),
               "--max-epochs", "2", "--batch-size", "4", "-q"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    extra = read_checkpoint(run / "last.pt")["extra"]
    store = open_store(store_path)
    train = conformer_mask(store.column("molecule"), load_splits(run / "splits.npz")["train"])
    steps = 0
    for epoch in range(2):
        per_rank = []
        for rank in range(2):
            dataset = StoreBatches(store, train, 4, seed=0, rank=rank, world_size=2)
            dataset.set_epoch(epoch)
            per_rank.append(dataset.n_batches(0))
        steps += min(per_rank)
    single = StoreBatches(store, train, 4).n_batches(0)
    assert extra["train_state"]["step"] == steps and steps < 2 * single * 0.75
    assert len(extra["train_state"]["history"]) == 2
    assert np.isfinite([row["val_loss"] for row in extra["train_state"]["history"]]).all()


MAIN_FIRST = """
import sys, time
from pathlib import Path
from tnq_model.distributed import init_distributed

env, mark, fail = init_distributed("cpu"), Path(sys.argv[1]), sys.argv[2] == "fail"
try:
    with env.main_first():
        if env.is_main:
            time.sleep(1.0)
            mark.write_text("main was here")
        else:
            print(f"rank {env.rank} found: {mark.read_text() if mark.exists() else 'nothing'}", flush=True)
        if fail:
            raise RuntimeError(f"rank {env.rank} failed")
except RuntimeError as err:
    print(err, flush=True)
    sys.exit(3)
"""


@pytest.mark.parametrize("outcome", ["pass", "fail"])
def test_main_first_runs_rank_0_before_the_others_and_never_leaves_them_waiting(tmp_path, outcome):
    """What the other ranks read from the setup cache: rank 0's block has finished when theirs starts, and when
    it fails they still start theirs (and meet the same error) instead of waiting for a barrier forever."""
    script = tmp_path / "main_first.py"
    script.write_text(MAIN_FIRST)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
               str(tmp_path / "mark"), outcome]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert "rank 1 found: main was here" in done.stdout, done.stdout + done.stderr[-3000:]
    if outcome == "pass":
        assert done.returncode == 0, done.stderr[-3000:]
    else:
        assert done.returncode != 0 and "rank 0 failed" in done.stdout and "rank 1 failed" in done.stdout
