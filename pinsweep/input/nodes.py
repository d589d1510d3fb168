"""loader.engine=nodes: the same loader keys built as a torchdata.nodes graph instead of a DataLoader.

    sampler -> Batcher -> ParallelMapper (load + collate a batch; thread or process workers)
            -> PinMemory -> Prefetcher -> Loader

Batches are formed before the workers, as torchdata's guide to migrating from DataLoader does: each
worker loads and collates a whole batch, the work a DataLoader worker does, so the two engines differ
in how they run that work (`loader.worker_type`), not in how much of it crosses between workers.
batch_size, num_workers (0: in this process), pin_memory, prefetch_factor, shuffle, drop_last and
in_order mean what they mean for a DataLoader.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, RandomSampler, SequentialSampler, default_collate

from pinsweep.config import ConfigError
from pinsweep.input import shard
from pinsweep.input.stage import Input

try:
    from torchdata import nodes
except ImportError:  # an optional extra: only loader.engine=nodes needs it
    nodes = None

DEFAULT_PREFETCH_FACTOR = 2  # DataLoader's


class LoadBatch:
    """The workers' job: a list of indices -> one collated batch (a class, so process workers can pickle it)."""

    def __init__(self, dataset: Dataset, collate_fn: Any):
        self.dataset = dataset
        self.collate_fn = collate_fn or default_collate

    def __call__(self, indices: list[int]) -> Any:
        getitems = getattr(self.dataset, "__getitems__", None)  # a batch at once where the dataset can
        samples = getitems(indices) if getitems else [self.dataset[index] for index in indices]
        return self.collate_fn(samples)


class NodesLoader(Input):
    """A torchdata.nodes Loader with a DataLoader's length and its worker and prefetch figures."""

    def __init__(self, dataset: Dataset, loader_cfg: Any, train: bool, collate_fn: Any = None):
        if nodes is None:
            raise ConfigError("loader.engine=nodes needs torchdata: pip install torchdata --no-deps")
        self.batch_size = loader_cfg.batch_size
        self.drop_last = loader_cfg.drop_last and train
        self.num_workers = loader_cfg.num_workers
        self.prefetch_factor = loader_cfg.prefetch_factor or DEFAULT_PREFETCH_FACTOR
        self.samples = len(dataset)
        self.loader: Any = None
        self.build = lambda: self._graph(dataset, loader_cfg, train, collate_fn)

    def _graph(self, dataset: Dataset, loader_cfg: Any, train: bool, collate_fn: Any) -> Any:
        sampler = shard.train_sampler(dataset, loader_cfg.shuffle) if train else None  # one rank's share
        if sampler is None:
            sampler = RandomSampler(dataset) if loader_cfg.shuffle and train else SequentialSampler(dataset)
        node = nodes.Batcher(nodes.SamplerWrapper(sampler), self.batch_size, drop_last=self.drop_last)
        load = LoadBatch(dataset, collate_fn)
        if self.num_workers:
            node = nodes.ParallelMapper(
                node,
                load,
                num_workers=self.num_workers,
                in_order=loader_cfg.in_order,
                method=str(loader_cfg.worker_type),
            )
        else:
            node = nodes.Mapper(node, load)
        # as DataLoader does, pin only where there is an accelerator to pin for
        if loader_cfg.pin_memory and torch.accelerator.is_available():
            node = nodes.PinMemory(node)
        node = nodes.Prefetcher(node, self.prefetch_factor * max(self.num_workers, 1))
        return nodes.Loader(node)  # one graph for every epoch: iter() resets it

    def shutdown(self) -> None:
        """Stop the workers now and drop the graph, so that no process forked later (the test split's
        workers) inherits it: its clean-up would run, and fail, in there."""
        self.loader = None
        gc.collect()  # the graph's threads and nodes refer to each other

    @property
    def ready_ahead(self) -> int:
        """The Prefetcher's queue, which a background thread fills with or without workers."""
        return self.prefetch_factor * max(self.num_workers, 1)

    def __len__(self) -> int:
        steps = self.samples / self.batch_size
        return math.floor(steps) if self.drop_last else math.ceil(steps)

    def __iter__(self) -> Iterator[Any]:
        if self.loader is None:
            self.loader = self.build()
        return iter(self.loader)
