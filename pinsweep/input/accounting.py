"""Honest sample accounting: what each DataLoader worker yielded, counted where it happened.

A map-style dataset is split between workers by its sampler, so every sample is loaded once whatever
`loader.num_workers` is. An IterableDataset splits itself, or does not: a stream that ignores
`torch.utils.data.get_worker_info()` is read whole by every worker, so each sample is loaded
`num_workers` times and the "speed-up" is measured on duplicated work; a stream of fewer shards than
workers leaves some workers with nothing to read. Neither raises anywhere in torch.

`TalliedCollate` wraps the loader's collate_fn, which DataLoader runs inside each worker (and in the
training process when there are none). Per worker it counts the batches and samples it collated into
a `WorkerTally`, tensors in shared memory that the training process reads after the epoch (fork and
spawn alike: a shared tensor reaches a spawned worker as a handle on the same memory). For a stream,
it also keeps a fingerprint of each worker's first samples of the epoch; two workers whose first
samples are mostly the same samples read the same stream. A worker writes only its own slot, so no
lock is needed; the cost is a few microseconds a batch and, once an epoch, hashing at most
`FINGERPRINTS` samples of 4 KiB each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

FINGERPRINTS = 32  # first samples of each worker's epoch that are fingerprinted (streams only)
FINGERPRINT_BYTES = 4096  # of each tensor or array: enough to tell two real samples apart, cheap to hash
DISTINCT = 0.9  # a worker's own fingerprints must be this distinct to tell anything (constant data is not)
SAME_STREAM = 0.5  # two workers sharing at least this share of their first samples read the same stream


def fingerprint(sample: Any) -> int:
    """A 64-bit hash of one sample's content (tensors, arrays, numbers, strings, nested containers). An
    object it cannot read is hashed by its repr, which may differ between equal objects: a duplicate then
    goes unnoticed, never a distinct sample taken for one."""
    digest = hashlib.blake2b(digest_size=8)

    def feed(node: Any) -> None:
        if isinstance(node, torch.Tensor):
            flat = node.detach().reshape(-1)[: FINGERPRINT_BYTES // max(node.element_size(), 1)]
            digest.update(f"{node.dtype}{tuple(node.shape)}".encode())
            digest.update(flat.cpu().contiguous().view(torch.uint8).numpy().tobytes())
        elif isinstance(node, np.ndarray):
            digest.update(f"{node.dtype}{node.shape}".encode())
            digest.update(np.ascontiguousarray(node).reshape(-1).view(np.uint8)[:FINGERPRINT_BYTES].tobytes())
        elif isinstance(node, Mapping):
            for key, value in node.items():
                feed(key)
                feed(value)
        elif isinstance(node, (list, tuple)):
            digest.update(b"[")
            for value in node:
                feed(value)
            digest.update(b"]")
        elif isinstance(node, (bytes, bytearray)):
            digest.update(bytes(node[:FINGERPRINT_BYTES]))
        elif hasattr(node, "tobytes") and hasattr(node, "size"):  # a PIL image
            digest.update(node.tobytes()[:FINGERPRINT_BYTES])
        else:
            digest.update(repr(node).encode())

    feed(sample)
    return int.from_bytes(digest.digest(), "little", signed=True)


class WorkerTally:
    """Per worker (one slot when the training process loads): batches and samples collated this epoch,
    and, for a stream, fingerprints of its first samples. `reset()` before each epoch's iter()."""

    def __init__(self, workers: int, fingerprints: bool):
        slots = max(workers, 1)
        self.batches = torch.zeros(slots, dtype=torch.int64).share_memory_()
        self.samples = torch.zeros(slots, dtype=torch.int64).share_memory_()  # -1: batches not sample lists
        self.prints = torch.zeros(slots, FINGERPRINTS if fingerprints else 0, dtype=torch.int64).share_memory_()
        self.printed = torch.zeros(slots, dtype=torch.int64).share_memory_()

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_arrays"}  # views are per process

    def _counters(self) -> tuple[np.ndarray, ...]:
        """NumPy views of the shared tensors, made once per process: a count through them costs ~0.1 us,
        through torch's indexing ~5 us."""
        if getattr(self, "_arrays", None) is None:
            self._arrays = tuple(t.numpy() for t in (self.batches, self.samples, self.prints, self.printed))
        return self._arrays

    def reset(self) -> None:
        for counter in (self.batches, self.samples, self.prints, self.printed):
            counter.zero_()

    def record(self, worker: int, samples: Any) -> None:
        """One batch collated by `worker` from `samples` (what DataLoader handed the collate_fn)."""
        batches, counted, prints, printed = self._counters()
        batches[worker] += 1
        if not isinstance(samples, list):  # a dataset's own __getitems__ batch: its samples are not counted
            counted[worker] = -1
            return
        if counted[worker] >= 0:
            counted[worker] += len(samples)
        room = prints.shape[1] - int(printed[worker])
        if room > 0 and samples:
            taken = samples[:room]
            start = int(printed[worker])
            prints[worker, start : start + len(taken)] = [fingerprint(sample) for sample in taken]
            printed[worker] += len(taken)

    def epoch(self) -> EpochTally:
        """What the workers yielded in the epoch just ended."""
        samples = self.samples.tolist()
        prints = [set(self.prints[w, : int(n)].tolist()) for w, n in enumerate(self.printed.tolist())]
        counts = [int(n) for n in self.printed.tolist()]
        return EpochTally(self.batches.tolist(), None if min(samples) < 0 else sum(samples), prints, counts)


@dataclass
class EpochTally:
    """One epoch's accounting, as the training process reads it."""

    worker_batches: list[int]  # batches each worker collated (one entry with no workers)
    samples: int | None  # samples fetched from the dataset, all workers together; None: not countable
    prints: list[set[int]]  # each worker's fingerprints of its first samples (streams only)
    printed: list[int]  # how many samples each worker fingerprinted

    def idle_workers(self) -> list[int]:
        """Workers that yielded no batch while others did."""
        if len(self.worker_batches) < 2 or not any(self.worker_batches):
            return []
        return [worker for worker, batches in enumerate(self.worker_batches) if batches == 0]

    def same_stream(self) -> tuple[int, int] | None:
        """Two workers whose first samples are mostly the same samples, or None. Only workers whose own
        first samples are distinct say anything: a dataset of identical samples looks duplicated anyway."""
        telling = [
            worker
            for worker, prints in enumerate(self.prints)
            if self.printed[worker] >= 2 and len(prints) >= DISTINCT * self.printed[worker]
        ]
        for position, first in enumerate(telling):
            for second in telling[position + 1 :]:
                a, b = self.prints[first], self.prints[second]
                if len(a & b) >= SAME_STREAM * min(len(a), len(b)):
                    return first, second
        return None


class TalliedCollate:
    """The loader's collate_fn, counted into `tally` by the worker that runs it (a class, so that
    workers started by spawn can pickle it)."""

    def __init__(self, collate_fn: Any, tally: WorkerTally):
        self.collate_fn = collate_fn
        self.tally = tally

    def __call__(self, samples: Any) -> Any:
        batch = self.collate_fn(samples)
        info = get_worker_info()
        self.tally.record(info.id if info is not None else 0, samples)
        return batch
