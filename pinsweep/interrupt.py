"""Ctrl-C and SIGTERM stop a sweep without losing what it measured.

The first SIGINT (Ctrl-C) or SIGTERM (`kill`, `timeout`, systemd, a cluster's time limit) raises
`Interrupted` in the main thread, wherever it is waiting: the running job's process and its DataLoader
workers are killed (pinsweep/isolate.py), its row is recorded as `interrupted` (pinsweep/app.py), and
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived. A KeyboardInterrupt, so that whatever cleans up on Ctrl-C (DataLoader
    iterators, `finally` blocks) cleans up on SIGTERM too, and no `except Exception` swallows it."""

    def __init__(self, signum: int, sweep_dir: str | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.sweep_dir = sweep_dir  # set when the sweep's own process was interrupted

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


def _raise_once(sweep_dir: str | None) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        for stop in STOP_SIGNALS + tuple(_preempt_signals()):
            signal.signal(stop, _exit_now)  # while the summary is written: a second signal ends it here
        raise Interrupted(signum, sweep_dir)

    handler.pinsweep = True  # type: ignore[attr-defined]
    return handler


def _exit_now(signum: int, frame: FrameType | None) -> None:
    os.write(2, f"\npinsweep: second {signal.Signals(signum).name}: exiting now\n".encode())
    os._exit(128 + signum)


def _preempt_signals() -> list[signal.Signals]:
    """The signal SLURM sends ahead of a time limit through submitit's `--signal` (USR2 by default)."""
    if not os.environ.get("SLURM_JOB_ID"):
        return []
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    found = getattr(signal, f"SIG{name}", None)
    return [found] if found is not None else []


def handled_here() -> bool:
    """Whether this process already stops on pinsweep's terms (the sweep's process runs its jobs)."""
    return bool(getattr(signal.getsignal(signal.SIGTERM), "pinsweep", False))


def install(sweep_dir: str | None = None) -> None:
    """From now on the first stop signal raises `Interrupted` in the main thread (for good: the sweep's
    process ends with the sweep)."""
    if threading.current_thread() is threading.main_thread():
        for stop in STOP_SIGNALS:
            signal.signal(stop, _raise_once(sweep_dir))


@contextmanager
def job_signals() -> Iterator[None]:
    """Within a job that its sweep does not watch (its own process under a cluster launcher, or a
    single run): stop signals, submitit's warning signal included, raise `Interrupted`."""
    if handled_here() or threading.current_thread() is not threading.main_thread():
        yield
        return
    signums = list(STOP_SIGNALS) + _preempt_signals()
    previous = {signum: signal.signal(signum, _raise_once(None)) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def resume_line(sweep_dir: str | Path) -> str:
    return f"python -m pinsweep.resume {shlex.quote(str(sweep_dir))}"


def finish_interrupted(interruption: Interrupted) -> int:
    """What the sweep's process does after the running job was stopped and recorded: the summary, plots
    and report of what finished, the resume command; returns the exit status."""
    if interruption.sweep_dir is not None:
        from pinsweep.callbacks import write_results  # lazy: summarizing imports pandas and matplotlib

        write_results(interruption.sweep_dir)
        print(f"pinsweep: {interruption}; resume with: {resume_line(interruption.sweep_dir)}", file=sys.stderr)
    else:
        print(f"pinsweep: {interruption}", file=sys.stderr)
    return interruption.exit_code


class StopOnSignal(Callback):
    """From the start of a multirun, Ctrl-C and SIGTERM end the sweep as the module docstring says
    (pinsweep.app.cli catches the interruption and calls finish_interrupted)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        install(str(config.hydra.sweep.dir))
