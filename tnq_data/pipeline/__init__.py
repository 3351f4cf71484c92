"""Declarative pipelines: from download to trained model, with stage fingerprints and reproducible versions."""

from tnq_data.pipeline.planning import PlannedStage, plan
from tnq_data.pipeline.runner import run_pipeline, workdir_of
from tnq_data.pipeline.schema import Pipeline, load_pipeline

__all__ = ["Pipeline", "PlannedStage", "load_pipeline", "plan", "run_pipeline", "workdir_of"]
