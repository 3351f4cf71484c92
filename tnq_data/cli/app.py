"""The Typer application, global options and the error boundary shared by every command."""

import json
import sys

import click
import typer
from rich.console import Console
from rich.markup import escape

from tnq_data.errors import TnqError

app = typer.Typer(
    name="tnq-data",
    help="Fetch, curate, label and version datasets for charge- and spin-aware potentials.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: Options shared by every command, set by the callback below.
state = {"debug": False, "quiet": False}
console = Console(stderr=True)


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    state["debug"] = debug
    state["quiet"] = quiet


def print_json(document: object) -> None:
    """Print `document` as JSON on stdout: the `--json` output of every command."""
    typer.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


def run_app(application: typer.Typer, argv: list[str] | None = None, prog_name: str | None = None) -> int:
    """Run a Typer app, turning `TnqError` into one line on stderr and its exit code."""
    command = typer.main.get_command(application)
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except TnqError as err:
        if debug:
            raise
        console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        return err.exit_code
    except click.exceptions.Abort:
        console.print("[red]error:[/red] interrupted; nothing half-written was kept (stores stay at their previous version, downloads keep their .part): run the same command again to continue.")
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    return code if isinstance(code, int) else 0


def main() -> None:
    """Entry point of the `tnq-data` console script."""
    sys.exit(run_app(app, prog_name="tnq-data"))
