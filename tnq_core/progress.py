"""How a library tells what it is doing: a Reporter takes one-line notes and runs progress bars.

Libraries never print and take no `quiet` flag: they take a `reporter` (silent by default). The command line
passes a `ConsoleReporter` (tnq_core.cli), a pipeline its own, a test `Reporter(lines.append)`.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def progress_bar(description: str, total: int | None, *, quiet: bool = False) -> Iterator[Progress]:
    """Yield a started rich `Progress` (task id 0) on stderr; cleared when done (commands print their own summary); off with `quiet` or when stderr is no terminal."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[status]}"))
    console = Console(stderr=True)
    with Progress(*columns, disable=quiet or not console.is_terminal, transient=True, console=console) as bar:
        bar.add_task(description, total=total, status="")
        yield bar


class Reporter:
    """Notes go to `note` (dropped when None); bars are never shown. Subclasses show more."""

    def __init__(self, note: Callable[[str], None] | None = None) -> None:
        self._note = note

    def note(self, message: str) -> None:
        """One line of news, e.g. a resumed download; parameters are named in backticks."""
        if self._note is not None:
            self._note(message)

    def bar(self, description: str, total: int | None) -> AbstractContextManager[Progress]:
        """A progress bar (a rich `Progress`, task id 0): `bar.update(0, advance=1, status=...)`."""
        return progress_bar(description, total, quiet=True)


#: The default of every library function: says nothing.
SILENT = Reporter()
