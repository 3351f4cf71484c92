"""Plan and run pipelines: stage keys, skipping what is done, state kept in the work directory.

A stage's key hashes its kind, its parameters, the keys of the stages it reads and the tnq version. A
stage runs when its key is not the one recorded for its outputs, or when those outputs are gone; since
keys chain, a changed parameter re-runs that stage and everything after it. The number of workers is not
part of any key: results do not depend on it.
"""

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import xxhash

import tnq_data
from tnq_core.errors import TnqError
from tnq_core.progress import SILENT, Reporter
from tnq_data.pipeline.plugins import stage_plugin
from tnq_data.pipeline.schema import Pipeline
from tnq_data.store import set_head
from tnq_data.store.manifest import canonical_json, read_manifest

STATE_FILE = "pipeline-state.json"


@dataclass(frozen=True)
class PlannedStage:
    """One row of a plan: the stage, its key and whether it runs (and why)."""

    stage: object
    key: str
    run: bool
    reason: str


def _fresh_dir(path: Path) -> Path:
    """An empty directory for a stage's new outputs (its previous outputs were made by this pipeline)."""
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Context:
    """What every stage executor needs."""

    workdir: Path
    workers: int
    reporter: Reporter
    outputs: dict[str, dict]

    def resolve(self, reference: str) -> dict:
        """Outputs of the stage named by `reference` (`stage` or `stage.file`)."""
        name, _, member = reference.partition(".")
        outputs = self.outputs[name]
        return {"file": outputs["files"][member]} if member else outputs

    def checkout(self, reference: str) -> Path:
        """The store of the stage named by `reference`, with HEAD moved back to the version that stage produced."""
        source = self.resolve(reference)
        store = Path(source["store"])
        set_head(store, source["version"])
        return store

    def fresh_dir(self, folder: str, name: str) -> Path:
        """An empty WORKDIR/folder/name for a stage's new outputs (e.g. folder "runs")."""
        return _fresh_dir(self.workdir / folder / name)


def stage_key(stage, input_keys: dict[str, str]) -> str:
    """Hash of the stage's kind and parameters, its inputs' keys and the tnq version."""
    params = stage.model_dump(exclude={"name"})
    return xxhash.xxh3_128_hexdigest(canonical_json({"stage": params, "inputs": input_keys, "tnq": tnq_data.__version__}))


def workdir_of(pipeline: Pipeline, workdir: Path | None) -> Path:
    """The work directory: the option, else the file's `workdir`, else the pipeline's name."""
    return Path(workdir or pipeline.workdir or pipeline.name)


def read_state(workdir: Path) -> dict[str, dict]:
    """Recorded stages: name -> {"key", "outputs", "seconds"} (empty for a new work directory)."""
    path = workdir / STATE_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())["stages"]
    except (json.JSONDecodeError, KeyError) as err:
        raise TnqError(f"{path} is damaged ({err}); delete it to run every stage again") from err


def _write_state(workdir: Path, pipeline: Pipeline, stages: dict[str, dict]) -> None:
    tmp = workdir / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps({"pipeline": pipeline.name, "stages": stages}, indent=1, sort_keys=True))
    tmp.replace(workdir / STATE_FILE)


def _outputs_present(outputs: dict) -> bool:
    """Whether a recorded stage's outputs still exist as recorded."""
    try:
        if "version" in outputs:
            read_manifest(Path(outputs["store"]), outputs["version"])
        files = list(outputs.get("files", {}).values()) + [outputs[k] for k in ("file", "checkpoint") if k in outputs]
        return all(Path(f).exists() for f in files)
    except TnqError:
        return False


def plan(pipeline: Pipeline, workdir: Path, force: tuple[str, ...] = ()) -> list[PlannedStage]:
    """Which stages run and why, from the recorded state (nothing is run)."""
    unknown = set(force) - {s.name for s in pipeline.stages}
    if unknown:
        raise TnqError(f"`force` {sorted(unknown)[0]}: no such stage in {pipeline.name} "
                       f"(stages: {', '.join(s.name for s in pipeline.stages)})")
    state, keys, rows = read_state(workdir), {}, []
    for stage in pipeline.stages:
        keys[stage.name] = key = stage_key(stage, {name: keys[name] for name in stage.inputs()})
        recorded = state.get(stage.name)
        if stage.name in force:
            rows.append(PlannedStage(stage, key, True, "forced"))
        elif recorded is None:
            rows.append(PlannedStage(stage, key, True, "never run"))
        elif recorded["key"] != key:
            rows.append(PlannedStage(stage, key, True, "parameters or inputs changed"))
        elif not _outputs_present(recorded["outputs"]):
            rows.append(PlannedStage(stage, key, True, "outputs missing"))
        else:
            rows.append(PlannedStage(stage, key, False, "up to date"))
    return rows


def _sample(stage, ctx: Context) -> dict:
    from tnq_data.sample import make_qmspin_sample, make_spice_sample

    folder = ctx.workdir / "raw" / stage.name
    folder.mkdir(parents=True, exist_ok=True)
    spice = make_spice_sample(folder / "spice-sample.hdf5", n_conformers=stage.spice_conformers, seed=stage.seed)
    qmspin = make_qmspin_sample(folder / "qmspin-sample.tar.gz", n_carbenes=stage.qmspin_carbenes, seed=stage.seed)
    return {"files": {"spice": str(spice), "qmspin": str(qmspin)}}


def _fetch(stage, ctx: Context) -> dict:
    from tnq_data.sources.download import fetch_dataset

    path = fetch_dataset(stage.dataset, ctx.workdir / "raw", version=stage.version, url=stage.url,
                         md5=stage.md5, sha256=stage.sha256, reporter=ctx.reporter)
    return {"file": str(path)}


def _curate_spice(stage, ctx: Context) -> dict:
    from tnq_data.sources.spice import curate_spice

    store = ctx.fresh_dir("stores", stage.name)
    version = curate_spice(Path(ctx.resolve(stage.input)["file"]), store, subset=stage.subset, elements=stage.elements,
                           max_force=stage.max_force, workers=ctx.workers, reporter=ctx.reporter)
    return {"store": str(store), "version": version}


def _curate_qmspin(stage, ctx: Context) -> dict:
    from tnq_data.sources.qmspin import curate_qmspin

    store = ctx.fresh_dir("stores", stage.name)
    version = curate_qmspin(Path(ctx.resolve(stage.input)["file"]), store, reporter=ctx.reporter)
    return {"store": str(store), "version": version}


def _charges(stage, ctx: Context) -> dict:
    from tnq_data.charges import compute_charges

    store = ctx.checkout(stage.input)
    version = compute_charges(store, stage.scheme, fallback=stage.fallback, per_conformer=stage.per_conformer,
                              workers=ctx.workers, timeout=stage.timeout, reporter=ctx.reporter)
    return {"store": str(store), "version": version}


EXECUTORS: dict[str, Callable[[object, Context], dict]] = {
    "sample": _sample, "fetch": _fetch, "curate_spice": _curate_spice, "curate_qmspin": _curate_qmspin,
    "charges": _charges,
}


def run_pipeline(pipeline: Pipeline, workdir: Path, *, workers: int | None = None, force: tuple[str, ...] = (),
                 reporter: Reporter = SILENT) -> dict[str, dict]:
    """Run the stages that `plan` marks, in order; return the state (name -> key, outputs, seconds).

    The state is saved after each stage, so an interrupted run resumes at the stage it stopped in.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    rows = plan(pipeline, workdir, force)
    state = read_state(workdir)
    ctx = Context(workdir, workers or pipeline.workers, reporter, {name: entry["outputs"] for name, entry in state.items()})
    for number, row in enumerate(rows, 1):
        name = row.stage.name
        # Checked again now: an upstream stage that just ran may have replaced the folder holding them.
        if not row.run and _outputs_present(state[name]["outputs"]):
            reporter.note(f"[{number}/{len(rows)}] {name}: skipped, up to date (key {row.key[:12]})")
            continue
        reason = row.reason if row.run else "outputs replaced by an earlier stage"
        reporter.note(f"[{number}/{len(rows)}] {name}: running {row.stage.kind} ({reason})")
        started = time.perf_counter()
        executor = EXECUTORS.get(row.stage.kind) or stage_plugin(row.stage.kind).run
        try:
            outputs = executor(row.stage, ctx)
        except TnqError as err:  # parameters named in the message are this stage's keys, not flags
            raise TnqError(f"stage {name}: {err}", exit_code=err.exit_code, keys=True) from err
        seconds = round(time.perf_counter() - started, 1)
        ctx.outputs[name] = outputs
        state[name] = {"key": row.key, "outputs": outputs, "seconds": seconds}
        _write_state(workdir, pipeline, state)
        produced = f"version {outputs['version']}" if "version" in outputs else ", ".join(
            f"{k} {v}" for k, v in outputs.items() if k in ("file", "run"))
        reporter.note(f"[{number}/{len(rows)}] {name}: done in {seconds} s: {produced or 'files written'}")
    return {row.stage.name: state[row.stage.name] for row in rows}
