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


@dataclass
class Staged:
    """A batch whose copy to the device was queued on the side stream; `ready` marks its end there."""

    images: torch.Tensor
    labels: torch.Tensor
    start: torch.cuda.Event
    ready: torch.cuda.Event

    def __len__(self) -> int:
        return len(self.labels)

    def arrive(self, stream: torch.cuda.Stream) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch, usable on `stream` (the compute stream) once its copy has finished."""
        stream.wait_event(self.ready)
        for tensor in (self.images, self.labels):
            tensor.record_stream(stream)
        return self.images, self.labels


class DevicePrefetcher:
    """Iterates `loader`, issuing each batch's copy (`move`: the trainer's host-to-device step, nvJPEG
    decoding included) on a side stream `depth` batches before it is handed out, as (Staged, labels)."""

    def __init__(self, source: Any, depth: int, device: torch.device, move: Callable[..., tuple]):
        self.source, self.depth, self.device, self.move = source, depth, device, move
        self.stream = torch.cuda.Stream(device)
        # what train.py reads off a loader: how many batches its workers prefetch
        self.num_workers = getattr(source, "num_workers", 0)
        self.prefetch_factor = getattr(source, "prefetch_factor", None)

    def __len__(self) -> int:
        return len(self.source)

    def _issue(self, batches: Iterator[Any], queue: deque[Staged]) -> None:
        try:
            images, labels = next(batches)
        except StopIteration:
            return
        with torch.cuda.stream(self.stream):
            start = torch.cuda.Event(enable_timing=True)
            ready = torch.cuda.Event(enable_timing=True)
            start.record(self.stream)
            images, labels = self.move(images, labels)
            ready.record(self.stream)
        queue.append(Staged(images, labels, start, ready))

    def __iter__(self) -> Iterator[tuple[Staged, torch.Tensor]]:
        batches = iter(self.source)
        queue: deque[Staged] = deque()
        for _ in range(self.depth):
            self._issue(batches, queue)
        while queue:
            self._issue(batches, queue)  # keep `depth` copies queued behind the one handed out
            staged = queue.popleft()
            yield staged, staged.labels
