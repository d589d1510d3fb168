"""Real multiruns in a subprocess, as a user starts them: rows per job, the summary written when the
sweep ends, and the exit status. The 2x2 grid is the shared sweep of conftest.py (`grid_sweep`), which
test_report.py reads too; a failing job's row and summary, and its resume, are in test_faults.py."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_a_2x2_grid_leaves_four_rows_and_a_summary(grid_sweep, job_rows):
    sweep_dir = grid_sweep.dir
    rows = job_rows(sweep_dir)
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
    assert "pinsweep summary" in grid_sweep.result.stdout
    assert not list(grid_sweep.cwd.glob("outputs")) and not list(grid_sweep.cwd.glob("multirun"))


def test_a_new_axis_groups_the_summary_with_no_code_change(run_pinsweep, tiny_job, job_rows, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_pinsweep(
        "-m",
        *tiny_job,
        "isolate=false",  # the jobs' own processes are what the grid above runs in; here the summary is tested
        "train.epochs=1",
        "loader.prefetch_factor=2,4",
        "loader.num_workers=2",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [row["loader.prefetch_factor"] for row in job_rows(sweep_dir)] == [2, 4]
    summary = pd.read_csv(sweep_dir / "summary.csv")
    axes = [c for c in summary.columns if c.split(".", 1)[0] in ("model", "data", "loader", "train")]
    assert axes == ["loader.prefetch_factor"]
    assert summary["loader.prefetch_factor"].tolist() == [2, 4]
    assert summary["baseline"].tolist() == [True, False]
