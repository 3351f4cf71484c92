"""The `tnq-data` Typer application and its global options."""

import sys

import typer

from tnq_core.cli import ConsoleReporter, run_app

app = typer.Typer(
    name="tnq-data",
    help="Fetch, curate, label and version datasets for charge- and spin-aware potentials.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: Options shared by every command, set by the callback below.
state = {"debug": False, "quiet": False}


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    state["debug"] = debug
    state["quiet"] = quiet


def reporter(**options: bool) -> ConsoleReporter:
    """The reporter of a command: bars unless --quiet (or a true `quiet` option), notes on stderr."""
    quiet = options.pop("quiet", False)
    return ConsoleReporter(quiet=state["quiet"] or quiet, **options)


def main() -> None:
    """Entry point of the `tnq-data` console script."""
    sys.exit(run_app(app, prog_name="tnq-data"))
