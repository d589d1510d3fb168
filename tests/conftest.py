"""Shared fixtures: the repository root, composing the real conf/ in process, running pinsweep in a
subprocess, the small jobs the tests run, and one real 2x2 sweep that several test files read."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from pinsweep.app import register_configs
from pinsweep.record import read_row

REPO_ROOT = Path(__file__).resolve().parent.parent

# a job that trains in about a second on a 2-core CPU: tiny CNN, synthetic data, few steps
TINY_JOB = (
    "data=synthetic",
    "model=tiny",
    "model.width=8",
    "data.train_size=256",
    "data.test_size=128",
    "loader.batch_size=64",
    "train.epochs=2",
    "train.ceiling_steps=2",
    "train.ceiling_budget_s=0.2",  # ceilings stop at their 2% target or here: tests need a figure, not precision
    # one intra-op thread: two, on two cores shared with DataLoader workers and other processes, wait for
    # each other at every op (a step of this job measured 6x slower under load); no test here is about threads
    "train.threads=1",
)
# a job of 8 steps with one DataLoader worker (a fault injected at the third step has a worker to kill,
# an interruption has one to stop): about a second of training, a few of start-up
SMALL_JOB = (
    "data=synthetic",
    "model=tiny",
    "model.width=8",
    "data.train_size=512",
    "data.test_size=64",
    "loader.batch_size=64",
    "loader.num_workers=1",
    "train.epochs=1",
    "train.ceiling_steps=2",
    "train.ceiling_budget_s=0.2",  # the default 2 s per ceiling would be most of the job's time
    "train.threads=1",  # as TINY_JOB
)


@pytest.fixture(autouse=True)
def _stop_signals_stay_pytests():
    """A multirun in this process installs pinsweep's stop handlers for good (a sweep's process ends with
    its sweep); here the process is pytest's, and the next test, and pytest's own Ctrl-C, get them back."""
    signums = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)
    before = {signum: signal.getsignal(signum) for signum in signums}
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def compose_cfg():
    """compose_cfg(*overrides) -> the config Hydra would hand a job, composed from the repo's conf/."""
    register_configs()

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(version_base="1.3", config_dir=str(REPO_ROOT / "conf")):
            return compose(config_name="config", overrides=list(overrides))

    return _compose


@pytest.fixture(scope="session")
def tiny_job() -> tuple[str, ...]:
    return TINY_JOB


@pytest.fixture(scope="session")
def small_job() -> tuple[str, ...]:
    return SMALL_JOB


def _job_rows(sweep_dir: Path) -> list[dict | None]:
    job_dirs = sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return [read_row(job_dir) for job_dir in job_dirs]


@pytest.fixture(scope="session")
def job_rows():
    """job_rows(sweep_dir) -> the rows of jobs 0, 1, ... in job order, as the jobs wrote them (None
    where a job folder holds no row)."""
    return _job_rows


@pytest.fixture(scope="session")
def run_pinsweep():
    """run_pinsweep(*args, cwd=tmp) -> `python -m pinsweep <args>` run in cwd (so nothing lands in the repo)."""

    def _run(*args: str, cwd: Path, module: str = "pinsweep", timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
        )

    return _run


@dataclass(frozen=True)
class GridSweep:
    """A finished sweep: its folder, the folder it was started from, and what the command printed."""

    dir: Path
    cwd: Path
    result: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def grid_sweep(tmp_path_factory) -> GridSweep:
    """ONE real 2x2 sweep (num_workers 0,2 x pin_memory true,false) of the tiny job, run as a user runs
    it: `python -m pinsweep -m ...`, each job in its own process. test_sweep.py reads its rows and
    summary, test_report.py its plots and report. Read it, never change it: a test that needs to change
    a sweep folder copies this one first (shutil.copytree)."""
    cwd = tmp_path_factory.mktemp("grid")
    sweep_dir = cwd / "sweep"
    command = [sys.executable, "-m", "pinsweep", "-m", *TINY_JOB, "loader.num_workers=0,2"]
    command += ["loader.pin_memory=true,false", f"hydra.sweep.dir={sweep_dir}"]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return GridSweep(sweep_dir, cwd, result)
