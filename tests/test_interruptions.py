"""What a long sweep meets besides failing jobs: Ctrl-C and SIGTERM in the middle, rows damaged on disk
since, and a second sweep started into a folder in use. Each ends with a summary of what finished and a
resume that completes the sweep."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from pinsweep import summarize as summarize_command
from pinsweep.__main__ import main as pinsweep_main
from pinsweep.record import ROW_FILE, CorruptRow, read_row, read_rows, write_row
from pinsweep.sweep import lock
from pinsweep.sweep.interrupt import Interrupted, job_signals
from pinsweep.sweep.lock import FolderInUse, hold
from pinsweep.sweep.resume import resume_command


def _pinsweep(*args: str) -> list[str]:
    return [sys.executable, "-m", "pinsweep", *args]


def _statuses(sweep_dir: Path, jobs: int) -> list[str | None]:
    rows = [read_row(sweep_dir / str(num)) for num in range(jobs)]
    return [row and row["status"] for row in rows]


def _session(leader: int) -> set[int]:
    """Every live process of the session `leader` started (the sweep, its fork server, jobs, workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == leader and "\nState:\tZ" not in (entry / "status").read_text():
                    found.add(int(entry.name))
            except OSError:
                pass
    return found


def _job_group(sweep: subprocess.Popen, job_dir: Path, deadline: float) -> int:
    """The process group of the job running in job_dir: its process leads a group of its own, with its
    DataLoader workers in it (pinsweep/job/isolate.py)."""
    while True:
        assert sweep.poll() is None and time.monotonic() < deadline, f"{job_dir.name} never started its process"
        if (job_dir / ".hydra").is_dir():
            groups = {pid for pid in _session(sweep.pid) - {sweep.pid} if os.getpgid(pid) == pid}
            if groups:
                return groups.pop()
        time.sleep(0.05)


def _wait_for(path: Path, text: str, sweep: subprocess.Popen, deadline: float) -> None:
    while text not in path.read_text():
        assert sweep.poll() is None and time.monotonic() < deadline, f"never logged {text!r}"
        time.sleep(0.05)


# ------------------------------------------------------------------------------ Ctrl-C and SIGTERM


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds job processes through Linux's /proc")
@pytest.mark.parametrize(
    ("signum", "whom", "exit_code"),
    [
        # Ctrl-C: the terminal signals every process in its foreground group (the job's too)
        (signal.SIGINT, "group", 130),
        # kill, timeout, systemd: the sweep's process alone
        (signal.SIGTERM, "sweep", 143),
    ],
    ids=["ctrl-c", "sigterm"],
)
def test_a_signal_in_job_3_records_it_summarizes_the_rest_and_resume_completes_the_sweep(
    small_job, tmp_path, signum, whom, exit_code
):
    sweep_dir, jobs = tmp_path / "sweep", 4
    repeats = "train.repeat=" + ",".join(map(str, range(jobs)))
    command = _pinsweep("-m", *small_job, repeats, f"hydra.sweep.dir={sweep_dir}")
    err = tmp_path / "sweep.err"
    with open(err, "w") as stderr:
        sweep = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + 300
        job = _job_group(sweep, sweep_dir / "2", deadline)
        _wait_for(sweep_dir / "2" / "app.log", "data: synthetic", sweep, deadline)  # inside the job, workers soon
        job_processes = {pid for pid in _session(sweep.pid) if os.getpgid(pid) == job}
        if whom == "group":
            os.killpg(sweep.pid, signum)
        else:
            sweep.send_signal(signum)
        stdout, _ = sweep.communicate(timeout=120)
    stderr_text = err.read_text()
    assert sweep.returncode == exit_code, stderr_text[-3000:]

    assert _statuses(sweep_dir, 4) == ["ok", "ok", "interrupted", None]
    assert read_row(sweep_dir / "2")["error"] == f"Interrupted: stopped by {signal.Signals(signum).name}"
    assert not job_processes & _session(sweep.pid), "the job or a DataLoader worker outlived the interruption"
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert summary["n"].sum() == 2 and summary["n_failed"].sum() == 1
    assert (sweep_dir / "report.md").is_file() and (sweep_dir / "report.html").is_file()
    assert "Traceback" not in stderr_text and b"Traceback" not in stdout
    last_line = stderr_text.strip().splitlines()[-1]
    assert last_line == (
        f"pinsweep: stopped by {signal.Signals(signum).name}; resume with: python -m pinsweep.resume {sweep_dir}"
    )
    if signum != signal.SIGINT:
        # a resume reads the rows, not what stopped the sweep: proven once, after Ctrl-C (a pinsweep
        # process of its own, two more jobs, the summary again)
        return

    resumed = subprocess.run(
        [sys.executable, "-m", "pinsweep.resume", str(sweep_dir)], cwd=tmp_path, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("already has an ok row, skipped") == 2
    assert _statuses(sweep_dir, jobs) == ["ok"] * jobs
    assert pd.read_csv(sweep_dir / "summary.csv")["n"].sum() == jobs


class SlowFinalizer:
    """Python prints and drops an exception raised in __del__: where a signal's handler may run."""

    def __del__(self):
        time.sleep(0.5)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_interruption_dropped_in_a_finalizer_is_raised_again():
    start = time.monotonic()
    with pytest.raises(Interrupted) as caught, job_signals():
        finalizer = SlowFinalizer()
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
        del finalizer  # SIGTERM's Interrupted is raised in here, and lost
        time.sleep(30)  # ... so it comes again, a second later
    assert time.monotonic() - start < 5
    assert caught.value.exit_code == 143 and str(caught.value) == "stopped by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # pytest's own handling is back


@pytest.mark.slow
def test_a_second_ctrl_c_exits_at_once(small_job, tmp_path):
    sweep_dir = tmp_path / "sweep"
    command = _pinsweep("-m", *small_job, "train.repeat=0,1", f"hydra.sweep.dir={sweep_dir}")
    err = tmp_path / "sweep.err"
    with open(err, "w") as stderr:
        sweep = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 300
        _wait_for(err, "data: synthetic", sweep, deadline)  # job 0 is training
        sweep.send_signal(signal.SIGINT)
        _wait_for(err, "job #0 interrupted", sweep, deadline)  # the summary is being written now
        sweep.send_signal(signal.SIGINT)
        start = time.monotonic()
        sweep.wait(timeout=60)
    assert time.monotonic() - start < 2
    assert sweep.returncode == 130
    assert err.read_text().rstrip().endswith("pinsweep: second SIGINT: exiting now")
    assert read_row(sweep_dir / "0")["status"] == "interrupted"


@pytest.mark.slow
def test_a_slurm_job_records_itself_as_interrupted_on_the_warning_signal(small_job, tmp_path):
    """Under SLURM (time limit, preemption) the job itself gets SIGTERM, or submitit's `--signal`
    (USR2) ahead of the limit: it records its row before it ends, so the sweep's summary counts it."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "SLURM_JOB_ID": "4242"}
    command = _pinsweep(*small_job, "train.epochs=50", f"hydra.run.dir={run_dir}")
    job = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (run_dir / "app.log").is_file() or "data: synthetic" not in (run_dir / "app.log").read_text():
        assert job.poll() is None and time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    job.send_signal(signal.SIGUSR2)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 128 + signal.SIGUSR2, stderr[-3000:]
    row = read_row(run_dir)
    assert row["status"] == "interrupted" and row["error"] == "Interrupted: stopped by SIGUSR2"
    assert row["env.slurm_job_id"] == 4242


# -------------------------------------------------------------------------------------- damaged rows

DAMAGE = {
    "truncated": lambda text: text[: len(text) // 2],
    "garbage": lambda text: "\x00\x93garbage, not a row\n\x01,\x02\n",
    "empty": lambda text: "",
}


def test_each_kind_of_damage_is_named_with_its_file(tmp_path):
    write_row(tmp_path, {"status": "ok", "error": "", "images_per_s": 123.5, "note": "line one\nline two"})
    row_file = tmp_path / ROW_FILE
    assert read_row(tmp_path)["note"] == "line one\nline two"  # a quoted newline is no damage
    whole = row_file.read_text()
    expected = {
        "truncated": "truncated (ends mid-line)",
        "garbage": "no status column (not a pinsweep row)",
        "empty": "empty file",
        "header only": "1 CSV lines, expected a header and one row",
        "cells cut": "3 cells under 4 columns (truncated or edited)",
    }
    damaged = {
        **{kind: damage(whole) for kind, damage in DAMAGE.items()},
        "header only": whole.splitlines(keepends=True)[0],
        "cells cut": whole[: whole.rindex(",")] + "\n",
    }
    for kind, text in damaged.items():
        row_file.write_text(text)
        with pytest.raises(CorruptRow) as caught:
            read_row(tmp_path)
        assert str(caught.value) == f"{row_file}: {expected[kind]}", kind


def _sweep_here(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`python -m pinsweep <args>` run in this process (pinsweep.__main__.main): (its exit status, what it
    wrote to stderr). For a sweep whose own process is not the point, what it writes is. Ends as that
    process would: the folder's hold dropped (pinsweep.sweep.lock), and pytest's log handlers back in
    place of Hydra's."""
    monkeypatch.setattr(sys, "argv", ["pinsweep", *args])
    monkeypatch.setattr(lock, "_HELD", {})  # the holds this sweep takes "until exit"
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    capsys.readouterr()
    try:
        pinsweep_main()
        code = 0
    except SystemExit as exit:
        code = 0 if exit.code is None else exit.code
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for held in lock._HELD.values():
            held.release(force=True)
    return code, capsys.readouterr().err


@pytest.mark.slow
def test_damaged_rows_are_listed_summarized_around_and_rerun_by_resume(
    small_job, tmp_path, monkeypatch, capsys, caplog
):
    """The sweep and its resume run in this process (the resume's own process, and its command line,
    are tested with a signal and with a folder in use): five jobs, three rows damaged three ways."""
    sweep_dir = tmp_path / "sweep"
    monkeypatch.chdir(tmp_path)
    # no ceilings or test pass: only the rows are read
    job = (*small_job, "train.ceiling_steps=0", "train.evaluate=false", "isolate=false")
    sweep = ("-m", *job, "train.repeat=0,1,2,3,4", f"hydra.sweep.dir={sweep_dir}")
    code, stderr = _sweep_here(monkeypatch, capsys, *sweep)
    assert code == 0, stderr[-3000:]
    damaged = {"1": "truncated", "2": "garbage", "4": "empty"}
    before = {}
    for num, kind in damaged.items():
        row_file = sweep_dir / num / ROW_FILE
        row_file.write_text(DAMAGE[kind](row_file.read_text()))
        before[num] = row_file.read_bytes()
    untouched = {num: (sweep_dir / num / ROW_FILE).read_bytes() for num in ("0", "3")}

    capsys.readouterr()
    # pinsweep.summarize's own entry point, in this process (its command line is tested in test_bad_input)
    assert summarize_command.main([str(sweep_dir)]) == 1  # jobs are not ok: said after writing
    printed = capsys.readouterr()
    listed = printed.out + printed.err + caplog.text
    assert "Traceback" not in listed
    for num in damaged:
        (line,) = [line for line in listed.splitlines() if f"{sweep_dir / num / ROW_FILE}:" in line]
        assert "corrupt" in line
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert summary["n"].tolist() == [2] and summary["n_failed"].tolist() == [3]
    assert read_rows(sweep_dir)["status"].tolist() == ["ok", "corrupt", "corrupt", "ok", "corrupt"]

    # what `python -m pinsweep.resume <sweep_dir>` runs, from where it runs it
    command, cwd = resume_command(sweep_dir)
    assert command[:3] == [sys.executable, "-m", "pinsweep"] and cwd == tmp_path
    code, stderr = _sweep_here(monkeypatch, capsys, *command[3:])
    assert code == 0, stderr[-3000:]
    skipped = set(re.findall(r"job #(\d+) already has an ok row, skipped", stderr))
    assert skipped == {"0", "3"}  # exactly the damaged three ran again
    assert _statuses(sweep_dir, 5) == ["ok"] * 5
    for num, row_bytes in untouched.items():
        assert (sweep_dir / num / ROW_FILE).read_bytes() == row_bytes
    for num in damaged:
        (kept,) = (sweep_dir / num).glob("row-corrupt-*.csv")
        assert kept.read_bytes() == before[num]  # the damaged file is kept beside the new row
    assert pd.read_csv(sweep_dir / "summary.csv")["n"].tolist() == [5]


# --------------------------------------------------------------------------------- one sweep per folder

# keeps the lock referenced: a lock object that is collected releases its hold
HOLD_AND_WAIT = (
    "import sys, time; from pinsweep.sweep.lock import hold; lock = hold(sys.argv[1]); print('held', flush=True); "
    "time.sleep(600)"
)


def test_a_held_folder_refuses_and_a_killed_holder_leaves_no_stale_hold(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_AND_WAIT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(FolderInUse, match=f"in use by a running sweep \\(pid {holder.pid} on "):
            hold(tmp_path)
    finally:
        holder.kill()  # SIGKILL: nothing of the holder's own runs; the kernel drops its flock
        holder.wait()
    hold(tmp_path).release()


@pytest.mark.slow
def test_a_second_sweep_into_a_folder_in_use_refuses_and_resume_proceeds_once_it_is_killed(small_job, tmp_path):
    sweep_dir = tmp_path / "sweep"
    # two jobs in the sweep's own process, without DataLoader workers: the sweep is the one process that
    # holds the folder (a forked worker would hold the flock too, a fork server would import torch on after
    # the kill); no ceilings or test pass: the resume that proceeds runs both jobs, and only the rows are read
    job = (*small_job, "loader.num_workers=0", "isolate=false", "train.ceiling_steps=0", "train.evaluate=false")
    command = _pinsweep("-m", *job, "train.repeat=0,1", f"hydra.sweep.dir={sweep_dir}")
    err = tmp_path / "first.err"
    with open(err, "w") as stderr:
        first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            _wait_for(err, "job #0 (1 of 2)", first, time.monotonic() + 300)
            saved = (sweep_dir / "multirun.yaml").read_bytes()
            for second_command in (command, [sys.executable, "-m", "pinsweep.resume", str(sweep_dir)]):
                start = time.monotonic()
                second = subprocess.run(second_command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
                refused_after = time.monotonic() - start
                assert second.returncode == 2, second.stderr[-3000:]
                (message,) = second.stderr.strip().splitlines()
                assert f"{sweep_dir} is in use by a running sweep (pid {first.pid} on " in message
                assert refused_after < 10  # not after a job: at start-up (about a second on an idle machine)
            assert first.poll() is None
            assert (sweep_dir / "multirun.yaml").read_bytes() == saved  # the refused sweeps wrote nothing
        finally:
            first.kill()
            first.wait()

    resumed = subprocess.run(
        [sys.executable, "-m", "pinsweep.resume", str(sweep_dir)], cwd=tmp_path, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _statuses(sweep_dir, 2) == ["ok"] * 2
