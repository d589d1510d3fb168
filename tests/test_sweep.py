"""Real multiruns in a subprocess, as a user starts them: rows per job, the summary written when the
sweep ends (also after failures), and the exit status."""

from __future__ import annotations

import pandas as pd
import pytest

from pinsweep.record import read_row

pytestmark = pytest.mark.slow


def _job_rows(sweep_dir) -> list[dict]:
    """Rows of jobs 0, 1, ... in job order, as the jobs wrote them."""
    job_dirs = sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return [read_row(job_dir) for job_dir in job_dirs]


def test_a_2x2_grid_leaves_four_rows_and_a_summary(run_pinsweep, tiny_job, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_pinsweep(
        "-m",
        *tiny_job,
        "loader.pin_memory=true,false",
        "loader.num_workers=0,2",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _job_rows(sweep_dir)
    assert len(rows) == 4
    assert all(row is not None and row["status"] == "ok" for row in rows), rows
    assert {(row["loader.pin_memory"], row["loader.num_workers"]) for row in rows} == {
        (True, 0),
        (True, 2),
        (False, 0),
        (False, 2),
    }
    assert all(row["images_per_s"] > 0 for row in rows)
    assert [row["job.num"] for row in rows] == [0, 1, 2, 3]

    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert len(summary) == 4
    assert {"loader.pin_memory", "loader.num_workers", "speedup", "n"} <= set(summary.columns)
    assert summary["n"].tolist() == [1, 1, 1, 1]
    baseline = summary[summary["baseline"]]
    assert len(baseline) == 1
    assert (baseline["loader.pin_memory"].item(), baseline["loader.num_workers"].item()) == (False, 0)
    assert baseline["speedup"].item() == 1.0
    assert (summary["speedup"] > 0).all()
    assert (sweep_dir / "effects.csv").exists()
    assert "pinsweep summary" in result.stdout
    assert not list(tmp_path.glob("outputs")) and not list(tmp_path.glob("multirun"))


def test_a_failing_job_is_recorded_and_the_sweep_completes(run_pinsweep, tiny_job, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_pinsweep(
        "-m",
        *tiny_job,
        "train.epochs=1",
        "train.inject_fault=raise,null",  # the failing job first: the one after it must still run
        "hydra.sweeper.shuffle=false",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    failed, ok = _job_rows(sweep_dir)
    assert failed["status"] == "failed"
    assert failed["error"] == "RuntimeError: injected fault (train.inject_fault=raise)"
    assert ok["status"] == "ok" and ok["images_per_s"] > 0

    # written by the end-of-sweep callback although a job failed; pandas reads the level null as NaN
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert len(summary) == 2
    failing = summary[summary["train.inject_fault"] == "raise"].iloc[0]
    assert (failing["n"], failing["n_failed"]) == (0, 1)
    assert "job 0 failed: RuntimeError: injected fault" in failing["failures"]
    healthy = summary[summary["train.inject_fault"].isna()].iloc[0]
    assert (healthy["n"], healthy["n_failed"]) == (1, 0)
    assert "job 0 failed" in result.stdout


def test_a_new_axis_groups_the_summary_with_no_code_change(run_pinsweep, tiny_job, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_pinsweep(
        "-m",
        *tiny_job,
        "train.epochs=1",
        "loader.prefetch_factor=2,4",
        "loader.num_workers=2",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [row["loader.prefetch_factor"] for row in _job_rows(sweep_dir)] == [2, 4]
    summary = pd.read_csv(sweep_dir / "summary.csv")
    axes = [c for c in summary.columns if c.split(".", 1)[0] in ("model", "data", "loader", "train")]
    assert axes == ["loader.prefetch_factor"]
    assert summary["loader.prefetch_factor"].tolist() == [2, 4]
    assert summary["baseline"].tolist() == [True, False]
