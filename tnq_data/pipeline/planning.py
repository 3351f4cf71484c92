"""Which stages run and why: each stage's fingerprint compared with the one recorded for its outputs.

A stage runs when it is forced, was never run, when its parameters, an input's content or version id, the
tnq code revision or a tool version changed, or when its outputs are gone. Its inputs are the outputs of
earlier stages as they are now, so a stage after one that runs is decided once that one has finished
("check" in a plan: it runs only if those outputs change).
"""

from dataclasses import dataclass
from pathlib import Path

from tnq_core.errors import TnqError
from tnq_data.pipeline.fingerprint import FileDigests, changes, fingerprint, fingerprint_key, output_digests
from tnq_data.pipeline.schema import Pipeline
from tnq_data.pipeline.state import State
from tnq_data.store.manifest import read_manifest


@dataclass(frozen=True)
class PlannedStage:
    """One row of a plan: the stage, its fingerprint and key (None while an input is not known), what
    happens to it ("run", "skip", or "check": runs if the outputs it reads change) and why."""

    stage: object
    fingerprint: dict
    key: str | None
    action: str
    reasons: tuple[str, ...]

    @property
    def run(self) -> bool:
        return self.action == "run"

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def outputs_present(outputs: dict) -> bool:
    """Whether a recorded stage's outputs still exist as recorded."""
    try:
        if "version" in outputs:
            read_manifest(Path(outputs["store"]), outputs["version"])
        files = list(outputs.get("files", {}).values()) + [outputs[k] for k in ("file", "checkpoint") if k in outputs]
        return all(Path(f).exists() for f in files)
    except TnqError:
        return False


def input_digest(reference: str, outputs: dict[str, dict], digest_file: FileDigests) -> str:
    """The digest of what `reference` (`stage` or `stage.file`) names in the stages' `outputs`."""
    name, _, member = reference.partition(".")
    return output_digests(outputs[name], digest_file)[member]


def assess(stage, current: dict, recorded: dict | None, forced: bool) -> PlannedStage:
    """Whether `stage`, whose fingerprint is now `current`, runs given what was `recorded` for it."""
    unknown = [reference for reference, digest in current["inputs"].items() if digest is None]
    key = None if unknown else fingerprint_key(current)
    if forced:
        reasons = ["forced"]
    elif recorded is None:
        reasons = ["never run"]
    elif "fingerprint" not in recorded:
        reasons = ["recorded by an older tnq without a fingerprint"]
    else:
        reasons = changes(recorded["fingerprint"], current)
        if not reasons and unknown:
            return PlannedStage(stage, current, key, "check", (f"after {', '.join(unknown)}: runs if what it reads changes",))
        if not reasons and not outputs_present(recorded["outputs"]):
            reasons = ["outputs missing"]
        if not reasons:
            return PlannedStage(stage, current, key, "skip", ("up to date",))
    return PlannedStage(stage, current, key, "run", tuple(reasons))


def check_force(pipeline: Pipeline, force: tuple[str, ...]) -> None:
    """Refuse a `force` that names no stage of `pipeline`."""
    unknown = set(force) - {s.name for s in pipeline.stages}
    if unknown:
        raise TnqError(f"`force` {sorted(unknown)[0]}: no such stage in {pipeline.name} "
                       f"(stages: {', '.join(s.name for s in pipeline.stages)})")


def plan(pipeline: Pipeline, workdir: Path, force: tuple[str, ...] = ()) -> list[PlannedStage]:
    """Which stages run and why, from the recorded state (nothing is run or written)."""
    check_force(pipeline, force)
    state = State.read(workdir)
    digest_file, rows, changing = FileDigests(state.digests), [], set()
    outputs = {name: entry["outputs"] for name, entry in state.stages.items()}
    for stage in pipeline.stages:
        inputs = {ref: None if ref.split(".")[0] in changing else input_digest(ref, outputs, digest_file)
                  for ref in stage.references()}
        row = assess(stage, fingerprint(stage, inputs), state.stages.get(stage.name), stage.name in force)
        if row.action != "skip":
            changing.add(stage.name)
        rows.append(row)
    return rows
