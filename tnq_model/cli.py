"""The `tnq-train` command: train (the default), `eval`, `plot` and `export`; thin wrappers over library
functions."""

import os
import sys
from pathlib import Path

import typer

from tnq_core.cli import ConsoleReporter, print_json, run_app
from tnq_core.errors import TnqError
from tnq_core.progress import SILENT

from .config import resolve_config

app = typer.Typer(name="tnq-train", help="Train and evaluate charge- and spin-aware TensorNet potentials.",
                  pretty_exceptions_enable=False, add_completion=False, no_args_is_help=True)


def _state(value: str | None) -> list[str] | None:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


@app.callback(invoke_without_command=True)
def train_command(
    ctx: typer.Context,
    store: Path | None = typer.Option(None, help="Store directory to train on."),
    config: Path | None = typer.Option(None, help="YAML config; flags given here override its keys."),
    out: Path | None = typer.Option(None, help="Run directory (outputs and checkpoints). Default: run"),
    state: str | None = typer.Option(None, help="Comma-separated state: charge,spin,charges/<scheme>; '' for none."),
    target: str | None = typer.Option(None, help="energy or formation_energy."),
    physics: str | None = typer.Option(None, help="Comma-separated physical terms: charges,coulomb,zbl,d4,nonlocal; '' for none."),
    charge_target: str | None = typer.Option(None, help="charges/<scheme> column the learned charges are trained on."),
    max_epochs: int | None = typer.Option(None, help="Number of epochs."),
    batch_size: int | None = typer.Option(None, help="Conformers per batch (per process)."),
    device: str | None = typer.Option(None, help="cpu or cuda."),
    num_workers: int | None = typer.Option(None, help="DataLoader worker processes per training process."),
    seed: int | None = typer.Option(None, help="Seed of the weights and of the data order."),
    threads: int | None = typer.Option(None, min=1, help="Torch threads per process. Default: 1 (docs/training.md)."),
    svg: bool | None = typer.Option(None, "--svg", help="Also write the figures as SVG."),
    setup_cache: bool | None = typer.Option(None, "--setup-cache/--no-setup-cache",
                                            help="Read and keep splits, references and scales in the setup cache "
                                                 "($TNQ_SETUP_CACHE or ~/.cache/tnq/setup). Default: on."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last.pt."),
    setup_only: bool = typer.Option(False, "--setup-only", help="Only fill the setup cache (splits, references, "
                                    "scales) for these settings, e.g. before a GPU job; no training."),
    force: bool = typer.Option(False, "--force", help="With --resume: accept a different store version."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar, epoch lines or summary."),
    as_json: bool = typer.Option(False, "--json", help="Print the final report as JSON on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """Train a potential on a store (the default command): one line per epoch and a summary on stderr;
    `eval`, `plot` and `export` act on a run directory."""
    if ctx.invoked_subcommand is not None:
        return
    from .training import set_up_only, train

    if config is None and resume and out is not None:
        config = out / "config.yaml"
    overrides = {"store": store, "out": out, "state": _state(state), "target": target, "max_epochs": max_epochs,
                 "batch_size": batch_size, "device": device, "num_workers": num_workers, "seed": seed,
                 "threads": threads, "svg": svg, "setup_cache": setup_cache, "charge_target": charge_target,
                 "model.physics": _state(physics)}
    reporter = SILENT if quiet else ConsoleReporter()
    if setup_only:
        if resume or as_json:
            flag = "--resume" if resume else "--json"
            raise TnqError(f"--setup-only trains nothing, so it has no run to resume or report; drop {flag}")
        set_up_only(resolve_config(config, overrides), reporter)
        return
    run_dir = train(resolve_config(config, overrides), resume=resume, force=force, reporter=reporter)
    if os.environ.get("RANK", "0") != "0":
        return
    if as_json:
        from .rundir import read_report

        print_json(read_report(run_dir))
    reporter.note(f"run written to {run_dir}")


@app.command("eval")
def eval_command(
    run_dir: Path = typer.Argument(..., help="Run directory written by tnq-train."),
    store: Path = typer.Option(..., help="Store to evaluate on (the run's splits apply)."),
    split: str = typer.Option("test", help="train, val or test."),
    checkpoint: str = typer.Option("best.pt", help="Checkpoint file in the run directory."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    force: bool = typer.Option(False, "--force", help="Evaluate STORE's HEAD even if the run trained on another "
                               "version; its splits are then mapped by source id and SMILES."),
) -> None:
    """Energy and force errors of a run, overall and by total charge and multiplicity."""
    from .evaluate import evaluate_run
    from .summary import report_lines

    report = evaluate_run(run_dir, store, split, checkpoint, device, force=force, reporter=ConsoleReporter())
    if as_json:
        print_json(report)
        return
    for line in report_lines(report):
        print(line)


@app.command("plot")
def plot_command(
    run_dir: Path = typer.Argument(..., help="Run directory written by tnq-train."),
    svg: bool = typer.Option(False, "--svg", help="Also write the figures as SVG."),
) -> None:
    """Draw the figures of a run again (learning curves, parity, errors by state) and print their paths."""
    from .rundir import redraw_plots

    for path in redraw_plots(run_dir, svg):
        print(path)


@app.command("export")
def export_command(
    run_dir: Path = typer.Argument(..., help="Run directory written by tnq-train."),
    out: Path | None = typer.Option(None, help="TorchScript file. Default: RUN_DIR/model.ts"),
    checkpoint: str = typer.Option("best.pt", help="Checkpoint file in the run directory."),
) -> None:
    """Write the run's potential as TorchScript (energies and forces without tnq)."""
    from .export import export_torchscript

    print(export_torchscript(run_dir / checkpoint, out or run_dir / "model.ts"))


@app.command("cache")
def cache_command(
    clear: bool = typer.Option(False, "--clear", help="Delete every entry."),
    as_json: bool = typer.Option(False, "--json", help="Print the entries (or what --clear deleted) as JSON."),
) -> None:
    """The setup cache ($TNQ_SETUP_CACHE or ~/.cache/tnq/setup): its entries, oldest first, or with --clear none."""
    from .setup_cache import clear_entries, default_directory, list_entries

    directory = default_directory()
    if clear:
        files, size = clear_entries(directory)
        if as_json:
            print_json({"directory": str(directory), "deleted": files, "bytes": size})
        else:
            print(f"deleted {files} files ({size / 1e6:.1f} MB) from {directory}")
        return
    entries = list_entries(directory)
    size = sum(entry["bytes"] for entry in entries)
    if as_json:
        print_json({"directory": str(directory), "entries": entries, "bytes": size})
        return
    for entry in entries:
        print(f"{entry['modified']}  {entry['kind']:<10} {entry['bytes'] / 1e6:9.1f} MB  {entry['store']} "
              f"(version {entry['version']})")
    print(f"{len(entries)} entries, {size / 1e6:.1f} MB in {directory}")


@app.command("import-torchmdnet")
def import_torchmdnet_command(
    checkpoint: Path = typer.Argument(..., help="torchmd-net 3.x TensorNet checkpoint (.ckpt)."),
    out: Path = typer.Option(..., help="Run directory to write (its best.pt)."),
) -> None:
    """Read a torchmd-net TensorNet checkpoint into a run directory (best.pt only: for tnq_model.load, the ASE
    calculator and export; not eval) and print the checkpoint's path."""
    from .torchmdnet import import_torchmdnet

    print(import_torchmdnet(checkpoint, out))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `tnq-train` console script (and of `python -m tnq_model.train`)."""
    sys.exit(run_app(app, argv, prog_name="tnq-train"))
