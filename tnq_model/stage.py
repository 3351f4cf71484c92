"""The `train` stage of tnq pipelines (`tnq-data run`), registered by name as a `tnq.pipeline_stages` entry point."""

import json

from .config import TrainConfig, resolve_config


def validate_config(config: dict) -> dict:
    """The stage's tnq-train keys, checked against TrainConfig (ValueError for a bad one)."""
    taken = sorted({"store", "out"} & set(config))
    if taken:
        raise ValueError(f"{taken[0]!r} is set by the pipeline (the input store and WORKDIR/runs/NAME)")
    TrainConfig.model_validate({**config, "store": "."})
    return config


def run(stage, ctx) -> dict:
    """Train on the input stage's store version into WORKDIR/runs/NAME; outputs: run, checkpoint, test figures."""
    from .training import train

    store = ctx.checkout(stage.input)
    run_dir = ctx.fresh_dir("runs", stage.name)
    train(resolve_config(None, {**stage.config, "store": store, "out": run_dir}), reporter=ctx.reporter)
    report = json.loads((run_dir / "eval_test.json").read_text())
    return {"run": str(run_dir), "checkpoint": str(run_dir / "best.pt"), "store_version": report["store_version"],
            "test_overall": report["overall"]}
