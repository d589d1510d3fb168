"""What a batch is, and the one walk that moves, pins and counts any of them.

A batch is whatever the loader yields: tensors nested in tuples, lists, dicts, namedtuples and
dataclasses, or objects that move themselves (`.to(device, non_blocking=...)`) and pin themselves
(`.pin_memory()`), as the nvJPEG `EncodedBatch` and the device prefetcher's `Staged` batches do.

torch's own helpers each cover part of that. DataLoader's pinning
(`torch.utils.data._utils.pin_memory.pin_memory`) recurses into mappings, namedtuples, tuples and
sequences and calls an object's own `.pin_memory()`, but hands a dataclass back unchanged, unpinned;
`torch.utils._pytree.tree_map` knows a dataclass only once its class is registered with it (a global
registry, per class), and treats mapping subclasses as leaves. So the walk here follows
DataLoader's pinning, case by case and in its order, and adds dataclasses; every stage of the input
path uses it, so a batch structure that moves also pins, counts, and stages on a side stream.

- `Mover`: the host-to-device copy of a whole batch, and nothing else: what the step timer calls copy.
  Honours non_blocking, and with channels_last copies 4-D floating tensors (images) into NHWC.
- `pin` and `PinAll`: DataLoader's `pin_memory=true` pins a batch by calling `pin_memory(batch)` in its
  pin thread; a batch holding a dataclass leaves the worker as `PinAll(batch)`, whose `.pin_memory()`
  pins every tensor of it and returns the batch itself, so the training process receives the
  structure its collate_fn made, pinned, in the same thread DataLoader pins everything else in.
- `first_dim`: train.count's default, the items of a batch: the first dimension of its first tensor.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence, Sequence
from typing import Any

import torch

from pinsweep.config import ConfigError

PASS = object()  # what an object hook returns for an object it leaves to the walk


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def map_batch(batch: Any, on_tensor: Callable[[torch.Tensor], Any], on_object: Callable[[Any], Any] | None = None):
    """The batch with every tensor replaced by `on_tensor(tensor)`, its structure kept. `on_object` is
    asked first about every object that is not a tensor; whatever it returns, except PASS, replaces
    it (objects that move or pin themselves)."""

    def walk(node: Any) -> Any:
        if isinstance(node, torch.Tensor):
            return on_tensor(node)
        if node is None or isinstance(node, (str, bytes, int, float, complex)):
            return node
        if on_object is not None and (handled := on_object(node)) is not PASS:
            return handled
        if _is_dataclass_instance(node):
            clone = copy.copy(node)  # the user's own class, frozen or not, fields with init=False too
            for item in dataclasses.fields(node):
                object.__setattr__(clone, item.name, walk(getattr(node, item.name)))
            return clone
        if isinstance(node, Mapping):
            items = {key: walk(value) for key, value in node.items()}
            try:  # as DataLoader's pinning: keep the mapping's own type and attributes where it can
                if isinstance(node, MutableMapping):
                    clone = copy.copy(node)
                    clone.update(items)
                    return clone
                return type(node)(items)
            except TypeError:
                return items
        if isinstance(node, tuple):
            if hasattr(node, "_fields"):  # namedtuple
                return type(node)(*(walk(value) for value in node))
            return type(node)(walk(value) for value in node)
        if isinstance(node, Sequence):
            try:
                if isinstance(node, MutableSequence):
                    clone = copy.copy(node)
                    for index, value in enumerate(node):
                        clone[index] = walk(value)
                    return clone
                return type(node)([walk(value) for value in node])
            except TypeError:
                return [walk(value) for value in node]
        return node

    return walk(batch)


def _moves_itself(node: Any) -> bool:
    return callable(getattr(node, "to", None)) and not isinstance(node, (Mapping, Sequence))


def leaves(batch: Any) -> list[Any]:
    """The batch's tensors, and its objects that move themselves, in the walk's order."""
    found: list[Any] = []

    def keep(node: Any) -> Any:
        if _moves_itself(node):
            found.append(node)
            return node
        return PASS

    map_batch(batch, lambda tensor: found.append(tensor), keep)
    return found


def tensors(batch: Any) -> list[torch.Tensor]:
    """Every tensor in the batch, dataclass fields included."""
    found: list[torch.Tensor] = []
    map_batch(batch, found.append)
    return found


def first_dim(batch: Any) -> int:
    """train.count's default: the first dimension of the batch's first tensor (images, sequences, samples),
    or the length of an object that moves itself and says how many items it holds (an EncodedBatch)."""
    for leaf in leaves(batch):
        if isinstance(leaf, torch.Tensor):
            return int(leaf.shape[0]) if leaf.dim() else 1
        if hasattr(leaf, "__len__"):
            return len(leaf)
    raise ConfigError(
        f"the batch ({type(batch).__name__}) holds no tensor to count items by: "
        "set train.count to the dotted path of a count(batch) -> int"
    )


class Mover:
    """The host-to-device copy of a whole batch: exactly what the step timer calls copy.

    Each tensor is `.to(device, non_blocking=...)`; with channels_last, a 4-D floating tensor (a batch
    of images) is copied into NHWC by the same call, and nothing else changes format (token ids, masks
    and labels have no channels). An object that moves itself is asked to: an EncodedBatch decodes on
    the GPU, a Staged batch (loader.device_prefetch) makes the compute stream wait for its side-stream
    copy, your own object does what its `.to` does."""

    def __init__(self, device: torch.device, non_blocking: bool, channels_last: bool):
        self.device, self.non_blocking, self.channels_last = device, non_blocking, channels_last

    def tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.channels_last and tensor.dim() == 4 and tensor.is_floating_point():
            return tensor.to(self.device, non_blocking=self.non_blocking, memory_format=torch.channels_last)
        return tensor.to(self.device, non_blocking=self.non_blocking)

    def object(self, node: Any) -> Any:
        if isinstance(node, PinAll):  # never pinned (no pin thread ran): the batch inside is the batch
            return self(node.batch)
        if _moves_itself(node):
            return node.to(self.device, non_blocking=self.non_blocking)
        return PASS

    def __call__(self, batch: Any) -> Any:
        return map_batch(batch, self.tensor, self.object)


def _pin_object(node: Any) -> Any:
    method = getattr(node, "pin_memory", None)
    return method() if callable(method) and not isinstance(node, (Mapping, Sequence)) else PASS


def pin(batch: Any) -> Any:
    """The batch with every tensor in page-locked memory, dataclass fields included."""
    return map_batch(batch, lambda tensor: tensor.pin_memory(), _pin_object)


def holds_dataclass(batch: Any) -> bool:
    """Whether DataLoader's own pinning would pass over part of this batch (a dataclass without its own
    pin_memory)."""
    found = False

    def look(node: Any) -> Any:
        nonlocal found
        if callable(getattr(node, "pin_memory", None)):
            return node  # pins itself: not walked into
        if _is_dataclass_instance(node):
            found = True
        return PASS

    map_batch(batch, lambda tensor: tensor, look)
    return found


class PinAll:
    """A batch on its way from a worker to DataLoader's pin thread, which calls `.pin_memory()` on it:
    every tensor in it is pinned and the batch itself comes out (see the module docstring)."""

    def __init__(self, batch: Any):
        self.batch = batch

    def pin_memory(self, device: Any = None) -> Any:
        return pin(self.batch)


class PinnableCollate:
    """collate_fn wrapper for pinned loaders: the batch as `collate_fn` makes it, carried as PinAll where
    it holds a dataclass (a class, so that worker processes can pickle it)."""

    def __init__(self, collate_fn: Callable[[list[Any]], Any]):
        self.collate_fn = collate_fn

    def __call__(self, samples: Any) -> Any:
        batch = self.collate_fn(samples)
        return PinAll(batch) if holds_dataclass(batch) else batch
