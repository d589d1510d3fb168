"""Faults survived, nothing lost: a job that raises, loses a DataLoader worker, runs out of memory or
over its time limit leaves a row with its status and the sweep goes on; a sweep killed mid-run keeps
its finished rows, and re-running it into the same folder completes only what is missing."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from pinsweep.app import classify, run_and_record
from pinsweep.job.train import JobTimeout, time_limit
from pinsweep.record import ROW_FILE, read_row, read_rows, write_row
from pinsweep.sweep import resume
from pinsweep.sweep.results import summarize_folder
from tests.in_process import Ran, pinsweep_here

# one fault per job, each a config group option, so that only the hanging job has a time limit (a limit
# on every job would have to cover the slowest healthy job on a loaded machine) and only the raising job
# runs in the sweep's own process (isolate=false: a job that raises there is recorded as one that raises in
# its own process is, and the sweep goes on); in this order (hydra.sweeper.shuffle=false): every fault
# first, then a healthy job that must still run
FAULTS = {
    "raise": "train:\n  inject_fault: raise\nisolate: false\n",
    "kill_worker": "train:\n  inject_fault: kill_worker\n",
    "hang": "train:\n  inject_fault: hang\n  timeout_s: 1\n",
    "oom": "train:\n  inject_fault: oom\n",
    "none": "train:\n  inject_fault: null\n",
}
# the faults act at the third of 8 steps, before any ceiling or evaluation; the healthy job needs neither
LEAN = ("train.ceiling_steps=0", "train.evaluate=false")


def _pinsweep(*args: str) -> list[str]:
    return [sys.executable, "-m", "pinsweep", *args]


# ------------------------------------------------------------------------------ one sweep, four faults


@dataclass(frozen=True)
class FaultSweep:
    dir: Path
    cwd: Path
    result: Ran


@pytest.fixture(scope="module")
def fault_sweep(small_job, tmp_path_factory) -> FaultSweep:
    """ONE sweep of the five jobs of FAULTS, its command line run in this process (tests/in_process.py:
    the sweep's own process is not the point; its jobs' processes, forked from the fork server, are). Read
    it, never change it: the resume test below resumes a copy."""
    cwd = tmp_path_factory.mktemp("faults")
    group = cwd / "conf" / "fault"
    group.mkdir(parents=True)
    for name, body in FAULTS.items():
        (group / f"{name}.yaml").write_text(f"# @package _global_\n{body}")
    sweep_dir = cwd / "sweep"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)  # where the sweep starts: what resume_command returns as its folder
        result = pinsweep_here(
            "-m",
            *small_job,  # 8 steps (inject_fault acts at the third), with one worker to kill
            *LEAN,
            f"hydra.searchpath=[file://{cwd / 'conf'}]",
            "+fault=" + ",".join(FAULTS),
            "hydra.sweeper.shuffle=false",  # job numbers in the order FAULTS lists them
            f"hydra.sweep.dir={sweep_dir}",
        )
    return FaultSweep(sweep_dir, cwd, result)


@pytest.mark.slow
def test_one_sweep_survives_an_exception_a_killed_worker_a_timeout_and_oom(fault_sweep, job_rows):
    result, sweep_dir = fault_sweep.result, fault_sweep.dir
    assert result.returncode == 1, result.stderr[-3000:]  # jobs failed: the sweep says so, after the summary

    rows = job_rows(sweep_dir)
    assert [row["status"] for row in rows] == ["failed", "worker_killed", "timeout", "oom", "ok"], rows
    raised, killed, timed_out, oom, ok = rows
    assert ok["images_per_s"] > 0  # the job after four failed ones ran
    assert raised["error"] == "RuntimeError: injected fault (train.inject_fault=raise)"
    # torch's own words for a worker that died of SIGKILL
    assert "DataLoader worker (pid" in killed["error"] and "is killed by signal: Killed" in killed["error"]
    assert timed_out["error"].startswith("JobTimeout: job exceeded train.timeout_s=1:")
    assert oom["error"] == "OutOfMemoryError: simulated out of memory (train.inject_fault=oom)"

    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert summary["n"].sum() == 1 and summary["n_failed"].sum() == 4


# ------------------------------------------------------------------------- the whole sweep process killed


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found |= {int(child) for child in task.read_text().split()}
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _job_processes(sweep_pid: int) -> set[int]:
    """The sweep's job processes: children of its fork server (or, with PINSWEEP_JOB_START=spawn, its own
    spawned children)."""
    found: set[int] = set()
    for child in _children(sweep_pid):
        if "multiprocessing.forkserver" in _cmdline(child):
            found |= _children(child)
        elif "multiprocessing.spawn" in _cmdline(child):
            found.add(child)
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has finished; it only waits to be reaped


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads process children from Linux's /proc")
def test_a_killed_sweep_keeps_its_finished_rows_and_a_rerun_completes_only_the_rest(
    small_job, job_rows, tmp_path, monkeypatch
):
    sweep_dir = tmp_path / "sweep"
    # 3 jobs; killed as soon as job 2's own process exists, which is half a second (its worker sleeps 1 ms a
    # sample) before it could finish: job 2 is left without a row, job 3 without a folder
    job = (*small_job, *LEAN, "data.sample_delay_ms=1")
    command = _pinsweep("-m", *job, "train.repeat=0,1,2", f"hydra.sweep.dir={sweep_dir}")
    with open(tmp_path / "killed.log", "w") as log:
        sweep = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while not (sweep_dir / "1" / ".hydra").is_dir():
            assert sweep.poll() is None and time.monotonic() < deadline, "job 2 of 3 never started"
            time.sleep(0.05)
        # job 2 runs in a process of its own (isolate=true): kill the sweep once that process exists
        job_processes: set[int] = set()
        while not job_processes:
            assert sweep.poll() is None and time.monotonic() < deadline, "job 2 of 3 never started its process"
            job_processes = _job_processes(sweep.pid)
            time.sleep(0.05)
        sweep.send_signal(signal.SIGKILL)
        sweep.wait()

    first_row = sweep_dir / "0" / ROW_FILE
    assert read_row(sweep_dir / "0")["status"] == "ok"
    assert not (sweep_dir / "1" / ROW_FILE).exists()  # killed mid-job: no row, and no half row
    # the job running in its own process ends with the sweep instead of running on unseen
    deadline = time.monotonic() + 120
    while any(_alive(pid) for pid in job_processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in job_processes), "a job process outlived the killed sweep"

    # the summary of the killed sweep: job 1 is `missing`, not an error
    assert summarize_folder(sweep_dir).failed == 1
    assert read_rows(sweep_dir)["status"].tolist() == ["ok", "missing"]

    before = (first_row.stat().st_mtime_ns, first_row.read_bytes())
    # the same command line again, in this process: what it runs is the point, not its process
    monkeypatch.chdir(tmp_path)
    rerun = pinsweep_here(*command[3:])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resume: job #0 already has an ok row, skipped" in rerun.stderr
    assert (first_row.stat().st_mtime_ns, first_row.read_bytes()) == before  # untouched
    rows = job_rows(sweep_dir)
    assert [row["status"] for row in rows] == ["ok"] * 3
    assert [row["train.repeat"] for row in rows] == [0, 1, 2]
    assert not list(sweep_dir.rglob("row-replaced-*.csv"))  # nothing finished was replaced
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert summary["n"].tolist() == [3] and summary["n_failed"].tolist() == [0]  # each job counted once


# ----------------------------------------------------------------------------------- pinsweep.sweep.resume


@pytest.mark.slow
def test_a_failing_job_is_recorded_the_sweep_completes_and_resume_reruns_only_it(
    fault_sweep, job_rows, tmp_path, monkeypatch
):
    """A job that raises (in the sweep's own process, isolate=false) leaves a failed row, the sweep runs the
    jobs after it and writes its summary, exits 1; pinsweep.resume then re-runs the failed jobs alone, the
    ok one skipped. The sweep of FAULTS above, resumed in a copy."""
    first, sweep_dir = fault_sweep.result, Path(shutil.copytree(fault_sweep.dir, tmp_path / "sweep"))
    assert first.returncode == 1, first.stderr[-3000:]
    failed, *_, ok = job_rows(sweep_dir)
    assert failed["status"] == "failed"
    assert OmegaConf.load(sweep_dir / "0" / ".hydra" / "config.yaml").isolate is False  # raised in the sweep's process
    assert failed["error"] == "RuntimeError: injected fault (train.inject_fault=raise)"
    assert ok["status"] == "ok" and ok["images_per_s"] > 0
    # written by the end-of-sweep callback although jobs failed; pandas reads the level null as NaN
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert len(summary) == len(FAULTS)
    failing = summary[summary["train.inject_fault"] == "raise"].iloc[0]
    assert (failing["n"], failing["n_failed"]) == (0, 1)
    assert "job 0 failed: RuntimeError: injected fault" in failing["failures"]
    healthy = summary[summary["train.inject_fault"].isna()].iloc[0]
    assert (healthy["n"], healthy["n_failed"]) == (1, 0)
    assert "job 0 failed" in first.stdout

    rows = sorted(sweep_dir.glob(f"*/{ROW_FILE}"), key=lambda path: int(path.parent.name))
    *failed_rows, ok_row = rows
    ok_before = (ok_row.stat().st_mtime_ns, ok_row.read_bytes())
    failed_before = [row.stat().st_mtime_ns for row in failed_rows]

    argv, cwd = resume.resume_command(sweep_dir)
    assert argv[1:4] == ["-m", "pinsweep", "-m"]
    assert "+fault=" + ",".join(FAULTS) in argv and argv[-1] == f"hydra.sweep.dir={sweep_dir.resolve()}"
    assert f"hydra.searchpath=[file://{fault_sweep.cwd / 'conf'}]" in argv  # the sweep's own config folder
    assert not any(arg.startswith("hydra.mode=") for arg in argv)
    assert cwd == fault_sweep.cwd.resolve()

    # the command resume runs, in this process (pinsweep.resume's own process: test_install.py, test_interruptions.py)
    monkeypatch.chdir(cwd)
    again = pinsweep_here(*argv[3:])
    assert again.returncode == 1, again.stderr[-3000:]  # the injected faults fail again, and say so
    assert "resume: job #4 already has an ok row, skipped" in again.stderr
    assert again.stderr.count("already has an ok row, skipped") == 1  # only the ok job
    assert (ok_row.stat().st_mtime_ns, ok_row.read_bytes()) == ok_before
    assert all(row.stat().st_mtime_ns > before for row, before in zip(failed_rows, failed_before))  # run again
    assert [row["status"] for row in job_rows(sweep_dir)] == ["failed", "worker_killed", "timeout", "oom", "ok"]
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert summary["n"].sum() == 1 and summary["n_failed"].sum() == 4


def test_resume_refuses_a_folder_that_is_no_sweep(tmp_path, capsys):
    assert resume.main([str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert f"{tmp_path.resolve() / 'multirun.yaml'} not found" in error and "python -m pinsweep -m" in error


# ----------------------------------------------------------------------------------------- in process


class FailingDataset(Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int):
        raise RuntimeError("a broken sample")


class SlowDataset(Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int):
        time.sleep(0.05)
        return torch.zeros(3), 0


def _first_error(loader: DataLoader, kill_a_worker: bool) -> RuntimeError:
    """The error iterating `loader` raises, with the iterator already shut down (so that its workers'
    clean-up does not land in a later test)."""
    batches = iter(loader)
    try:
        if kill_a_worker:
            next(batches)
            os.kill(batches._workers[0].pid, signal.SIGKILL)
        for _ in batches:
            pass
    except RuntimeError as error:
        return error.with_traceback(None)  # the traceback would keep the iterator alive
    finally:
        del batches
        gc.collect()
    raise AssertionError("the loader raised no error")


def test_a_killed_worker_and_an_exception_in_a_worker_are_told_apart():
    raised_in_worker = _first_error(DataLoader(FailingDataset(), batch_size=4, num_workers=1), kill_a_worker=False)
    assert "Caught RuntimeError in DataLoader worker process 0" in str(raised_in_worker)
    assert classify(raised_in_worker) == "failed"  # the dataset's fault, reported by the worker

    killed = _first_error(DataLoader(SlowDataset(), batch_size=4, num_workers=1), kill_a_worker=True)
    assert "DataLoader worker (pid" in str(killed)
    assert classify(killed) == "worker_killed"


class SlowFinalizer:
    """Python prints and swallows an exception raised in __del__: where an alarm may land."""

    def __del__(self):
        time.sleep(0.6)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_time_limit_whose_alarm_is_swallowed_still_ends_the_job():
    start = time.perf_counter()
    with pytest.raises(JobTimeout, match=r"train\.timeout_s=0\.2"), time_limit(0.2):
        finalizer = SlowFinalizer()
        del finalizer  # the alarm fires in here and is lost
        time.sleep(30)  # ... so the alarm comes again, a second later
    assert time.perf_counter() - start < 5


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_time_limit_whose_every_alarm_is_swallowed_raises_at_its_end():
    with pytest.raises(JobTimeout), time_limit(0.2):
        finalizer = SlowFinalizer()
        del finalizer  # the only alarm before the body ends is lost


def test_a_finished_row_is_kept_when_its_folder_gets_another_job(compose_cfg, tmp_path):
    finished = {"job.num": 0, "job.overrides": "loader.num_workers=2", "status": "ok", "images_per_s": 123.0}
    write_row(tmp_path, finished)
    cfg = compose_cfg("data=synthetic", "model=tiny", "isolate=false", "loader.batch_size=0")
    row = run_and_record(cfg, tmp_path, 0, "loader.batch_size=0")
    assert row["status"] == "invalid"
    assert read_row(tmp_path)["status"] == "invalid"
    (kept,) = tmp_path.glob("row-replaced-*.csv")
    assert pd.read_csv(kept).iloc[0].to_dict() == finished
    assert read_rows(tmp_path)["status"].tolist() == ["invalid"]  # set aside: no longer counted
