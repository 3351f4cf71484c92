"""The command-line boundary shared by `tnq-data` and `tnq-train`: one line per error, usage errors exit 2,
Ctrl-C exits 130, and the `--json` printer."""

import json
import re
import sys
from contextlib import AbstractContextManager

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from tnq_core.errors import one_line_errors
from tnq_core.progress import Reporter, progress_bar

console = Console(stderr=True)
#: A parameter name in a library message: a lower-case identifier in backticks.
_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")


def output_console(stderr: bool = False) -> Console:
    """The console of a command's human-readable output. Not a terminal (a pipe, a log file, CI): lines are
    never wrapped or cut, so ids and paths stay whole and can be copied from a saved log."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 100_000
    return Console(stderr=stderr, width=width, highlight=False, soft_wrap=True)


def whole_table(*headers: str, title: str | None = None) -> Table:
    """A rich table whose cells fold instead of ending in an ellipsis (an id or a path is never cut)."""
    table = Table(title=title)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def print_json(document: object) -> None:
    """Print `document` as JSON on stdout: the `--json` output of every command."""
    typer.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


#: Options of every command that may stand anywhere on the command line; they are moved to the front,
#: where the application's callback reads them.
GLOBAL_FLAGS = ("-q", "--quiet", "--debug")
INTERRUPTED = "interrupted; nothing half-written was kept (stores stay at their previous version, downloads keep " \
    "their .part): re-run the same command to continue"


def as_flags(message: str) -> str:
    """A library message with its backticked parameter names shown as the flags that set them:
    `` `per_conformer` `` -> ``--per-conformer``."""
    return _PARAMETER.sub(lambda match: "--" + match.group(1).replace("_", "-"), message)


class ConsoleReporter(Reporter):
    """Notes on stderr (on stdout with `stdout`), their parameters shown as flags (as file keys with `keys`);
    progress bars on stderr unless `quiet`."""

    def __init__(self, quiet: bool = False, keys: bool = False, stdout: bool = False) -> None:
        super().__init__()
        self.quiet, self.keys = quiet, keys
        self.console = output_console() if stdout else console

    def note(self, message: str) -> None:
        self.console.print(message if self.keys else as_flags(message), highlight=False, markup=False, soft_wrap=True)

    def bar(self, description: str, total: int | None) -> AbstractContextManager[Progress]:
        return progress_bar(description, total, quiet=self.quiet)


def _click_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage and other click errors, aborts) of the click that typer runs and of the installed click.

    Typer may carry its own copy of click; its classes are found from typer's public exceptions, so the
    boundary does not depend on typer's version or layout.
    """
    vendored = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    vendored_abort = getattr(sys.modules[vendored.__module__], "Abort", click.exceptions.Abort)
    return (vendored, click.ClickException), (vendored_abort, click.exceptions.Abort, typer.Abort)


def run_app(application: typer.Typer, argv: list[str] | None = None, prog_name: str | None = None) -> int:
    """Run a Typer app: a `TnqError` (or a registered one-line error) becomes one line on stderr and its exit
    code, a usage error click's short usage message and exit code 2, Ctrl-C one line and exit code 130."""
    args = list(argv if argv is not None else sys.argv[1:])
    args = [a for a in args if a in GLOBAL_FLAGS] + [a for a in args if a not in GLOBAL_FLAGS]
    command = typer.main.get_command(application)
    usage_errors, aborts = _click_errors()
    try:
        code = command.main(args=args, prog_name=prog_name, standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C into exit code 130 without a word
            raise KeyboardInterrupt
    except one_line_errors() as err:
        if "--debug" in args:
            raise
        message = str(err) if getattr(err, "keys", False) else as_flags(str(err))
        console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
        return getattr(err, "exit_code", 1)
    except (KeyboardInterrupt, *aborts):
        console.print(f"[red]error:[/red] {escape(INTERRUPTED)}", highlight=False, soft_wrap=True)
        return 130
    except usage_errors as err:
        err.show()
        return err.exit_code
    return code if isinstance(code, int) else 0
