"""CUDA paths: pinned batches, non-blocking copies, event timing, device memory. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from pinsweep.app import run_and_record
from pinsweep.timing import StepTimer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; this machine has no GPU"),
]


def test_event_timer_reads_gpu_times_after_one_sync():
    device = torch.device("cuda")
    timer = StepTimer(device)
    weights = torch.randn(2048, 2048, device=device)
    for _ in range(5):
        timer.wait_started()
        host = torch.randn(256, 2048).pin_memory()
        timer.batch_ready()
        batch = host.to(device, non_blocking=True)
        timer.copied()
        (batch @ weights).sum()
        timer.computed()
    torch.cuda.synchronize()
    times = timer.times()
    assert timer.completed() == 5
    assert (times.copy_s > 0).all() and (times.compute_s > 0).all()


def test_pinned_non_blocking_job_records_an_active_pin_and_device_memory(compose_cfg, tmp_path):
    cfg = compose_cfg(
        "data=synthetic",
        "model=tiny",
        "data.train_size=1024",
        "data.test_size=256",
        "train.epochs=2",
        "train.ceiling_steps=3",
        "loader.pin_memory=true",
        "loader.non_blocking=true",
        "loader.num_workers=2",
    )
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["device"].startswith("cuda")
    assert row["pin_memory_active"] is True
    assert row["peak_device_mb"] > 0
    assert row["env.device_name"]
    assert row["copy_s"] > 0 and row["compute_s"] > 0
