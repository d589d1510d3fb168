"""Each job's process is forked from a fork server that imported torch once (nothing else runs in it),
and a job process that dies still becomes a `crashed` row."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from pinsweep.app import run_and_record

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads processes from Linux's /proc")


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found |= {int(child) for child in task.read_text().split()}
    return found


def _read(path: str) -> str:
    try:
        return Path(path).read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _servers() -> list[int]:
    return [p for p in _children(os.getpid()) if "multiprocessing.forkserver" in _read(f"/proc/{p}/cmdline")]


def _alive(pid: int) -> bool:
    stat = _read(f"/proc/{pid}/stat")
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is an ended job not yet reaped


def _job_process(deadline: float, before: set[int]) -> tuple[int, int]:
    """(the fork server's pid, the job's pid) once a new, live job process exists under it (an earlier
    test's job in this pytest process may not be reaped yet)."""
    while time.monotonic() < deadline:
        for server in _servers():
            for job in _children(server) - before:
                if _alive(job):
                    return server, job
        time.sleep(0.05)
    raise AssertionError("no job process appeared under a fork server")


def test_a_job_forked_from_the_preloaded_server_that_dies_becomes_a_crashed_row(compose_cfg, tiny_job, tmp_path):
    seen: dict[str, object] = {}
    before = {job for server in _servers() for job in _children(server)}

    def kill_the_job() -> None:
        server, job = _job_process(time.monotonic() + 120, before)
        seen["server"] = server
        seen["server_has_torch"] = "libtorch" in _read(f"/proc/{server}/maps")  # imported before any job ran
        seen["job_parent"] = int(_read(f"/proc/{job}/stat").rsplit(")", 1)[1].split()[1])
        os.kill(job, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_job)
    killer.start()
    # the job hangs at its third step (its timeout well after the killer finds it): alive when found
    cfg = compose_cfg(*tiny_job, "train.inject_fault=hang", "train.timeout_s=90")
    row = run_and_record(cfg, tmp_path)
    killer.join()

    assert seen["server_has_torch"]
    assert seen["job_parent"] == seen["server"] != os.getpid()  # a copy of the idle server, not of the sweep
    assert row["status"] == "crashed"
    assert row["error"] == "JobCrashed: job process exited with code -9 without a result (killed or crashed)"


def test_the_next_job_starts_from_the_same_server_and_runs(compose_cfg, tiny_job, tmp_path):
    row = run_and_record(compose_cfg(*tiny_job), tmp_path)
    assert row["status"] == "ok", row["error"]
    servers = _servers()
    assert len(servers) == 1  # started once, used by every job of this process
    assert not [job for job in _children(servers[0]) if _alive(job)]  # the job's process ended with the job


def test_an_unknown_start_method_is_one_line_naming_the_setting(compose_cfg, tiny_job, tmp_path, monkeypatch):
    monkeypatch.setenv("PINSWEEP_JOB_START", "thread")
    row = run_and_record(compose_cfg(*tiny_job), tmp_path)
    assert row["status"] == "failed"
    assert row["error"] == "ValueError: PINSWEEP_JOB_START=thread: choose one of forkserver, spawn (or unset it)"


@pytest.mark.parametrize(
    ("arguments", "starts"),
    [
        (["-m", "loader.num_workers=0,2"], True),
        (["--cfg", "job"], False),  # Hydra prints and exits
        (["--help"], False),
        (["-m", "isolate=false"], False),  # the jobs run in the sweep's own process
        (["-m", "hydra/launcher=slurm"], False),  # they run on other machines, each starting its own
    ],
)
def test_the_command_starts_the_fork_server_early_only_where_a_job_will_use_it(arguments, starts):
    from pinsweep.__main__ import _runs_jobs_here

    assert _runs_jobs_here(arguments) is starts
