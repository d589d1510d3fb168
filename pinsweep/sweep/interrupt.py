"""Ctrl-C and SIGTERM stop a sweep without losing what it measured.

The first SIGINT (Ctrl-C) or SIGTERM (`kill`, `timeout`, systemd, a cluster's time limit) raises
`Interrupted` in the main thread, wherever it is waiting: the running job's process and its DataLoader
workers are killed (pinsweep/job/isolate.py), its row is recorded as `interrupted` (pinsweep/app.py), and
the sweep writes its summary, plots and report for the jobs that finished, prints the command that
resumes it and exits 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports a
process the signal ended. A second signal while that runs exits at once.

A job that runs in a process of its own (a SLURM job through the submitit launchers) catches the same
signals and submitit's warning signal (`--signal`, USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise),
records its row as `interrupted` and returns, so that the sweep that waits for it goes on and counts it.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived. A KeyboardInterrupt, so that whatever cleans up on Ctrl-C (DataLoader
    iterators, `finally` blocks) cleans up on SIGTERM too, and no `except Exception` swallows it."""

    def __init__(self, signum: int, sweep_dir: str | None = None, stop: StopSignals | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.sweep_dir = sweep_dir  # set when the sweep's own process was interrupted
        self.stop = stop

    def caught(self) -> None:
        """Tell the handler that raised it that it arrived (see StopSignals._until_caught)."""
        if self.stop is not None:
            self.stop.caught = True

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


class StopSignals:
    """The handler: the first signal raises `Interrupted`, any later one exits at once.

    Python runs a handler between any two bytecodes of the main thread, also inside a finalizer
    (`__del__`, a weakref callback), where an exception is printed and dropped. So until pinsweep's
    code reports the interruption caught, it is raised again every RETRY_S."""

    RETRY_S = 1.0

    def __init__(self, sweep_dir: str | None) -> None:
        self.sweep_dir = sweep_dir
        self.signum: int | None = None  # the first signal, once it came
        self.caught = False
        self.retrying = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and not self.retrying:  # a second signal, while the summary is written
            os.write(2, f"\npinsweep: second {signal.Signals(signum).name}: exiting now\n".encode())
            os._exit(128 + signum)
        self.retrying = False
        if self.signum is None:
            self.signum = signum
            threading.Thread(target=self._until_caught, name="pinsweep-interrupt", daemon=True).start()
        raise Interrupted(self.signum, self.sweep_dir, self)

    def _until_caught(self) -> None:
        while True:
            time.sleep(self.RETRY_S)
            if self.caught or signal.getsignal(self.signum) is not self:
                return
            self.retrying = True
            os.kill(os.getpid(), self.signum)


def _preempt_signals() -> list[signal.Signals]:
    """The signal SLURM sends ahead of a time limit through submitit's `--signal` (USR2 by default)."""
    if not os.environ.get("SLURM_JOB_ID"):
        return []
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    found = getattr(signal, f"SIG{name}", None)
    return [found] if found is not None else []


def handled_here() -> bool:
    """Whether this process already stops on pinsweep's terms (the sweep's process runs its jobs)."""
    return isinstance(signal.getsignal(signal.SIGTERM), StopSignals)


def install(sweep_dir: str | None = None) -> None:
    """From now on the first stop signal raises `Interrupted` in the main thread (for good: the sweep's
    process ends with the sweep)."""
    if threading.current_thread() is threading.main_thread():
        handler = StopSignals(sweep_dir)
        for signum in STOP_SIGNALS:
            signal.signal(signum, handler)


@contextmanager
def job_signals() -> Iterator[None]:
    """Within a job that its sweep does not watch (its own process under a cluster launcher, or a
    single run): stop signals, submitit's warning signal included, raise `Interrupted`."""
    if handled_here() or threading.current_thread() is not threading.main_thread():
        yield
        return
    signums = list(STOP_SIGNALS) + _preempt_signals()
    handler = StopSignals(None)
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        handler.caught = True  # no retry once this block is left, however it was left
        for signum, before in previous.items():
            signal.signal(signum, before)


def resume_line(sweep_dir: str | Path) -> str:
    return f"python -m pinsweep.resume {shlex.quote(str(sweep_dir))}"


def finish_interrupted(interruption: Interrupted) -> int:
    """What the sweep's process does after the running job was stopped and recorded: the summary, plots
    and report of what finished, the resume command; returns the exit status."""
    interruption.caught()
    if interruption.sweep_dir is not None:
        from pinsweep.sweep.results import write_results  # lazy: summarizing imports pandas and matplotlib

        try:
            write_results(interruption.sweep_dir)
        except Exception as error:  # e.g. stopped before any job left a row: still say how to resume
            print(f"pinsweep: no summary written: {error}", file=sys.stderr)
        print(f"pinsweep: {interruption}; resume with: {resume_line(interruption.sweep_dir)}", file=sys.stderr)
    else:
        print(f"pinsweep: {interruption}", file=sys.stderr)
    return interruption.exit_code
