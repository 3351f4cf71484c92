"""Progress bars that respect `--quiet` (rich, on stderr)."""

from collections.abc import Iterator
from contextlib import contextmanager

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
