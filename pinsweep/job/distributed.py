"""The few places where one rank of a multi-rank job trains differently from a one-process job.

pinsweep.job.ranks starts the ranks (torch's elastic agent, or submitit's tasks) and joins them into a
process group; the job itself (pinsweep.job.train) stays the same code for one rank and for many, and
calls these, each a no-op without a process group of several ranks:

- `wrap`: DistributedDataParallel around the model, so every step ends in the gradient all-reduce;
- `bare`: the model without it, for the compute-only ceiling (one rank's own compute, no all-reduce);
- `barrier`: where the steady-state window starts and ends, so that all ranks' items count in one
  window, and where each ceiling starts, so that every rank times its own while the others run theirs;
- `lock_suffix`: the ranks of one job share the CPU, so that a second job on it is still noticed but
  the job's own ranks are not taken for one (pinsweep.job.train.exclusive_device);
- `StopVote`: in adaptive mode every rank stops at the same step (DDP needs every rank in every step).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from pinsweep.input.shard import several_ranks


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if not several_ranks():
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def bare(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def barrier(device: torch.device) -> None:
    if not several_ranks():
        return
    if device.type == "cuda":  # NCCL's barrier runs on the rank's own GPU
        dist.barrier(device_ids=[device.index])
    else:
        dist.barrier()


def lock_suffix(device: torch.device) -> str:
    """'' for rank 0 and for every GPU (one per rank); `-rank<r>` for the other ranks on a CPU."""
    if device.type == "cuda" or not several_ranks() or dist.get_rank() == 0:
        return ""
    return f"-rank{dist.get_rank()}"


class StopVote:
    """train.mode=adaptive with several ranks: each rank's own stop decision (its CI, its budget) goes to
    the others as a one-flag all-reduce (MAX) that runs in the background, and the ranks stop one step
    later, together, when any of them voted to stop. No step waits for the vote: it was sent a whole step
    earlier. The flag travels over a gloo group of its own, also on NCCL jobs, so reading it never syncs
    the device. With one rank the decision applies at once."""

    def __init__(self) -> None:
        self.group = dist.new_group(backend="gloo") if several_ranks() else None  # every rank creates it
        self.pending: tuple[Any, torch.Tensor] | None = None

    def __call__(self, stop: bool) -> bool:
        if self.group is None:
            return stop
        if self.pending is not None:
            work, flag = self.pending
            work.wait()
            self.pending = None
            if flag.item():  # some rank voted a step ago: all ranks see the same flag, and stop here
                return True
        flag = torch.tensor([int(stop)], dtype=torch.int32)
        self.pending = (dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group, async_op=True), flag)
        return False
