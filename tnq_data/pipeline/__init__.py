"""Declarative pipelines: from download to trained model, with stage keys and reproducible versions."""

from tnq_data.pipeline.runner import plan, run_pipeline, stage_key, workdir_of
from tnq_data.pipeline.schema import Pipeline, load_pipeline

__all__ = ["Pipeline", "load_pipeline", "plan", "run_pipeline", "stage_key", "workdir_of"]
