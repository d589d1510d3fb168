"""The step timer on a scripted device timeline: fake CUDA events with known timestamps prove which
clock the breakdown (and so the verdict) reads, without a GPU. Plus the CPU's own clock."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import deque

import pytest
import torch

from pinsweep.analysis.summarize import verdict
from pinsweep.job.timing import EventClock, StepTimer
from pinsweep.job.train import Trainer, steady_metrics

MS = 1e-3


class FakeStream:
    """A device timeline given in advance: each recorded event takes the next scripted time."""

    def __init__(self, times_s: list[float]):
        self.times_s = deque(times_s)


class FakeEvent:
    """torch.cuda.Event's timing interface; `query()` tells whether the fake device has reached it."""

    def __init__(self, finished: list[bool]):
        self.time_s = math.nan
        self.records = 0
        self.finished = finished  # shared switch: the whole fake device is done, or still busy

    def record(self, stream: FakeStream) -> None:
        self.time_s = stream.times_s.popleft()
        self.records += 1

    def query(self) -> bool:
        return self.finished[0]

    def elapsed_time(self, end: FakeEvent) -> float:
        return (end.time_s - self.time_s) * 1000.0  # milliseconds, as CUDA reports


class FakeHost:
    """A host clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_timer(gpu_times_s: list[float], pool_size: int = 6):
    made: list[FakeEvent] = []
    finished = [True]

    def new_event() -> FakeEvent:
        made.append(FakeEvent(finished))
        return made[-1]

    host = FakeHost()
    clock = EventClock(FakeStream(gpu_times_s), new_event, pool_size=pool_size)
    return StepTimer(torch.device("cuda"), clock=clock, host_clock=host), host, made, finished


def run_steps(timer: StepTimer, host: FakeHost, steps: int, host_wait_s: float) -> None:
    timer.resume()
    for _ in range(steps):
        timer.wait_started()
        host.now += host_wait_s  # blocked in next(loader)
        timer.batch_ready()
        timer.copied()
        timer.computed()


def gpu_timeline(steps: int, idle_s: float, copy_s: float, compute_s: float) -> list[float]:
    """Event times in record order: the window's start mark, then e0, e1, e2 of each step, the GPU
    idle for `idle_s` before each step's copy."""
    times, now = [0.0], 0.0
    for _ in range(steps):
        now += idle_s
        times.append(now)
        now += copy_s
        times.append(now)
        now += compute_s
        times.append(now)
    return times


def breakdown(timer: StepTimer) -> dict:
    times = timer.times()
    return steady_metrics(times, 0, 32 * len(times.stall_s), float(times.step_s.sum()))


def test_host_running_ahead_is_not_an_input_stall():
    # the host blocks 50 ms per batch in the loader, but the GPU, 60 ms of compute behind, never idles:
    # every copy starts where the previous compute ended (e0[i] == e2[i-1])
    timer, host, _, _ = fake_timer(gpu_timeline(20, idle_s=0.0, copy_s=1 * MS, compute_s=60 * MS))
    run_steps(timer, host, 20, host_wait_s=50 * MS)
    row = breakdown(timer)
    assert row["host_wait_s"] == pytest.approx(20 * 50 * MS)
    assert row["host_wait_s"] / row["steady_s"] > 0.8
    assert row["data_wait_s"] == pytest.approx(0.0, abs=1e-12)
    assert row["compute_s"] == pytest.approx(20 * 60 * MS)
    # the verdict, for a config running at its compute-only ceiling: the GPU's timeline says nothing
    # but compute limits it; had the host's wait been read as the stall, it would say loader-bound
    copy_frac = row["copy_s"] / row["steady_s"]
    assert verdict(1.0, row["data_wait_s"] / row["steady_s"], copy_frac) == "compute-bound"
    assert verdict(1.0, row["host_wait_s"] / row["steady_s"], copy_frac) == "loader-bound"


def test_gpu_idle_waiting_for_data_is_the_input_stall():
    timer, host, _, _ = fake_timer(gpu_timeline(20, idle_s=30 * MS, copy_s=2 * MS, compute_s=20 * MS))
    run_steps(timer, host, 20, host_wait_s=31 * MS)
    times = timer.times()
    assert times.stall_s == pytest.approx([30 * MS] * 20)
    assert times.copy_s == pytest.approx([2 * MS] * 20)
    assert times.compute_s == pytest.approx([20 * MS] * 20)
    row = breakdown(timer)
    assert row["data_wait_s"] / row["steady_s"] == pytest.approx(30 / 52)
    assert verdict(0.5, row["data_wait_s"] / row["steady_s"], row["copy_s"] / row["steady_s"]) == "loader-bound"
    # the parts add up to the steps' time exactly: the verdict's fractions cannot exceed the whole
    assert row["data_wait_s"] + row["copy_s"] + row["compute_s"] == pytest.approx(row["steady_s"], rel=1e-12)


def test_events_are_recycled_once_read_and_steps_are_read_only_when_finished():
    timer, host, made, finished = fake_timer(gpu_timeline(50, idle_s=0.0, copy_s=MS, compute_s=MS), pool_size=6)
    run_steps(timer, host, 30, host_wait_s=0.0)
    assert len(made) == 6  # each step's marks went back to the pool once read: no event made per step
    assert timer.drain() == 30
    finished[0] = False  # the GPU falls behind: nothing is read, never waited for
    for _ in range(5):
        timer.wait_started()
        timer.batch_ready()
        timer.copied()
        timer.computed()
    assert timer.drain() == 30 and len(timer) == 35
    assert len(made) > 6  # the pool grew, but only because it ran empty
    finished[0] = True
    assert timer.drain() == 35
    assert len(timer.times().step_s) == 35


def test_the_first_step_without_a_mark_before_it_stalls_for_its_host_wait():
    timer, host, _, _ = fake_timer([1.0, 1.002, 1.010])
    timer.wait_started()
    host.now += 0.25
    timer.batch_ready()
    timer.copied()
    timer.computed()
    times = timer.times()
    assert times.stall_s[0] == pytest.approx(0.25)
    assert times.step_s[0] == pytest.approx(0.26)


def test_on_the_cpu_the_copy_is_only_the_copy(compose_cfg):
    cfg = compose_cfg("model=tiny", "data=synthetic", "loader.non_blocking=false", "train.channels_last=false")
    trainer = Trainer(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 10)), cfg, torch.device("cpu"))
    images = torch.randint(0, 256, (4, 3, 2, 2), dtype=torch.uint8)
    copied, _ = trainer.to_device((images, torch.zeros(4, dtype=torch.long)))
    # the uint8 -> float conversion is left to the step (compute): a no-op .to(cpu) is all copy does
    assert copied.dtype == torch.uint8 and copied.data_ptr() == images.data_ptr()
    assert trainer.prepare((copied, None))[0].dtype == torch.float32


def test_the_stop_rule_imports_scipy_before_the_clock_starts():
    """Its t quantile (scipy.special) is imported when the rule is made, not at its first look inside
    the timed window; scipy.stats (0.6 s of CPU) is never needed."""
    script = (
        "import sys, math\n"
        "from pinsweep.job.timing import StopRule\n"
        "assert 'scipy.special' not in sys.modules\n"
        "StopRule(0.02, 100, math.inf)\n"
        "assert 'scipy.special' in sys.modules and 'scipy.stats' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_nothing_syncs_the_device_inside_the_timed_window(compose_cfg, tiny_job, monkeypatch):
    """Issue 30, item 3: a sync at each epoch boundary drained the GPU's queue before workers stopped and
    started, charging non-persistent workers an overlap a real loop has. Syncs are counted through the
    one function that issues them: only at the window's two ends (and before it)."""
    from pinsweep.input.data import build_datasets
    from pinsweep.input.loader import build_input
    from pinsweep.job import train as job
    from pinsweep.job.model import build_model

    cfg = compose_cfg(*tiny_job, "train.epochs=3")  # 4 steps an epoch; the first epoch is the warm-up
    events = []
    monkeypatch.setattr(job, "synchronize", lambda device: events.append("sync"))
    computed = StepTimer.computed
    monkeypatch.setattr(StepTimer, "computed", lambda timer: (computed(timer), events.append("step")))
    device = torch.device("cpu")
    train_input = build_input(build_datasets(cfg.data)[0], cfg.data, cfg.loader, device, True, 1)
    metrics, _ = job.train(job.Trainer(build_model(cfg.model), cfg, device), train_input, cfg)
    steps_before_each_sync = [events[:i].count("step") for i, event in enumerate(events) if event == "sync"]
    assert metrics["warmup_steps"] == 4 and metrics["steps"] == 12
    assert not [n for n in steps_before_each_sync if 4 < n < 12], steps_before_each_sync
    assert 4 in steps_before_each_sync and 12 in steps_before_each_sync  # the window's two ends
    assert len(metrics["epoch_times_s"]) == 3 and all(s > 0 for s in metrics["epoch_times_s"])


def test_the_device_memory_peak_is_read_when_training_ends(compose_cfg, tiny_job, monkeypatch):
    """Issue 30, item 4: peak_device_mb was read after the compute ceiling (a deep copy of the model with
    fresh optimizer state), the loader ceiling and evaluation: the job's peak, not training's."""
    from pinsweep.job import train as job

    calls = []

    def recorded(name, function):
        def call(*args, **kwargs):
            calls.append(name)
            return function(*args, **kwargs)

        return call

    for name in ("train", "device_peak_mb", "compute_ceiling", "loader_ceiling"):
        monkeypatch.setattr(job, name, recorded(name, getattr(job, name)))
    job.run_job(compose_cfg(*tiny_job, "train.evaluate=false"))
    assert calls[:3] == ["train", "device_peak_mb", "compute_ceiling"], calls


def test_amp_says_when_its_grad_scaler_syncs_the_host_every_step(monkeypatch):
    """Issue 30, item 5: with AMP on CUDA, GradScaler.step reads found_inf on the host (.item()) before a
    plain optimizer's step: a sync per step that removes the overlap pin_memory and non_blocking act
    through. A fused optimizer takes the scale and found_inf on the device: no sync. The sync is seen
    by counting Tensor.item calls in GradScaler.step (an enabled scaler on the CPU, as CUDA runs it)."""
    from pinsweep.job.train import scaler_syncs_host

    model = torch.nn.Linear(4, 2)
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    for optimizer, syncs in (
        (torch.optim.Adam(model.parameters()), True),
        (torch.optim.Adam(model.parameters(), fused=True), False),
    ):
        reads, item = [], torch.Tensor.item
        monkeypatch.setattr(
            torch.Tensor, "item", lambda tensor, reads=reads, item=item: (reads.append(1), item(tensor))[1]
        )
        scaler.scale(model(torch.randn(3, 4)).sum()).backward()
        scaler.step(optimizer)
        scaler.update()
        monkeypatch.undo()
        assert bool(reads) is syncs and scaler_syncs_host(scaler, optimizer) is syncs
    assert not scaler_syncs_host(torch.amp.GradScaler("cpu", enabled=False), torch.optim.Adam(model.parameters()))
