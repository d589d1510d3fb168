"""The few places where one rank of a multi-rank job trains differently from a one-process job.

pinsweep.job.ranks starts the ranks (torch's elastic agent, or submitit's tasks) and joins them into a
process group; the job itself (pinsweep.job.train) stays the same code for one rank and for many, and
calls these, each a no-op without a process group of several ranks:

- `wrap`: DistributedDataParallel around the model, so every step ends in the gradient all-reduce;
- `bare`: the model without it, for the compute-only ceiling (one rank's own compute, no all-reduce);
- `barrier`: where the steady-state window starts and ends, so that all ranks' items count in one
  window, and where each ceiling starts, so that every rank times its own while the others run theirs;
- `lock_suffix`: the ranks of one job share the CPU, so that a second job on it is still noticed but
  the job's own ranks are not taken for one (pinsweep.job.train.exclusive_device).
"""

from __future__ import annotations

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
