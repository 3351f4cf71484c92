"""The `train` stage of tnq pipelines (`tnq-data run`), registered by name as a `tnq.pipeline_stages` entry point."""

import json
from pathlib import Path

from .config import TrainConfig, resolve_config

#: Distributions whose versions are part of the stage's fingerprint (its code is the tnq_model package).
TOOLS = ("torch", "numpy", "zarr")


def validate_config(config: dict) -> dict:
    """The stage's tnq-train keys, checked against TrainConfig (ValueError for a bad one)."""
    taken = sorted({"store", "out"} & set(config))
    if taken:
        raise ValueError(f"{taken[0]!r} is set by the pipeline (the input store and WORKDIR/runs/NAME)")
    TrainConfig.model_validate({**config, "store": "."})
    return config


def _last_epoch(last: Path) -> int | None:
    """The epoch an interrupted run's last.pt continues from; None when there is none it can continue."""
    from .checkpoint import read_checkpoint

    if not last.is_file():
        return None
    try:
        state = read_checkpoint(last)["extra"].get("train_state")
    except Exception:  # noqa: BLE001  a checkpoint cut short by the interrupt: the run starts afresh
        return None
    return None if state is None else state["epoch"]


def run(stage, ctx) -> dict:
    """Train on the input stage's store version into WORKDIR/runs/NAME; outputs: run, checkpoint, test figures.

    A run interrupted with the same fingerprint (store version, config, code, tools) continues from its last.pt.
    """
    from .training import train

    store = ctx.checkout(stage.input)
    epoch = _last_epoch(ctx.output_path("runs") / "last.pt") if ctx.resuming else None
    run_dir = ctx.own_dir("runs", keep=epoch is not None)
    if epoch is not None:
        ctx.reporter.note(f"resuming the interrupted training in {run_dir} after epoch {epoch} (last.pt)")
    train(resolve_config(None, {**stage.config, "store": store, "out": run_dir}), resume=epoch is not None,
          reporter=ctx.reporter)
    report = json.loads((run_dir / "eval_test.json").read_text())
    return {"run": str(run_dir), "checkpoint": str(run_dir / "best.pt"), "store_version": report["store_version"],
            "test_overall": report["overall"]}
