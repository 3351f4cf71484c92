"""How many CPU threads torch's operators use while a run trains (`threads`, `--threads`)."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def default_threads() -> int:
    """Intra-op threads when `threads` is not set: one. The small molecules of a batch give each operator too
    little work to share, and a second thread costs far more than it gains as soon as another job holds a core
    (docs/training.md, "Threads")."""
    return 1


@contextmanager
def torch_threads(count: int | None) -> Iterator[int]:
    """Run the block with `count` intra-op threads (`default_threads()` when None); yields the count and restores
    the process's previous setting afterwards."""
    previous = torch.get_num_threads()
    chosen = count or default_threads()
    torch.set_num_threads(chosen)
    try:
        yield chosen
    finally:
        torch.set_num_threads(previous)
