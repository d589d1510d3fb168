"""Measurement you can trust (issue 3): breakdown, ceilings, adaptive precision, repeats and effects."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from pinsweep.app import run_and_record
from pinsweep.timing import StepTimer

# a slow dataset: 10 ms per sample (a sleep, like slow storage), so loading 32 images takes ~0.3 s
# while the tiny model's step takes a few ms. Two workers halve the wait; on this CPU-only machine pin_memory can't act.
SLOW_SWEEP = (
    "data=synthetic",
    "model=tiny",
    "data.train_size=256",
    "data.test_size=64",
    "data.sample_delay_ms=10",
    "loader.batch_size=32",
    "train.epochs=2",
    "train.ceiling_steps=3",
    "train.evaluate=false",
    "isolate=false",
)


def test_step_timer_on_cpu_measures_each_part_with_the_host_clock():
    timer = StepTimer(torch.device("cpu"))
    for _ in range(3):
        timer.wait_started()
        timer.batch_ready()
        timer.copied()
        torch.randn(256, 256) @ torch.randn(256, 256)
        timer.computed()
    times = timer.times()
    assert len(timer) == timer.completed() == 3
    assert (times.compute_s > 0).all()
    # a step ends where the next one's compute ends, so each step spans at least its own compute
    assert (times.step_s[1:] >= times.compute_s[1:]).all()
    assert times.window(1).step_s.shape == (2,)


def test_job_row_breaks_the_step_down_and_carries_both_ceilings(compose_cfg, tmp_path):
    cfg = compose_cfg(*SLOW_SWEEP, "loader.num_workers=0")
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    # with 4 ms per sample and no workers, most of every step is spent waiting for data
    assert row["data_wait_s"] / row["steady_s"] > 0.5
    assert row["data_wait_s"] + row["copy_s"] + row["compute_s"] <= row["steady_s"] * 1.02
    assert row["steps_timed"] == row["steps"] - row["warmup_steps"]
    assert row["warmup_steps"] == 8  # the whole first epoch: 256 / 32 steps
    # the compute-only ceiling is far above the loader-bound end-to-end figure
    assert row["compute_ceiling_ips"] > 3 * row["images_per_s"]
    assert row["loader_ceiling_ips"] < row["compute_ceiling_ips"]
    assert row["pin_memory_active"] is False


def test_adaptive_mode_stops_at_the_precision_target_or_the_budget(compose_cfg, tmp_path):
    cfg = compose_cfg(
        "data=synthetic",
        "model=tiny",
        "data.train_size=1024",
        "loader.batch_size=32",
        "train.mode=adaptive",
        "train.min_steps=20",
        "train.target_ci=0.2",
        "train.budget_s=20",
        "train.ceiling_steps=0",
        "train.evaluate=false",
        "isolate=false",
    )
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["steps_timed"] >= 20
    reached_target = row["step_ci_rel"] <= 0.2
    assert reached_target or row["steady_s"] >= 20
    assert math.isfinite(row["images_per_s"])


@pytest.mark.slow
def test_slow_dataset_sweep_names_the_loader_as_the_bottleneck(run_pinsweep, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_pinsweep(
        "-m",
        *SLOW_SWEEP,
        "train.repeat=0,1,2",
        "loader.num_workers=0,2",
        "loader.pin_memory=true,false",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 4 and (summary["n"] == 3).all()
    for column in ("ips_median", "ips_iqr", "ips_ci_low", "ips_ci_high", "efficiency", "verdict"):
        assert summary[column].notna().all(), column

    serial = summary[summary["loader.num_workers"] == 0]
    assert (serial["verdict"] == "loader-bound").all()

    effects = pd.read_csv(sweep / "effects.csv")
    assert set(effects["axis"]) == {"loader.num_workers", "loader.pin_memory"}
    overall = effects[effects["held_fixed"] == "all (median)"].set_index("axis")
    workers = overall.loc["loader.num_workers"]
    assert workers["ratio"] > 1.3 and workers["ci_low"] > 1.0 and workers["effect"] == "faster"
    assert overall.loc["loader.pin_memory", "effect"] == "none: inactive without an accelerator"
    # the effect of pin_memory is reported at each num_workers, never across them
    per_stratum = effects[(effects["axis"] == "loader.pin_memory") & (effects["held_fixed"] != "all (median)")]
    assert sorted(per_stratum["held_fixed"]) == ["loader.num_workers=0", "loader.num_workers=2"]


def test_your_own_dataset_and_model_get_the_same_measurements(compose_cfg, tmp_path):
    cfg = compose_cfg(
        "data=custom",
        "data._target_=examples.my_pipeline.StripesDataset",
        "+data.kwargs.size=256",
        "model=custom",
        "model._target_=examples.my_pipeline.SmallMLP",
        "+model.kwargs.hidden=32",
        "loader.batch_size=32",
        "train.epochs=2",
        "train.ceiling_steps=2",
        "isolate=false",
    )
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    for metric in ("images_per_s", "data_wait_s", "compute_s", "compute_ceiling_ips", "loader_ceiling_ips"):
        assert row[metric] > 0, metric
    assert 0 <= row["test_accuracy"] <= 100
