"""How time is measured, and nothing else.

On the CPU every operation is synchronous, so `time.perf_counter()` around each part of a step is
exact. On CUDA the host only queues work: reading a host clock after a kernel launch measures the
launch, and calling `torch.cuda.synchronize()` to make it honest would stall the queue every step and
erase exactly the copy/compute overlap that pin_memory + non_blocking exist to create. So on CUDA each
step records CUDA events (copy start, copy end, compute end) into the stream, with no host sync in the
loop, and the events are read after the device is synchronized once, at the end of the timed region.

What each figure means:
- data wait: host seconds blocked in `next(loader)` (the loader is a host-side producer on every
  device, so a host clock is the right one). The first step of an epoch also includes `iter(loader)`,
  i.e. worker start-up unless persistent_workers.
- copy: `.to(device)` of images and labels: host clock on CPU (there it is a no-op), GPU time between
  the events around it on CUDA.
- compute: forward, loss, backward and optimizer step: host clock on CPU, GPU time on CUDA.
- step: from one step's compute end to the next (GPU timeline on CUDA), i.e. the throughput-defining
  interval, including any time the device sat idle waiting for data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued device work; a no-op on the CPU. Call only outside the per-step loop."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class StepTimes:
    """Per-step seconds, one entry per step, in step order."""

    wait_s: np.ndarray
    copy_s: np.ndarray
    compute_s: np.ndarray
    step_s: np.ndarray

    def window(self, start: int) -> StepTimes:
        return StepTimes(self.wait_s[start:], self.copy_s[start:], self.compute_s[start:], self.step_s[start:])


class StepTimer:
    """Marks the boundaries of each training step; see the module docstring for what is measured."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.wait_s: list[float] = []
        self.marks: list[tuple] = []  # per step: (copy start, copy end, compute end)
        self._wait_start = 0.0
        self._step: list = []

    def _now(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def wait_started(self) -> None:
        self._wait_start = time.perf_counter()

    def batch_ready(self) -> None:
        self.wait_s.append(time.perf_counter() - self._wait_start)
        self._step = [self._now()]

    def copied(self) -> None:
        self._step.append(self._now())

    def computed(self) -> None:
        self._step.append(self._now())
        self.marks.append(tuple(self._step))

    def __len__(self) -> int:
        return len(self.marks)

    def _seconds(self, a, b) -> float:
        return a.elapsed_time(b) / 1000.0 if self.cuda else b - a

    def completed(self) -> int:
        """How many steps can be read without waiting for the device (all of them on the CPU)."""
        if not self.cuda:
            return len(self.marks)
        done = len(self.marks)
        while done and not self.marks[done - 1][2].query():
            done -= 1
        return done

    def times(self, upto: int | None = None) -> StepTimes:
        """Step times of the first `upto` steps (default all; on CUDA sync the device first)."""
        marks = self.marks[: len(self.marks) if upto is None else upto]
        copy = [self._seconds(m[0], m[1]) for m in marks]
        compute = [self._seconds(m[1], m[2]) for m in marks]
        step = []
        for i, m in enumerate(marks):
            if i == 0:
                step.append(self.wait_s[0] + self._seconds(m[0], m[2]))
            else:
                step.append(self._seconds(marks[i - 1][2], m[2]))
        return StepTimes(np.asarray(self.wait_s[: len(marks)]), np.asarray(copy), np.asarray(compute), np.asarray(step))
