"""loader.device_prefetch=N: copy batches to the GPU on a side CUDA stream, N steps ahead of the step
that uses them, as the prefetcher of NVIDIA's ImageNet example and torchtnt's CudaDataPrefetcher do.

This is where pin_memory pays: a copy from pinned memory on another stream overlaps the model's
compute. The step then only waits (on the compute stream, `wait_event`) for its batch's copy to have
finished; that wait is what the step timer's copy mark measures (the copy left exposed). The copy
itself is timed on the side stream between its `Staged` events (the row's `side_copy_s`), so copy
time hidden behind compute is still recorded.
The batch's memory was allocated on the side stream and is used on the compute stream: `record_stream`
keeps the caching allocator from handing it out again before the compute stream is done with it.
Without CUDA there is no side stream: the batches pass through and the row says it was inactive.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from pinsweep.input.batch import tensors
from pinsweep.input.stage import Input


@dataclass
class Staged:
    """A batch whose copy to the device was queued on the side stream; `ready` marks its end there.
    It moves itself (`.to`), as the batch walk (pinsweep.input.batch) asks of such objects: to the
    compute stream, by waiting for its copy. `count` is its items, counted on the host before the copy."""

    batch: Any
    count: int
    start: torch.cuda.Event
    ready: torch.cuda.Event

    def arrive(self, stream: torch.cuda.Stream) -> Any:
        """The batch, usable on `stream` (the compute stream) once its copy has finished."""
        stream.wait_event(self.ready)
        for tensor in tensors(self.batch):
            tensor.record_stream(stream)
        return self.batch

    def to(self, device: torch.device, non_blocking: bool = False) -> Any:
        return self.arrive(torch.cuda.current_stream(device))


class DevicePrefetcher(Input):
    """Iterates `source`, issuing each batch's copy (`move`: the trainer's host-to-device copy, nvJPEG
    decoding included, of any batch structure) on a side stream `depth` batches before it is handed
    out as a Staged batch; `count` counts each on the host first."""

    def __init__(self, source: Input, depth: int, device: torch.device, move: Callable, count: Callable):
        self.source, self.depth, self.device, self.move, self.count = source, depth, device, move, count
        self.stream = torch.cuda.Stream(device)
        self.num_workers = source.num_workers

    def __len__(self) -> int:
        return len(self.source)

    def batches_per_epoch(self) -> int | None:
        return self.source.batches_per_epoch()

    def epoch_tally(self) -> Any:
        return self.source.epoch_tally()

    @property
    def ready_ahead(self) -> int:
        return self.source.ready_ahead + self.depth

    def shutdown(self) -> None:
        self.source.shutdown()

    def worker_pids(self) -> list[int]:
        return self.source.worker_pids()

    def _issue(self, batches: Iterator[Any], queue: deque[Staged]) -> None:
        try:
            batch = next(batches)
        except StopIteration:
            return
        items = self.count(batch)
        with torch.cuda.stream(self.stream):
            start = torch.cuda.Event(enable_timing=True)
            ready = torch.cuda.Event(enable_timing=True)
            start.record(self.stream)
            batch = self.move(batch)
            ready.record(self.stream)
        queue.append(Staged(batch, items, start, ready))

    def __iter__(self) -> Iterator[Staged]:
        batches = iter(self.source)
        queue: deque[Staged] = deque()
        for _ in range(self.depth):
            self._issue(batches, queue)
        while queue:
            self._issue(batches, queue)  # keep `depth` copies queued behind the one handed out
            yield queue.popleft()


class HeldUntilDone:
    """Objects kept referenced until the device has passed the point in its stream where they were
    handed in. torchvision's batched nvJPEG decode allocates its outputs on the current stream but
    writes them on a stream of its own that does not wait for the current one: memory freed by the
    previous batch, whose crops are still queued, could be decoded into before they read it. Holding
    each batch's decoded images until an event after their last use has completed keeps their memory
    out of the allocator until then. `new_event` makes an event that records on the current stream."""

    def __init__(self, new_event: Callable[[], Any]):
        self.new_event = new_event
        self.held: deque[tuple[Any, Any]] = deque()

    def hold(self, objects: Any) -> None:
        event = self.new_event()
        event.record()
        self.held.append((event, objects))
        while self.held and self.held[0][0].query():  # never blocks: drops only what the device is past
            self.held.popleft()


DECODED = HeldUntilDone(torch.cuda.Event)  # nvJPEG's decoded images (pinsweep.input.data.EncodedBatch)
