"""Process-group awareness: which process this is and how to combine numbers across them.

With one process (no ``torch.distributed`` process group) everything here is a no-op:
rank 0 of 1, the main process, sums unchanged. The torchrun issue initialises the group;
the engine already asks these questions everywhere it writes files or reports numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files, logs and runs git."""
        return self.rank == 0

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum of ``t`` over processes (in place; returns it). Identity with one process."""
        if self.world_size > 1:
            tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t

    def shard(self, items: torch.Tensor) -> torch.Tensor:
        """This process's disjoint share of a global batch of indices (all of it alone)."""
        return items if self.world_size == 1 else items[self.rank :: self.world_size]


def current() -> DistInfo:
    """The process group's rank and size, or a single process."""
    if tdist.is_available() and tdist.is_initialized():
        return DistInfo(tdist.get_rank(), tdist.get_world_size())
    return DistInfo()
