"""`tnq-data` commands: charges, check."""

from collections import Counter
from pathlib import Path

import typer

from tnq_core.cli import output_console, print_json
from tnq_data.charges import SCHEMES, ChargesRun, check_store, run_charges
from tnq_data.cli.app import app, reporter, state
from tnq_data.store import open_store


@app.command()
def charges(
    store: Path = typer.Argument(..., help="Store directory; a new version is written."),
    scheme: str = typer.Option(..., "--scheme", help=f"Charge scheme: {', '.join(SCHEMES)}."),
    fallback: str = typer.Option("", "--fallback",
                                 help="SCHEME[,SCHEME]: tried in order for molecules the scheme cannot do."),
    per_conformer: bool = typer.Option(False, "--per-conformer", help="Compute on every stored geometry (am1bcc)."),
    workers: int = typer.Option(1, "--workers", help="Local dask worker processes."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Address of a running dask scheduler."),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds per molecule before it is a failure."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir",
                                          help="Charge cache [default: $TNQ_CACHE_DIR or ~/.cache/tnq/charges]."),
    compute: bool = typer.Option(False, "--compute", help="mbis: compute the charges the source lacks (extra mbis)."),
    method: str | None = typer.Option(None, "--method", help="mbis --compute: DFT functional."),
    basis: str | None = typer.Option(None, "--basis", help="mbis --compute: basis set."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Add per-atom partial charges `charges/<scheme>` to a store, in parallel and cached."""
    chain = [name.strip() for name in fallback.split(",") if name.strip()]
    run = run_charges(store, scheme, fallback=chain, per_conformer=per_conformer, workers=workers,
                      scheduler=scheduler, timeout=timeout, cache_dir=cache_dir, compute=compute,
                      method=method, basis=basis, reporter=reporter(quiet=as_json))
    if as_json:
        opened = open_store(store)
        used = Counter(name or "failed" for name in opened.column(f"charges_scheme/{scheme}"))
        print_json({"version": run.version, "scheme": scheme, "molecules": opened.n_molecules, "used": dict(used),
                    "failures": opened.tables[f"charges/{scheme}/failures"]})
    elif not state["quiet"]:
        _print_run(run)


def _print_run(run: ChargesRun) -> None:
    """Molecules per scheme used, the first failures and cache use, on stderr."""
    console = output_console(stderr=True)
    console.print(f"charges/{run.scheme}: {run.molecules} molecules, "
                  + ", ".join(f"{name} {n}" for name, n in run.used.items())
                  + f"; cache {run.cache_hits} hits, {run.cache_writes} new; version {run.version}", highlight=False)
    for failed in run.failed[:10]:
        console.print(f"  failed: molecule {failed['molecule']} ({failed['source_id']}): {failed['reason']}",
                      highlight=False)
    if len(run.failed) > 10:
        console.print(f"  ... and {len(run.failed) - 10} more in table charges/{run.scheme}/failures", highlight=False)
    if run.retryable:
        console.print(f"  {run.retryable} molecules timed out or crashed their process; such failures are not "
                      "cached: run the same command again to retry them", highlight=False)


@app.command()
def check(
    store: Path = typer.Argument(..., help="Store directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Report conformers whose multiplicity is impossible for their electron count; exit 1 if any."""
    report = check_store(store)
    if as_json:
        print_json(report)
    else:
        console = output_console(stderr=True)
        console.print(f"{store} (version {report['version']}): {report['conformers']} conformers, "
                      f"{report['inconsistent']} with inconsistent spin", highlight=False)
        for row in report["rows"]:
            console.print(f"  conformer {row['conformer']} (molecule {row['molecule']}, {row['source_id']}): "
                          f"{row['electrons']} electrons, charge {row['total_charge']}, "
                          f"multiplicity {row['multiplicity']}", highlight=False)
    if report["inconsistent"]:
        raise typer.Exit(1)
