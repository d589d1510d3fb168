"""Shared fixtures: the repository root, composing the real conf/ in process, running pinsweep in a
subprocess, the small jobs the tests run, and one real 2x2 sweep that several test files read.

The suite runs on two pytest-xdist workers (pyproject.toml: most of a test's time is one core busy
with imports and start-up, so two streams share two cores well), a test file at a time on one worker
(its module fixtures, such as a SLURM cluster, are set up once). A test that measures a planted cost
or a speed-up that needs the cores is marked `alone`: it holds the suite's lock exclusively, every
other test holds it shared, so nothing runs beside it. Beside two busy loops (2026-12-03) the dict-batch
workers' speed-up fell to 1.2x and the straggler's wait drifted 6%; the sleep-bound ceilings, timeouts
and signal tests held, and run beside others."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

try:
    import fcntl
except ImportError:  # not POSIX: no lock, so run with -n 0 there
    fcntl = None

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


# test_sweep.py and test_report.py read one sweep (grid_sweep): one worker runs both, and the sweep once
SAME_WORKER = {"test_report": "test_sweep"}
SUITE_LOCK = "PINSWEEP_SUITE_LOCK"


def pytest_configure(config):
    worker = getattr(config, "workerinput", None)
    if worker is None:  # the controller: its workers inherit the lock's folder
        if SUITE_LOCK not in os.environ:
            os.environ[SUITE_LOCK] = config.suite_lock_dir = tempfile.mkdtemp(prefix="pinsweep-suite-")
        return
    # each worker its own temporary folder (in the controller's, which removes it once the workers are
    # gone): pinsweep's device lock (pinsweep/job/train.py) lives there, and the other worker's jobs are the
    # suite's, not a second sweep on this machine (its "shared their device" note would land in tests that
    # compare what a sweep printed)
    own = Path(os.environ[SUITE_LOCK]) / worker["workerid"]
    own.mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(own)
    tempfile.tempdir = None


# the slowest files (about 50-110 s each on 2 cores, 2026-12-03) go first, so that the two workers finish
# together instead of one running a long file at the end while the other idles
SLOWEST_FIRST = (
    "test_optuna",
    "test_interruptions",
    "test_slurm",
    "test_hydra_plugins",
    "test_install",
    "test_faults",
    "test_ranks",
    "test_ecosystem",
)


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the mark
def pytest_collection_modifyitems(items):
    def group(item) -> str:
        module = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
        return SAME_WORKER.get(module, module)

    for item in items:
        item.add_marker(pytest.mark.xdist_group(group(item)))
    rank = {name: position for position, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(group(item), len(rank)))  # stable: each file keeps its order


@contextmanager
def _flock(path: Path, mode: int):
    with open(path, "a") as file:
        fcntl.flock(file, mode)
        yield


@contextmanager
def _suite_lock(alone: bool):
    """Shared for most tests, exclusive for an `alone` one. A test waiting to run alone first holds the
    turnstile, which every test passes on its way in, so a stream of shared holders cannot starve it."""
    if fcntl is None:
        yield
        return
    folder = Path(os.environ[SUITE_LOCK])  # set by the controller as the session starts (pytest_configure)
    lock, turnstile = folder / "lock", folder / "turnstile"
    if alone:
        with open(lock, "a") as held:  # closing it releases the hold
            with _flock(turnstile, fcntl.LOCK_EX):
                fcntl.flock(held, fcntl.LOCK_EX)
            yield
        return
    with _flock(turnstile, fcntl.LOCK_EX):
        pass
    with _flock(lock, fcntl.LOCK_SH):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Around a test's setup, call and teardown, so a module fixture's sweep is inside the lock too. A
    `gpu` test runs alone as well: the other worker's GPU tests would share its device."""
    alone = any(item.get_closest_marker(mark) is not None for mark in ("alone", "gpu"))
    with _suite_lock(alone=alone):
        yield


def pytest_unconfigure(config):
    if hasattr(config, "suite_lock_dir"):
        shutil.rmtree(config.suite_lock_dir, ignore_errors=True)


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
