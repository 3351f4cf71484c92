"""Stage kinds implemented by other packages, found by name through the `tnq.pipeline_stages` entry points.

The pipeline knows such a kind only by its name: the data package never imports the package that implements
it. A plugin is a module (or object) with `validate_config(config: dict) -> dict`, which raises ValueError
for a bad configuration, and `run(stage, ctx) -> dict`, which returns the stage's outputs. Its optional `TOOLS`
(distribution names) and the package it belongs to are part of the stage's fingerprint (fingerprint.py).
"""

from functools import cache
from importlib.metadata import entry_points
from types import ModuleType

from tnq_core.errors import TnqError

GROUP = "tnq.pipeline_stages"


@cache
def stage_plugin(kind: str) -> ModuleType:
    """The plugin registered for the stage `kind`."""
    found = entry_points(group=GROUP, name=kind)
    if not found:
        raise TnqError(f"no installed package provides the pipeline stage kind {kind!r} (entry point group {GROUP}); "
                       "reinstall tnq (pip install -e .)")
    return next(iter(found)).load()
