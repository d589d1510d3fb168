"""Planted costs (issue 8, acceptance 3): a dataset that sleeps a known time per sample and a model that
sleeps a known time per forward pass; the row's data wait, compute and ceilings must find them.
Sleeps, not arithmetic, so that the planted costs hold on a busy 2-core machine."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import torch
from torch import nn

from pinsweep.app import run_and_record
from pinsweep.input.data import build_datasets
from pinsweep.input.loader import build_input
from pinsweep.job.model import build_model
from pinsweep.job.train import Trainer, train

SAMPLE_DELAY_MS = 40.0  # few, long sleeps: each overshoots by ~0.5 ms on this VM under load
FORWARD_DELAY_MS = 60.0
BATCH = 2
TOLERANCE = 0.08


class SleepyNet(nn.Module):
    """A linear classifier whose forward pass also sleeps `delay_ms`: a known compute cost per step."""

    def __init__(self, num_classes: int = 10, delay_ms: float = FORWARD_DELAY_MS):
        super().__init__()
        self.delay_s = delay_ms / 1000.0
        self.head = nn.Linear(3 * 32 * 32, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay_s)
        return self.head(images.flatten(1))


@pytest.fixture(autouse=True)
def one_intra_op_thread():
    """Two intra-op threads on two cores that other processes share wait for each other at every
    parallel op: measured here, the linear layer's 1 ms step took 50 ms while another test ran. The
    planted costs are sleeps; one thread keeps the real work around them negligible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planted(*overrides: str) -> tuple[str, ...]:
    return (
        "data=synthetic",
        f"data.sample_delay_ms={SAMPLE_DELAY_MS}",
        "data.test_size=16",
        "model=custom",
        f"model._target_={__name__}.SleepyNet",
        f"+model.kwargs.delay_ms={FORWARD_DELAY_MS}",
        f"loader.batch_size={BATCH}",
        "train.evaluate=false",
        "train.ceiling_steps=20",
        "train.ceiling_budget_s=5",  # room to reach the 2% target that the first test asserts
        "train.device=cpu",
        "isolate=false",
        *overrides,
    )


def fetch_seconds(cfg, batches: int) -> float:
    """Seconds to fetch `batches` batches from a fresh loader built as the job builds it, clock first."""
    train_set, _ = build_datasets(cfg.data)
    loader = build_input(train_set, cfg.data, cfg.loader, torch.device("cpu"), True, cfg.train.seed)
    start = time.perf_counter()
    while batches:
        for _ in loader:
            batches -= 1
            if not batches:
                break
    return time.perf_counter() - start


def loader_rate(cfg, epochs: int = 2) -> float:
    """images/s of the job's own loader, measured plainly: one epoch and 1 + `epochs` epochs from fresh
    loaders; the difference leaves out what both pay once (worker start-up, filling the prefetch queue)
    and keeps what every epoch pays."""
    steps = cfg.data.train_size // BATCH
    extra = fetch_seconds(cfg, (1 + epochs) * steps) - fetch_seconds(cfg, steps)
    return epochs * steps * BATCH / extra


def test_planted_costs_are_found_in_the_breakdown_and_the_ceilings(compose_cfg, tmp_path):
    cfg = compose_cfg(*planted("data.train_size=16", "train.epochs=3", "loader.num_workers=0"))
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    steps = row["steps_timed"]
    assert steps == 16  # 8 steps an epoch, the first epoch is the warm-up
    # no workers: every step waits for BATCH samples, one after another
    assert row["data_wait_s"] / steps == pytest.approx(BATCH * SAMPLE_DELAY_MS / 1000, rel=TOLERANCE)
    assert row["host_wait_s"] / steps == pytest.approx(BATCH * SAMPLE_DELAY_MS / 1000, rel=TOLERANCE)
    assert row["compute_s"] / steps == pytest.approx(FORWARD_DELAY_MS / 1000, rel=TOLERANCE)
    assert row["data_wait_s"] + row["copy_s"] + row["compute_s"] == pytest.approx(row["steady_s"], rel=0.01)
    assert row["compute_ceiling_ips"] == pytest.approx(BATCH / (FORWARD_DELAY_MS / 1000), rel=TOLERANCE)
    assert row["loader_ceiling_ips"] == pytest.approx(1000 / SAMPLE_DELAY_MS, rel=TOLERANCE)
    assert row["loader_ceiling_ips"] == pytest.approx(loader_rate(cfg), rel=TOLERANCE)
    assert row["compute_ceiling_ci_rel"] <= 0.02 and row["loader_ceiling_ci_rel"] <= 0.02


def test_loader_ceiling_with_workers_counts_no_prefetched_batch(compose_cfg, tmp_path):
    # two persistent workers, each BATCH * 40 ms a batch: 2 * 1000 / 40 = 50 images/s at most; a
    # clock started after the workers filled their queue (4 batches ready) would report more
    cfg = compose_cfg(
        *planted(
            "data.train_size=32",
            "train.epochs=1",
            "loader.num_workers=2",
            "loader.persistent_workers=true",
        )
    )
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    measured = loader_rate(cfg)
    assert measured == pytest.approx(2 * 1000 / SAMPLE_DELAY_MS, rel=0.15)  # less what epoch starts cost
    assert row["loader_ceiling_ips"] == pytest.approx(measured, rel=TOLERANCE)


def test_training_leaves_no_worker_running_for_the_ceilings(compose_cfg):
    # adaptive mode stops mid-epoch; persistent workers would go on prefetching beside the ceilings
    cfg = compose_cfg(
        *planted(
            "data.train_size=400",
            "data.sample_delay_ms=1",
            "loader.num_workers=2",
            "loader.persistent_workers=true",
            "train.mode=adaptive",
            "train.warmup_steps=0",
            "train.min_steps=20",
            "train.target_ci=0.5",
            "++model.kwargs.delay_ms=1",
        )
    )
    train_set, _ = build_datasets(cfg.data)
    loader = build_input(train_set, cfg.data, cfg.loader, torch.device("cpu"), True, cfg.train.seed)
    trainer = Trainer(build_model(cfg.model), cfg, torch.device("cpu"))
    metrics, (images, labels) = train(trainer, loader, cfg)
    assert metrics["warmup_steps"] == 0 and 20 <= metrics["steps_timed"] < len(loader)  # stopped mid-epoch
    assert multiprocessing.active_children() == []
    assert images.shape == (BATCH, 3, 32, 32) and len(labels) == BATCH  # the last batch, for the ceiling
