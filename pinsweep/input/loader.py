"""The input path behind one small interface: what the job asks of every batch source.

    train_input = build_input(train_set, cfg.data, cfg.loader, device, train=True, seed=1)
    train_input = with_device_prefetch(train_input, depth, device, move, count)   # loader.device_prefetch
    for batch in train_input: ...                 # one epoch; iter() again for the next
    train_input.shutdown()                        # no worker left running (persistent ones included)
    batches = train_input.primed()                # epochs on end, what workers had ready consumed

Every stage answers the same few calls (pinsweep.input.stage.Input), as every torchdata.nodes BaseNode
answers the same few: `__iter__` (one
epoch), `__len__` (its batches), `ready_ahead` (batches that can be ready before anyone asks: worker
prefetch queues, the device prefetcher's depth), `shutdown()` (stop its workers now), `worker_pids()`
(the running workers, for train.inject_fault=kill_worker). The stages:

- `TorchLoader`: torch.utils.data.DataLoader, built from the loader keys (`dataloader_arguments`, the one
  place they are spelt out for it).
- `pinsweep.input.nodes.NodesLoader` (loader.engine=nodes): the same keys as a torchdata.nodes graph.
- `DeviceResident` (data.pipeline=device): the whole split on the device; no workers, no copy.
- `pinsweep.input.prefetch.DevicePrefetcher` (loader.device_prefetch): any of them, copied to the GPU on
  a side stream ahead of the step.

A batch may be any structure (pinsweep.input.batch); `data.collate_fn` makes it from the samples, in
the workers, for both engines. With pin_memory where it can act, batches that hold dataclasses are
pinned whole (batch.PinnableCollate).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from hydra.utils import get_method
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from pinsweep.config import ConfigError, instantiate_node, plain
from pinsweep.input import shard
from pinsweep.input.accounting import EpochTally, TalliedCollate, WorkerTally
from pinsweep.input.batch import PinnableCollate
from pinsweep.input.data import BatchGatherDataset, collate_encoded
from pinsweep.input.nodes import NodesLoader
from pinsweep.input.prefetch import DevicePrefetcher
from pinsweep.input.stage import Input

# --------------------------------------------------------------------------------------- DataLoader


def pin_active(loader_cfg: Any) -> bool:
    """Whether pin_memory can act: as DataLoader decides it, only with an accelerator to pin for."""
    return bool(loader_cfg.pin_memory) and torch.accelerator.is_available()


def dataloader_arguments(loader_cfg: Any, train: bool) -> dict[str, Any]:
    """The loader keys as DataLoader's keyword arguments: the test split is never shuffled nor cut short."""
    arguments = {
        "batch_size": loader_cfg.batch_size,
        "shuffle": loader_cfg.shuffle and train,
        "num_workers": loader_cfg.num_workers,
        "pin_memory": loader_cfg.pin_memory,
        "persistent_workers": loader_cfg.persistent_workers,
        "drop_last": loader_cfg.drop_last and train,
        "in_order": loader_cfg.in_order,
    }
    if loader_cfg.prefetch_factor is not None:
        arguments["prefetch_factor"] = loader_cfg.prefetch_factor
    return arguments


def is_stream(dataset: Any) -> bool:
    """An IterableDataset: it yields its own samples in its own order, split (or not) between workers and
    ranks by its own code; DataLoader takes no sampler, no shuffle and no length from it."""
    return isinstance(dataset, IterableDataset)


class TorchLoader(Input):
    """A torch DataLoader. It keeps a weak reference to the epoch's iterator, so that dropping the
    iterator still ends non-persistent workers inside the epoch they belong to. Its collate_fn is
    tallied (pinsweep.input.accounting): what each worker yielded is read after every epoch."""

    def __init__(self, dataset: Dataset, loader_cfg: Any, train: bool, collate_fn: Any):
        arguments = dataloader_arguments(loader_cfg, train)
        self.stream = is_stream(dataset)
        if self.stream:  # DataLoader refuses a shuffle option for a stream ("expected unspecified shuffle")
            arguments.pop("shuffle")
        sampler = shard.train_sampler(dataset, loader_cfg.shuffle) if train and not self.stream else None
        if sampler is not None:  # one rank of several (train.ranks): its share, shuffled by the sampler
            arguments.update(sampler=sampler, shuffle=False)
        if loader_cfg.worker_threads is not None:
            arguments["worker_init_fn"] = shard.WorkerThreads(loader_cfg.worker_threads)
        # a stream with several workers is sketched in its first epoch: its workers may all read the same samples
        sketching = train and self.stream and loader_cfg.num_workers > 1
        self.tally = WorkerTally(loader_cfg.num_workers, sketching)
        self.loader = DataLoader(dataset, collate_fn=TalliedCollate(collate_fn, self.tally), **arguments)
        self.num_workers = loader_cfg.num_workers
        self.prefetch_factor = self.loader.prefetch_factor
        self._epoch: Any = None

    def batches_per_epoch(self) -> int | None:
        return None if self.stream else len(self.loader)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        self.tally.reset()  # before iter(): persistent workers start the new epoch's batches only then
        iterator = iter(self.loader)
        self._epoch = weakref.ref(iterator)
        return iterator

    def epoch_tally(self) -> EpochTally | None:
        tally = self.tally.epoch()
        self.tally.stop_sketching()  # the first epoch tells whether workers share a stream; later ones pay nothing
        return tally

    @property
    def ready_ahead(self) -> int:
        return self.num_workers * self.prefetch_factor if self.num_workers else 0

    def shutdown(self) -> None:
        """Persistent workers outlive each epoch on purpose; when training stops mid-epoch (adaptive mode)
        they go on prefetching the rest of it, beside the ceilings timed next. `_iterator` is the
        DataLoader's own handle on them (the next iter() makes a fresh one); non-persistent workers end
        with their iterator."""
        iterator = self.loader._iterator
        if iterator is not None:
            iterator._shutdown_workers()
            self.loader._iterator = None

    def worker_pids(self) -> list[int]:
        iterator = self._epoch() if self._epoch is not None else None
        return [worker.pid for worker in getattr(iterator, "_workers", [])]


# ------------------------------------------------------------------------------------ device-resident


class DeviceResident(Input):
    """The whole split on the device as uint8; each epoch draws batches by a device-side permutation."""

    def __init__(self, source: BatchGatherDataset, loader_cfg: Any, device: torch.device, train: bool, seed: int):
        self.images = source.images.to(device)
        self.labels = source.labels.to(device)
        self.batch_size = loader_cfg.batch_size
        self.shuffle = loader_cfg.shuffle and train
        self.drop_last = loader_cfg.drop_last and train
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __len__(self) -> int:
        full, rest = divmod(len(self.labels), self.batch_size)
        return full if self.drop_last or not rest else full + 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count = len(self.labels)
        device = self.labels.device
        if self.shuffle:
            order = torch.randperm(count, device=device, generator=self.generator)
        else:
            order = torch.arange(count, device=device)
        for step in range(len(self)):
            index = order[step * self.batch_size : (step + 1) * self.batch_size]
            yield self.images[index], self.labels[index]


# -------------------------------------------------------------------------------------------- building


def _keep_batch(batch: Any) -> Any:
    """collate_fn for BatchGatherDataset: the batch is already gathered (module level: picklable)."""
    return batch


def user_collate(data_cfg: Any) -> Any:
    """data.collate_fn: your collate_fn(samples) -> batch, by dotted path, or built from a node with a
    `_target_` as hydra.utils.instantiate builds it (DataCollatorWithPadding around a nested tokenizer);
    None when unset. Either way it is pickled into spawned workers, so it must live at module level."""
    collate = data_cfg.collate_fn
    if not collate:
        return None
    if isinstance(collate, str):
        try:
            return get_method(collate)
        except Exception as error:
            cause = error.__cause__ or error  # Hydra's wrapping says less than the import's own error
            raise ConfigError(
                f"data.collate_fn={collate}: not an importable function ({type(cause).__name__}: "
                f"{' '.join(str(cause).split())}); give the dotted path of a module-level collate_fn(samples) -> batch"
            ) from error
    built = instantiate_node(plain(collate), "data.collate_fn", "the collate_fn")
    if not callable(built):
        raise ConfigError(
            f"data.collate_fn._target_={collate._target_} built a {type(built).__name__}, which cannot be called "
            "on the samples: give a node that builds a collate_fn(samples) -> batch"
        )
    if isinstance(built, functools.partial) and type(built) is not functools.partial:
        # `_partial_: true`: Hydra's partial checks its target again at every call (85 us measured, around a
        # 3 us collate), and the collate runs once per batch in the timed loop: the same function with the
        # same arguments as a plain partial (its target was checked as it was built)
        built = functools.partial(built.func, *built.args, **built.keywords)
    return built


def build_loader(dataset: Dataset, loader_cfg: Any, train: bool, collate_fn: Any = None) -> Input:
    """The loader exactly as configured: a DataLoader, or a torchdata.nodes graph with loader.engine=nodes."""
    if isinstance(dataset, BatchGatherDataset):
        collate_fn = _keep_batch
    collate_fn = collate_fn or default_collate
    if pin_active(loader_cfg):  # DataLoader's pinning passes over dataclasses: see pinsweep.input.batch
        collate_fn = PinnableCollate(collate_fn)
    if loader_cfg.engine == "nodes":
        if is_stream(dataset):
            raise ConfigError(
                f"loader.engine=nodes samples a map-style dataset and {type(dataset).__name__} is an IterableDataset "
                "(a stream that orders and splits itself): use loader.engine=dataloader"
            )
        return NodesLoader(dataset, loader_cfg, train, collate_fn)
    return TorchLoader(dataset, loader_cfg, train, collate_fn)


def build_input(
    dataset: Dataset, data_cfg: Any, loader_cfg: Any, device: torch.device, train: bool, seed: int
) -> Input:
    """The batch source for one split under the configured pipeline."""
    if data_cfg.pipeline == "pil":
        collate = user_collate(data_cfg)
        if data_cfg.name == "imagefolder" and data_cfg.decoder == "nvjpeg":
            collate = functools.partial(collate_encoded, image_size=data_cfg.image_size, train=train)
        return build_loader(dataset, loader_cfg, train, collate)
    gathered = BatchGatherDataset(dataset)
    if data_cfg.pipeline == "tensor":
        return build_loader(gathered, loader_cfg, train)
    return DeviceResident(gathered, loader_cfg, device, train, seed)


def with_device_prefetch(source: Input, depth: int, device: torch.device, move: Any, count: Any) -> Input:
    """loader.device_prefetch: `source`'s batches moved (`move`, the trainer's copy) on a side CUDA stream
    `depth` steps ahead, each counted (`count`) on the host before its copy."""
    return DevicePrefetcher(source, depth, device, move, count)
