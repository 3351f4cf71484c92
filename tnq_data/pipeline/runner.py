"""Run pipelines: each stage in order, decided when its turn comes (planning.py), its outputs published whole,
the state saved after each stage so an interrupted run resumes at the stage it stopped in."""

import time
from pathlib import Path

from tnq_core.errors import TnqError
from tnq_core.progress import SILENT, Reporter
from tnq_data.pipeline.context import Context
from tnq_data.pipeline.executors import EXECUTORS
from tnq_data.pipeline.fingerprint import FileDigests, fingerprint, output_digests
from tnq_data.pipeline.outputs import publish, relocate
from tnq_data.pipeline.planning import assess, check_force, input_digest, outputs_present
from tnq_data.pipeline.plugins import stage_plugin
from tnq_data.pipeline.schema import Pipeline
from tnq_data.pipeline.state import State


def workdir_of(pipeline: Pipeline, workdir: Path | None) -> Path:
    """The work directory: the option, else the file's `workdir`, else the pipeline's name."""
    return Path(workdir or pipeline.workdir or pipeline.name)


def _publish(ctx: Context, outputs: dict, recorded: dict | None, digest_file: FileDigests) -> tuple[dict, bool]:
    """Move staged outputs to their final place; returns them and whether they changed. Unchanged outputs
    (same version id or file contents) leave the previous ones in place, with what later stages added."""
    staged, final = ctx.staged
    moved = relocate(outputs, staged, final)
    same = (recorded is not None and recorded["outputs"] == moved and outputs_present(recorded["outputs"])
            and output_digests(outputs, digest_file) == output_digests(recorded["outputs"], digest_file))
    publish(staged, final, ctx.stage, replace=not same)
    return moved, not same


def _describe(outputs: dict, changed: bool) -> str:
    produced = f"version {outputs['version']}" if "version" in outputs else ", ".join(
        f"{k} {v}" for k, v in outputs.items() if k in ("file", "run")) or "files written"
    return produced if changed else f"{produced} (unchanged: the previous outputs are kept)"


def run_pipeline(pipeline: Pipeline, workdir: Path, *, workers: int | None = None, force: tuple[str, ...] = (),
                 reporter: Reporter = SILENT) -> dict[str, dict]:
    """Run every stage whose fingerprint changed (or that is forced, or whose outputs are gone), in order;
    return the state of each stage (name -> key, fingerprint, outputs, seconds)."""
    check_force(pipeline, force)
    workdir.mkdir(parents=True, exist_ok=True)
    state = State.read(workdir)
    interrupted, digest_file = state.running, FileDigests(state.digests)
    ctx = Context(workdir, workers or pipeline.workers, reporter, {n: e["outputs"] for n, e in state.stages.items()})
    total = len(pipeline.stages)
    for number, stage in enumerate(pipeline.stages, 1):
        inputs = {ref: input_digest(ref, ctx.outputs, digest_file) for ref in stage.references()}
        row = assess(stage, fingerprint(stage, inputs), state.stages.get(stage.name), stage.name in force)
        prefix = f"[{number}/{total}] {stage.name}"
        if not row.run:
            reporter.note(f"{prefix}: skipped, up to date (key {row.key})")
            continue
        reporter.note(f"{prefix}: running {stage.kind} ({row.reason})")
        running = {"stage": stage.name, "fingerprint": row.fingerprint}
        ctx.stage, ctx.resuming, ctx.staged = stage.name, stage.resumable and interrupted == running, None
        state.running = running
        state.write(workdir, pipeline.name)
        started = time.perf_counter()
        executor = EXECUTORS.get(stage.kind) or stage_plugin(stage.kind).run
        try:
            outputs, changed = executor(stage, ctx), True
            if ctx.staged:
                outputs, changed = _publish(ctx, outputs, state.stages.get(stage.name), digest_file)
        except TnqError as err:  # parameters named in the message are this stage's keys, not flags
            raise TnqError(f"stage {stage.name}: {err}", exit_code=err.exit_code, keys=True) from err
        seconds = round(time.perf_counter() - started, 1)
        ctx.outputs[stage.name] = outputs
        state.stages[stage.name] = {"key": row.key, "fingerprint": row.fingerprint, "outputs": outputs, "seconds": seconds}
        state.running, state.digests = None, digest_file.used
        state.write(workdir, pipeline.name)
        reporter.note(f"{prefix}: done in {seconds} s: {_describe(outputs, changed)}")
    return {stage.name: state.stages[stage.name] for stage in pipeline.stages}
