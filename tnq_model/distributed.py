"""This process's place among the training processes (torchrun's environment; gloo on CPU, nccl on CUDA)."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from tnq_core.errors import TnqError


@dataclass
class Distributed:
    """This process's place among the training processes."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the block in the main process first and in the others after it (to read what it left, e.g. in
        the setup cache); they also start when the main process failed in it, and so meet the same error."""
        if self.world_size > 1 and not self.is_main:
            dist.barrier()
        try:
            yield
        finally:
            if self.world_size > 1 and self.is_main:
                dist.barrier()

    def all_reduce(self, tensor: Tensor, op: dist.ReduceOp = dist.ReduceOp.SUM) -> Tensor:
        """`tensor` reduced over the processes (in place; unchanged when alone)."""
        if self.world_size > 1:
            dist.all_reduce(tensor, op)
        return tensor


def init_distributed(device: str) -> Distributed:
    """Join the process group that torchrun describes in the environment (gloo on CPU, nccl on CUDA)."""
    if device == "cuda" and not torch.cuda.is_available():
        raise TnqError("`device` cuda but torch sees no CUDA device; use `device` cpu or a CUDA build of torch")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)  # NCCL's barriers (e.g. `main_first`'s, before any tensor) use it
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    rank = dist.get_rank() if world_size > 1 else 0
    return Distributed(rank, world_size, torch.device(f"cuda:{local_rank}" if device == "cuda" else "cpu"))
