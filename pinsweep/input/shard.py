"""What a loader needs when it is one rank's of several, and the threads inside its workers.

- Each rank of a multi-rank job (train.ranks, pinsweep.job.ranks) samples its own share of the train
  split with torch's `DistributedSampler`, reshuffled every epoch as `set_epoch(epoch)` does in a real
  DDP script. `EpochDistributedSampler` calls `set_epoch` itself each time a new pass over it starts,
  as torchdata.nodes' SamplerWrapper does for a sampler it wraps: the training loop stays the same for
  one rank and for many, and a DataLoader iterates its sampler once per epoch, in the training process,
  persistent workers or not.
- `loader.worker_threads`: torch sets 1 intra-op thread in every DataLoader worker before calling the
  loader's `worker_init_fn`; `WorkerThreads` sets the configured number there instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler


def several_ranks() -> bool:
    """Whether this process is one rank of a job with more than one."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class EpochDistributedSampler(DistributedSampler):
    """torch's DistributedSampler, whose epoch advances each time an epoch's pass over it starts."""

    def __iter__(self) -> Iterator[int]:
        indices = super().__iter__()  # this epoch's order: fixed by the seed and the epoch
        self.set_epoch(self.epoch + 1)
        return indices


def train_sampler(dataset: Dataset, shuffle: bool) -> EpochDistributedSampler | None:
    """This rank's sampler of the train split when the job has several ranks; None in a one-rank job.
    Every rank seeds it alike (torch.initial_seed(), set from train.seed), so the shares never overlap;
    a split that does not divide evenly is padded, so that every rank takes the same number of steps
    (DDP's all-reduce needs every rank in every step; loader.drop_last still drops a short last batch)."""
    if not several_ranks():
        return None
    return EpochDistributedSampler(dataset, shuffle=shuffle, seed=torch.initial_seed())


class WorkerThreads:
    """worker_init_fn for loader.worker_threads: torch threads inside each worker, then the loader's own
    worker_init_fn, if any (a class, so that workers started by spawn can pickle it)."""

    def __init__(self, threads: int, then: Any = None):
        self.threads = threads
        self.then = then

    def __call__(self, worker_id: int) -> None:
        torch.set_num_threads(self.threads)
        if self.then is not None:
            self.then(worker_id)
