"""A failed job is one line in the terminal (status, exception, its first line, the job's log), its whole
traceback stays in the job's log; a job whose loss went NaN is `ok`, timed, and flagged."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from pinsweep.record import read_rows

PIPELINE = """
import torch
from torch import nn
from torch.utils.data import Dataset


class Broken(Dataset):
    def __init__(self, size=256, train=True):
        self.size = size

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        raise ValueError("this sample cannot be read")


class Diverges(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))

    def forward(self, images):
        return self.net(images) * float("nan")
"""
CONFIGS = {
    "data/broken.yaml": "name: custom\n_target_: badpkg.Broken\n",
    "model/diverges.yaml": "name: custom\n_target_: badpkg.Diverges\n",
}


@pytest.fixture(scope="module")
def sweep(repo_root, tmp_path_factory):
    """4 jobs: the raising dataset and synthetic data, each with 0 and 2 workers, all with the NaN model."""
    home = tmp_path_factory.mktemp("failures")
    (home / "badpkg.py").write_text(PIPELINE)
    for name, text in CONFIGS.items():
        (home / "sweeps" / name).parent.mkdir(parents=True, exist_ok=True)
        (home / "sweeps" / name).write_text(text)
    sweep_dir = home / "sweep"
    command = [sys.executable, "-m", "pinsweep", "--config-dir", "sweeps", "-m", "data=broken,synthetic"]
    command += ["model=diverges", "loader.num_workers=0,2", "data.train_size=256", "data.test_size=64"]
    command += ["loader.batch_size=64", "train.epochs=1", "train.ceiling_steps=2", f"hydra.sweep.dir={sweep_dir}"]
    command += ["train.ceiling_budget_s=0.2", "train.threads=1"]  # a rough ceiling, one thread (tests/conftest.py)
    command += ["hydra.sweeper.shuffle=false"]
    env = {"PYTHONPATH": f"{home}:{repo_root}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(command, cwd=home, env=env, capture_output=True, text=True, timeout=600)
    return result, read_rows(sweep_dir), sweep_dir


@pytest.mark.slow
def test_each_failed_job_is_one_line_and_its_traceback_is_in_its_log(sweep):
    result, rows, _ = sweep
    assert result.returncode == 1, result.stderr[-3000:]  # jobs failed: the sweep says so
    failed = rows[rows["status"] != "ok"]
    assert failed["status"].tolist() == ["failed", "failed"]
    assert sorted(failed["error"]) == [
        "ValueError: this sample cannot be read",
        "ValueError: this sample cannot be read (in a DataLoader worker)",
    ]
    output = result.stdout + result.stderr
    assert "Original Traceback" not in output and "Traceback (most recent call last)" not in output
    listed = re.findall(
        r"^job (\d+) failed: ValueError: this sample cannot be read.* \(log: (\S+)\)$", result.stdout, re.M
    )
    assert sorted(int(job) for job, _ in listed) == sorted(failed["job.num"].astype(int)), result.stdout
    for _, log in listed:  # the whole traceback, the worker's too, is where the line points
        text = Path(log).read_text()
        assert "Traceback (most recent call last)" in text and "this sample cannot be read" in text


@pytest.mark.slow
def test_a_diverged_job_is_kept_timed_and_flagged_in_the_table_and_the_report(sweep):
    result, rows, sweep_dir = sweep
    diverged = rows[rows["status"] == "ok"]
    assert len(diverged) == 2
    assert not diverged["loss_finite"].any() and diverged["final_loss"].isna().all()
    assert (diverged["images_per_s"] > 0).all()  # the timing is kept
    assert len(re.findall(r"^job \d+ ok, loss not finite: final loss nan, timing kept", result.stdout, re.M)) == 2
    assert "(1 loss not finite)" in result.stdout  # the table's status cell, one per synthetic config
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert summary["n_loss_not_finite"].sum() == 2
    assert "loss_finite=false" in (sweep_dir / "report.md").read_text()


class _ManyLinesInAWorker(torch.utils.data.IterableDataset):
    def __iter__(self):
        raise ValueError(
            "No samples found; perhaps you have fewer shards than workers.\nTurn off using empty_check=False"
        )
        yield


def test_a_workers_exception_of_several_lines_is_one_line_with_all_of_it():
    """webdataset's message for fewer shards than workers ends with its workaround on a line of its own;
    the line kept only that last line, which named neither the exception nor the cause."""
    from pinsweep.job.isolate import one_line

    with pytest.raises(Exception) as caught:
        list(torch.utils.data.DataLoader(_ManyLinesInAWorker(), num_workers=1))
    assert one_line(caught.value) == (
        "ValueError: No samples found; perhaps you have fewer shards than workers. "
        "Turn off using empty_check=False (in a DataLoader worker)"
    )
