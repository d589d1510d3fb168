"""How time is measured, and when to stop measuring.

On the CPU every operation is synchronous, so `time.perf_counter()` at each boundary of a step is
exact. On CUDA the host only queues work and runs ahead of the GPU: a host clock read after a kernel
launch measures the launch, and `torch.cuda.synchronize()` in every step would stall the queue and
erase exactly the copy/compute overlap that pin_memory + non_blocking exist to create. So on CUDA
each boundary is a CUDA event recorded into the job device's current stream (`cuda:N`'s, not the
current device's), with no host sync in the loop. Events come from a preallocated pool and go back
to it once the step they mark has finished on the GPU (`event.query()`, which never blocks) and its
times have been read; the pool grows only when it runs empty.

Each step has three marks on the device's own timeline (the host clock on the CPU, the GPU's on
CUDA): copy start (e0, right after the host got the batch), copy end (e1, after `.to(device)`) and
compute end (e2). What each figure means, for step i:

- stall (the row's `data_wait_s`): e2[i-1] -> e0[i], the time the device sat idle between finishing
  one step and starting the next step's copy: waiting for the loader, epoch boundaries (worker
  start-up and shut-down), and the loop's own bookkeeping (microseconds). On CUDA this is the GPU's
  input stall: while the host runs ahead, the host may block in `next(loader)` for a long time while
  the GPU is still busy with queued steps, and none of that is a stall. After a sync (the start of
  the steady-state window) or after the notebook protocol's train-accuracy pass, it counts from a
  fresh mark instead, so that neither is counted as waiting for data.
- host wait (`host_wait_s`): host seconds blocked in `next(loader)`, on every device; the first step
  of an epoch includes `iter(loader)`, i.e. worker start-up unless persistent_workers. On the CPU it
  is the stall without the bookkeeping and epoch teardown.
- copy (`copy_s`): e0 -> e1, `.to(device)` of the whole batch, whatever its structure, and nothing else
  (pinsweep.input.batch.Mover; on the CPU a no-op, so ~0, unless channels_last re-lays 4-D float images;
  converting uint8 to float is compute). With data.decoder=nvjpeg it is the GPU's decode of the
  batch's files. With loader.device_prefetch the copy ran earlier on a side stream (pinsweep.input.prefetch):
  e0 -> e1 is then the compute stream's wait for it, the copy left exposed, and the copy's own time
  on the side stream is the row's `side_copy_s`.
- compute (`compute_s`): e1 -> e2: the uint8 -> float conversion and memory format, forward, loss,
  backward and optimizer step.
- step: stall + copy + compute = e2[i-1] -> e2[i] exactly: the throughput-defining interval.

Adaptive precision (`StopRule`): time steps until the 95% CI half-width of the mean step time
(`stats.mean_ci_rel`) is within a target, after a minimum number of steps, or until a time budget is
spent; the CI is computed at step counts that grow by 10% each time, so all checks together cost
time linear in the number of steps.
"""

from __future__ import annotations

import importlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pinsweep.analysis import stats

EVENT_POOL = 96  # three events a step: enough for the GPU to run 32 steps behind the host
CHECK_GROWTH = 1.1  # the next CI check after 10% more steps (and at least CHECK_MIN_GAP more)
CHECK_MIN_GAP = 10


def synchronize(device: torch.device) -> None:
    """Wait for queued device work; a no-op on the CPU. Call only outside the per-step loop."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -------------------------------------------------------------------------------------------- clocks


class HostClock:
    """The CPU's timeline: everything is synchronous, so a mark is a clock reading, final at once."""

    def __init__(self, now: Callable[[], float] = time.perf_counter):
        self.now = now

    def mark(self) -> float:
        return self.now()

    def done(self, mark: float) -> bool:
        return True

    def seconds(self, start: float, end: float) -> float:
        return end - start

    def recycle(self, mark: float) -> None:
        pass


class EventClock:
    """A device's timeline: a mark is an event recorded into `stream`; its time is known once the
    device has reached it. `new_event` makes an event (a timing CUDA event; tests pass fakes)."""

    def __init__(self, stream: Any, new_event: Callable[[], Any], pool_size: int = EVENT_POOL):
        self.stream = stream
        self.new_event = new_event
        self.pool = [new_event() for _ in range(pool_size)]

    def mark(self) -> Any:
        event = self.pool.pop() if self.pool else self.new_event()
        event.record(self.stream)
        return event

    def done(self, event: Any) -> bool:
        return event.query()

    def seconds(self, start: Any, end: Any) -> float:
        return start.elapsed_time(end) / 1000.0

    def recycle(self, event: Any) -> None:
        self.pool.append(event)


def device_clock(device: torch.device) -> HostClock | EventClock:
    """The clock of the device the job trains on."""
    if device.type != "cuda":
        return HostClock()
    return EventClock(torch.cuda.current_stream(device), lambda: torch.cuda.Event(enable_timing=True))


# ------------------------------------------------------------------------------------------- steps


@dataclass
class StepTimes:
    """Per-step seconds, one entry per step, in step order (see the module docstring)."""

    stall_s: np.ndarray
    host_wait_s: np.ndarray
    copy_s: np.ndarray
    compute_s: np.ndarray

    @property
    def step_s(self) -> np.ndarray:
        return self.stall_s + self.copy_s + self.compute_s

    def window(self, start: int) -> StepTimes:
        return StepTimes(self.stall_s[start:], self.host_wait_s[start:], self.copy_s[start:], self.compute_s[start:])


class StepTimer:
    """Marks the boundaries of each step and reads their times as soon as the device has finished
    them; see the module docstring for what is measured. `clock` defaults to the device's."""

    def __init__(self, device: torch.device, clock: Any = None, host_clock: Callable[[], float] = time.perf_counter):
        self.clock = clock if clock is not None else device_clock(device)
        self.host_clock = host_clock
        self.host_wait = 0.0  # the last step's
        self._wait_start = 0.0
        self._copy_start: Any = None
        self._copy_end: Any = None
        self._gap_start: Any = None  # the mark the next step's stall counts from
        self._pending: deque[tuple] = deque()  # marks of steps the device may not have finished
        self._steps = 0
        self._read: dict[str, list[float]] = {"stall": [], "host_wait": [], "copy": [], "compute": [], "step": []}

    def resume(self) -> None:
        """The next step's stall counts from now, not from the last step's compute end."""
        self._gap_start = self.clock.mark()

    def wait_started(self) -> None:
        self._wait_start = self.host_clock()

    def batch_ready(self) -> None:
        self.host_wait = self.host_clock() - self._wait_start
        self._copy_start = self.clock.mark()

    def copied(self) -> None:
        self._copy_end = self.clock.mark()

    def computed(self) -> None:
        end = self.clock.mark()
        self._pending.append((self._gap_start, self._copy_start, self._copy_end, end, self.host_wait))
        self._gap_start = end
        self._steps += 1
        self.drain()

    def __len__(self) -> int:
        """Steps marked so far (read or not)."""
        return self._steps

    def drain(self) -> int:
        """Read every step the device has finished, oldest first, without waiting for the others,
        and recycle marks no later step needs; returns how many steps have been read."""
        clock, read = self.clock, self._read
        while self._pending and clock.done(self._pending[0][3]):
            gap_start, copy_start, copy_end, end, host_wait = self._pending.popleft()
            # the first step has nothing before it on the device's timeline: its stall is the host wait
            stall = host_wait if gap_start is None else clock.seconds(gap_start, copy_start)
            copy, compute = clock.seconds(copy_start, copy_end), clock.seconds(copy_end, end)
            for name, seconds in zip(read, (stall, host_wait, copy, compute, stall + copy + compute)):
                read[name].append(seconds)
            for mark in (gap_start, copy_start, copy_end):  # `end` is the next step's gap start
                if mark is not None:
                    clock.recycle(mark)
        return len(read["step"])

    def step_s(self, start: int = 0) -> np.ndarray:
        """Step seconds of the steps read so far, from step `start` on."""
        return np.asarray(self._read["step"][start:])

    def times(self) -> StepTimes:
        """Every step read so far; synchronize the device first to read them all."""
        self.drain()
        read = self._read
        return StepTimes(*(np.asarray(read[name]) for name in ("stall", "host_wait", "copy", "compute")))


# -------------------------------------------------------------------------------------- stopping


class StopRule:
    """When to stop timing steps: once the relative 95% CI half-width of the mean step time is within
    `target` with at least `min_steps` steps, or once `budget_s` seconds are spent.

    The CI is checked when the step count reaches `next_check`, which then grows by 10%: the checks
    together cost time linear in the steps, and each check sees the steps read by then (on CUDA a
    few may still be running). `ci_rel` is the precision at the last check."""

    def __init__(self, target: float, min_steps: int, budget_s: float):
        self.target, self.min_steps, self.budget_s = target, min_steps, budget_s
        self.next_check = max(min_steps, 2)
        self.ci_rel = math.inf
        # the CI's t quantile comes from scipy.special (pinsweep.analysis.stats): import it now, before any
        # step is timed
        importlib.import_module("scipy.special")

    def out_of_time(self, elapsed_s: float) -> bool:
        return elapsed_s >= self.budget_s

    def due(self, steps: int) -> bool:
        return steps >= self.next_check

    def precise(self, step_s: np.ndarray) -> bool:
        """Check the precision of these step times; call when `due`."""
        self.next_check = max(self.next_check + CHECK_MIN_GAP, math.ceil(self.next_check * CHECK_GROWTH))
        self.ci_rel = stats.mean_ci_rel(step_s)
        return len(step_s) >= self.min_steps and self.ci_rel <= self.target
