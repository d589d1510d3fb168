"""CUDA paths: pinned batches, asynchronous copies, the verdict from the GPU's own timeline, the job
device's stream, device memory. Skipped without CUDA; benchmarks/gpu_check.sh runs them on a GPU."""

from __future__ import annotations

import time

import pytest
import torch

from pinsweep.analysis.summarize import STALL_FRACTION
from pinsweep.app import run_and_record
from pinsweep.job.timing import EVENT_POOL, StepTimer
from pinsweep.job.train import Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; this machine has no GPU"),
]

GPU_JOB = (
    "data=synthetic",
    "model=tiny",
    "data.train_size=2048",
    "data.test_size=256",
    "loader.batch_size=256",
    "train.epochs=2",
    "train.ceiling_steps=5",
    "train.evaluate=false",
    "isolate=false",
)


def test_event_timer_reads_gpu_times_and_recycles_its_events():
    device = torch.device("cuda", torch.cuda.current_device())
    timer = StepTimer(device)
    weights = torch.randn(2048, 2048, device=device)
    timer.resume()
    for _ in range(5):
        timer.wait_started()
        host = torch.randn(256, 2048).pin_memory()
        timer.batch_ready()
        batch = host.to(device, non_blocking=True)
        timer.copied()
        (batch @ weights).sum()
        timer.computed()
    torch.cuda.synchronize(device)
    assert timer.drain() == 5
    times = timer.times()
    assert (times.copy_s > 0).all() and (times.compute_s > 0).all()
    assert times.step_s == pytest.approx(times.stall_s + times.copy_s + times.compute_s)
    # every event went back to the pool once read, but the last step's end (the next stall's start)
    assert len(timer.clock.pool) == EVENT_POOL - 1


@pytest.mark.parametrize("pin_memory", [True, False])
def test_batches_the_training_loop_receives_are_pinned_when_asked(compose_cfg, tmp_path, monkeypatch, pin_memory):
    pinned = []
    copy_to_device = Trainer.to_device

    def watch(self, batch):
        images, _ = batch
        pinned.append(images.is_pinned())
        return copy_to_device(self, batch)

    monkeypatch.setattr(Trainer, "to_device", watch)
    cfg = compose_cfg(*GPU_JOB, f"loader.pin_memory={str(pin_memory).lower()}", "loader.num_workers=2")
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    assert len(pinned) >= row["steps"]
    assert all(flag == pin_memory for flag in pinned)


def test_pinned_non_blocking_copy_returns_before_the_gpu_has_finished_it(compose_cfg):
    cfg = compose_cfg(*GPU_JOB, "loader.pin_memory=true", "loader.non_blocking=true")
    device = torch.device("cuda", torch.cuda.current_device())
    trainer = Trainer(torch.nn.Linear(1, 1), cfg, device)
    images = torch.empty(256 * 2**20, dtype=torch.uint8).pin_memory()  # 256 MiB: milliseconds over PCIe
    labels = torch.zeros(1, dtype=torch.long).pin_memory()
    trainer.to_device((images, labels))  # the caching allocator now holds the destination's memory
    torch.cuda.synchronize(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    host_start = time.perf_counter()
    start.record()
    trainer.to_device((images, labels))
    end.record()
    host_s = time.perf_counter() - host_start
    finished_when_host_returned = end.query()
    torch.cuda.synchronize(device)
    gpu_s = start.elapsed_time(end) / 1000.0
    assert not finished_when_host_returned
    assert host_s < 0.5 * gpu_s


def test_a_planted_slow_dataset_is_loader_bound_on_the_gpu_timeline(compose_cfg, tmp_path):
    # 2 ms per sample, 256 samples a batch, no workers: the GPU idles ~0.5 s before every step
    cfg = compose_cfg(*GPU_JOB, "data.train_size=1024", "data.sample_delay_ms=2", "loader.num_workers=0")
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["data_wait_s"] / row["steady_s"] >= STALL_FRACTION
    assert row["host_wait_s"] > 0
    parts = row["data_wait_s"] + row["copy_s"] + row["compute_s"]
    assert parts == pytest.approx(row["steady_s"], rel=0.01)


def test_a_device_resident_pipeline_is_not_loader_bound(compose_cfg, tmp_path):
    # batches drawn on the GPU and a real network: the queue never runs dry between steps
    cfg = compose_cfg(*GPU_JOB, "model=resnet18", "data.train_size=4096", "data.pipeline=device")
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["data_wait_s"] / row["steady_s"] < STALL_FRACTION
    assert row["copy_s"] / row["steady_s"] < STALL_FRACTION
    parts = row["data_wait_s"] + row["copy_s"] + row["compute_s"]
    assert parts == pytest.approx(row["steady_s"], rel=0.01)


@pytest.fixture
def current_device_restored():
    current = torch.cuda.current_device()
    yield
    torch.cuda.set_device(current)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_events_are_recorded_on_the_job_devices_stream(compose_cfg, tmp_path, current_device_restored):
    torch.cuda.set_device(0)  # the current device is not the job's
    device = torch.device("cuda", 1)
    timer = StepTimer(device)
    assert timer.clock.stream.device == device
    weights = torch.randn(4096, 4096, device=device)
    timer.resume()
    for _ in range(3):
        timer.wait_started()
        timer.batch_ready()
        timer.copied()
        weights @ weights  # milliseconds of work, on cuda:1 only
        timer.computed()
    torch.cuda.synchronize(device)
    times = timer.times()
    # events on cuda:0's idle stream would time nothing here
    assert (times.compute_s > 1e-4).all()
    recorded = [event for event in timer.clock.pool if event.device is not None]
    assert recorded and all(event.device == device for event in recorded)

    row = run_and_record(compose_cfg(*GPU_JOB, "train.device=cuda:1"), tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["device"] == "cuda:1" and row["compute_s"] > 0


def test_pinned_non_blocking_job_records_an_active_pin_and_device_memory(compose_cfg, tmp_path):
    cfg = compose_cfg(
        *GPU_JOB, "train.evaluate=true", "loader.pin_memory=true", "loader.non_blocking=true", "loader.num_workers=2"
    )
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["device"].startswith("cuda")
    assert row["pin_memory_active"] is True
    assert row["peak_device_mb"] > 0
    assert row["env.device_name"]
    assert row["copy_s"] > 0 and row["compute_s"] > 0 and row["host_wait_s"] > 0
    assert row["compute_ceiling_ci_rel"] > 0 and row["loader_ceiling_ci_rel"] > 0


def test_the_timed_window_holds_no_device_sync_and_epochs_are_timed_on_the_gpu(compose_cfg, tmp_path, monkeypatch):
    """Issue 30, item 3, on a GPU: torch.cuda.synchronize is called only before and at the ends of the
    timed window; the epoch times come from CUDA events."""
    from pinsweep.job import train as job

    calls, steps = [], []
    synchronize = torch.cuda.synchronize
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args: (calls.append(len(steps)), synchronize(*args)))
    computed = StepTimer.computed
    monkeypatch.setattr(StepTimer, "computed", lambda timer: (computed(timer), steps.append(1)))
    metrics = job.run_job(compose_cfg(*GPU_JOB, "train.epochs=3", "train.ceiling_steps=0"))
    per_epoch = metrics["steps"] // 3
    inside = [n for n in calls if per_epoch < n < metrics["steps"]]
    assert not inside, calls
    assert len(metrics["epoch_times_s"]) == 3 and min(metrics["epoch_times_s"]) > 0


def test_training_s_device_peak_is_below_the_jobs_with_its_ceilings(compose_cfg, tmp_path):
    """Issue 30, item 4: the compute ceiling trains a deep copy of the model with fresh optimizer state,
    so the job's peak exceeds training's; the row's peak_device_mb is training's."""
    row = run_and_record(compose_cfg(*GPU_JOB, "model=resnet18", "data.train_size=512"), tmp_path)
    assert row["status"] == "ok", row["error"]
    assert 0 < row["peak_device_mb"] < row["peak_device_job_mb"]


@pytest.mark.parametrize("fused", [False, True])
def test_amp_on_cuda_records_whether_its_scaler_syncs_every_step(compose_cfg, tmp_path, fused):
    """Issue 30, item 5: Adam under AMP syncs the host every step (found_inf read with .item()); fused
    Adam takes found_inf on the device."""
    extra = ("+train.optimizer.fused=true",) if fused else ()
    row = run_and_record(compose_cfg(*GPU_JOB, "train.amp=true", *extra), tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["amp_host_sync"] is (not fused)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_a_two_rank_job_trains_each_rank_on_its_own_gpu(compose_cfg, tmp_path):
    """Issue 30, item 1, for real: every multi-GPU job failed at start."""
    from pinsweep.record import RANKS_FILE

    row = run_and_record(compose_cfg(*GPU_JOB, "train.ranks=2", "train.device=cuda"), tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["ranks"] == 2 and (tmp_path / RANKS_FILE).exists()
