"""One sweep per folder: a second sweep (or a resume) into a folder that a running sweep holds refuses.

Two sweeps into one folder (a resume started while the first run still goes, two users, a re-run with
the same `hydra.sweep.dir`) would run the same jobs at once on one machine and time each other. The
sweep's process holds an flock on `<sweep>/.pinsweep.lock` (filelock's UnixFileLock) from the start of
the multirun until it exits. The kernel drops an flock with the last descriptor of the process that
took it, also on SIGKILL, so a killed sweep leaves no stale hold; `.pinsweep-running` beside it names
the holder for the message.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path

from filelock import Timeout, UnixFileLock

LOCK_FILE = ".pinsweep.lock"
HOLDER_FILE = ".pinsweep-running"  # who holds the lock: read only to name it; the lock decides
EXIT_IN_USE = 2

# the locks this process holds, by folder: kept here, not on the callback, because submitit pickles
# the launcher together with the callbacks, and a lock (its thread lock) cannot be pickled
_HELD: dict[str, UnixFileLock] = {}


class FolderInUse(RuntimeError):
    """Another running sweep holds the folder; the message names it and says what to do."""


def _holder(sweep_dir: Path) -> str:
    try:
        return (sweep_dir / HOLDER_FILE).read_text().strip() or "another sweep"
    except OSError:
        return "another sweep"


def hold(sweep_dir: str | Path) -> UnixFileLock:
    """Take the folder for this process (creating it), or FolderInUse. Held until released or exit."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = UnixFileLock(sweep_dir / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise FolderInUse(
            f"{sweep_dir} is in use by a running sweep ({_holder(sweep_dir)}): wait for it to end, or give "
            "this one another hydra.sweep.dir"
        ) from None
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    command = shlex.join([os.path.basename(sys.executable), *sys.argv])
    (sweep_dir / HOLDER_FILE).write_text(f"pid {os.getpid()} on {socket.gethostname()} since {started}: {command}\n")
    return lock


def check_free(sweep_dir: str | Path) -> None:
    """FolderInUse if a running sweep holds the folder (for pinsweep.sweep.resume, before it starts one)."""
    if (Path(sweep_dir) / LOCK_FILE).exists():
        hold(sweep_dir).release()


def refuse_if_in_use(arguments: list[str]) -> None:
    """Before a sweep's slow start-up (torch, the fork server): exit at once, with the holder named,
    when the command line's hydra.sweep.dir is held. A folder set elsewhere (an experiment file) is
    checked as the multirun starts (pinsweep.sweep.callbacks.HoldSweepFolder)."""
    if not {"-m", "--multirun"} & set(arguments):
        return
    for argument in arguments:
        if argument.startswith("hydra.sweep.dir="):
            try:
                check_free(argument.split("=", 1)[1])
            except FolderInUse as error:
                print(f"pinsweep: {error}", file=sys.stderr)
                raise SystemExit(EXIT_IN_USE) from None


def hold_until_exit(sweep_dir: str | Path) -> None:
    """Take the folder for the rest of this process (the sweep's), or FolderInUse; for the multirun's
    start (pinsweep.sweep.callbacks.HoldSweepFolder)."""
    _HELD[str(sweep_dir)] = hold(sweep_dir)
