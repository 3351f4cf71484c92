"""How many CPU threads torch's operators use while a run trains (`threads`, `--threads`)."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: Intra-op threads when `threads` is not set. The small molecules of a batch give each operator too little
#: work to share, and a second thread costs far more than it gains as soon as another job holds a core
#: (docs/training.md, "Threads").
DEFAULT_THREADS = 1


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with `count` intra-op threads (`DEFAULT_THREADS` when None), then restore the process's
    previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count or DEFAULT_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
