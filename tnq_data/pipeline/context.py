"""What a stage executor is given: the work directory, the outputs of earlier stages and its output folders."""

from dataclasses import dataclass
from pathlib import Path

from tnq_core.progress import Reporter
from tnq_data.pipeline.outputs import check_ours, mark, remove, staging_dir
from tnq_data.store import set_head


@dataclass
class Context:
    """What every stage executor needs. `stage` is the running stage; `resuming` says that it was interrupted
    with the same fingerprint, so it may continue from what it left; `staged` is (staging, final) once it
    asked for a staging directory."""

    workdir: Path
    workers: int
    reporter: Reporter
    outputs: dict[str, dict]
    stage: str = ""
    resuming: bool = False
    staged: tuple[Path, Path] | None = None

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

    def output_path(self, folder: str) -> Path:
        """WORKDIR/folder/STAGE, where the running stage's outputs end up (e.g. folder "stores")."""
        return self.workdir / folder / self.stage

    def staging(self, folder: str) -> Path:
        """A directory to write the running stage's outputs into; they replace WORKDIR/folder/STAGE when the
        stage has finished (an interrupted fetch continues from its staged `.part` when `resuming`)."""
        final = self.output_path(folder)
        self.staged = staging_dir(final, self.stage, keep=self.resuming), final
        return self.staged[0]

    def own_dir(self, folder: str, keep: bool) -> Path:
        """WORKDIR/folder/STAGE for outputs written in place: emptied unless `keep`, refused when the pipeline
        did not make it."""
        final = self.output_path(folder)
        check_ours(final, self.stage)
        if not keep:
            remove(final, self.stage)
        final.mkdir(parents=True, exist_ok=True)
        mark(final)
        return final
