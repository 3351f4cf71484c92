"""`tnq-data run PIPELINE.yaml`: plan (which stages run and why), then run them."""

from pathlib import Path

import typer

from tnq_core.cli import output_console, print_json, whole_table
from tnq_data.cli.app import app, reporter
from tnq_data.pipeline import load_pipeline, plan, run_pipeline, workdir_of


@app.command("run")
def run(pipeline_file: Path = typer.Argument(..., help="A pipeline file, e.g. pipelines/demo.yaml."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan only."),
        force: list[str] = typer.Option([], "--force", help="Re-run this stage even if up to date (repeatable)."),
        workers: int = typer.Option(None, "--workers", min=1, help="Parallel workers (default: the file's)."),
        workdir: Path = typer.Option(None, "--workdir", help="Output folder (default: the file's workdir, else its name)."),
        as_json: bool = typer.Option(False, "--json", help="Print the final state (with --dry-run: the plan) as JSON.")) -> None:
    """Run a pipeline: print the plan, run what changed, end with the version ids produced."""
    pipeline = load_pipeline(pipeline_file)
    folder = workdir_of(pipeline, workdir)
    rows = plan(pipeline, folder, tuple(force))
    table = whole_table("stage", "kind", "key", "action", "why", title=f"{pipeline.name} in {folder}")
    for row in rows:
        table.add_row(row.stage.name, row.stage.kind, row.key or "-", row.action, row.reason)
    if dry_run and as_json:
        print_json({"pipeline": pipeline.name, "workdir": str(folder), "plan": [
            {"stage": row.stage.name, "kind": row.stage.kind, "key": row.key, "action": row.action,
             "reasons": list(row.reasons)} for row in rows]})
        return
    output_console(stderr=as_json).print(table)
    if dry_run:
        return
    final = run_pipeline(pipeline, folder, workers=workers, force=tuple(force),
                         reporter=reporter(keys=True, stdout=not as_json))
    if as_json:
        print_json({"pipeline": pipeline.name, "workdir": str(folder), "stages": final})
        return
    summary = whole_table("stage", "output", "version / file")
    for name, entry in final.items():
        outputs = entry["outputs"]
        target = outputs.get("version") or outputs.get("file") or outputs.get("checkpoint") or ", ".join(outputs.get("files", {}).values())
        summary.add_row(name, outputs.get("store") or outputs.get("run") or "files", str(target))
    output_console().print(summary)
