"""One sweep per folder: a second sweep (or a resume) into a folder that a running sweep holds refuses.

Two sweeps into one folder (a resume started while the first run still goes, two users, a re-run with
the same `hydra.sweep.dir`) would run the same jobs at once on one machine and time each other. The
sweep's process holds an flock on `<sweep>/.pinsweep.lock` (filelock's UnixFileLock) from the start of
the multirun until it exits. The kernel drops an flock with the last descriptor of the process that
took it, also on SIGKILL, so a killed sweep leaves no stale hold; `.pinsweep-running` beside it names
the holder for the message.

A folder this process cannot write (read-only, another user's, a read-only mount) is refused the same
way, before anything is written there: `cannot_write` says so in one line, naming the folder and the
permission, for the commands to refuse with (pinsweep/__main__.py, summarize, report, resume) and for
`hold_until_exit` (a sweep folder set where the command line does not show it).
"""

from __future__ import annotations

import errno
import os
import pwd
import shlex
import socket
import stat
import sys
from datetime import datetime, timezone
from pathlib import Path

from filelock import Timeout, UnixFileLock

LOCK_FILE = ".pinsweep.lock"
HOLDER_FILE = ".pinsweep-running"  # who holds the lock: read only to name it; the lock decides
EXIT_IN_USE = 2
EXIT_UNWRITABLE = 1
PROBE_PREFIX = ".pinsweep-probe-"

# the locks this process holds, by folder: kept here, not on the callback, because submitit pickles
# the launcher together with the callbacks, and a lock (its thread lock) cannot be pickled
_HELD: dict[str, UnixFileLock] = {}


class FolderInUse(RuntimeError):
    """Another running sweep holds the folder; the message names it and says what to do."""


class FolderUnwritable(RuntimeError):
    """A folder this process cannot write; the message is `cannot_write`'s line."""


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _why(folder: Path, code: int) -> str:
    """What stops the write, in words: the folder's mode and owner against this process's user, and
    the mount or flag that overrides them."""
    info = folder.stat()
    mode = f"{stat.filemode(info.st_mode)} {_user(info.st_uid)}, running as {_user(os.geteuid())}"
    if code == errno.EROFS:
        return f"{mode}; a read-only file system"
    if code == errno.EPERM:  # root, or the owner, is refused: a flag, not the mode bits
        return f"{mode}; an immutable or append-only folder: lsattr -d {folder}"
    return mode


def _probe(folder: Path) -> int:
    """0 when a file can be created in `folder` (and is removed again), else the errno: the real answer
    where os.access says yes wrongly (NFS root_squash, FUSE, some ACLs)."""
    path = folder / f"{PROBE_PREFIX}{os.getpid()}"
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:  # left by a killed process of this pid: the folder was writable then
        pass
    except OSError as error:
        return error.errno or errno.EACCES
    path.unlink(missing_ok=True)
    return 0


def _refused(folder: Path) -> int:
    """The errno os.access would not tell, when it says no: a read-only mount, a flag that refuses even
    root or the owner, else the mode bits."""
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        return errno.EROFS
    info = folder.stat()
    if os.geteuid() == 0 or (info.st_uid == os.geteuid() and info.st_mode & stat.S_IWUSR):
        return errno.EPERM
    return errno.EACCES


def cannot_write(folder: str | Path) -> str | None:
    """None when this process can write `folder`, or create it (the nearest folder that exists is
    writable); else one line naming that folder and the permission, e.g. `cannot write /data/sweeps:
    Permission denied (dr-xr-xr-x alice, running as bob)`. os.access answers first, touching nothing;
    where it says yes, a file created and removed again confirms it."""
    target = Path(folder)
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    existing = Path(os.path.abspath(existing))  # `.` said as the folder it is
    named = str(existing) if existing == Path(os.path.abspath(target)) else f"{existing} (to create {target})"
    if not existing.is_dir():
        return f"cannot write {named}: {os.strerror(errno.ENOTDIR)} ({existing} is a file)"
    code = _probe(existing) if os.access(existing, os.W_OK | os.X_OK) else _refused(existing)
    if code == 0:
        return None
    return f"cannot write {named}: {os.strerror(code)} ({_why(existing, code)})"


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
    start (pinsweep.sweep.callbacks.HoldSweepFolder). A folder this process cannot write ends the sweep
    here, in one line and exit 1, before Hydra writes multirun.yaml: the command line checked its own
    hydra.sweep.dir already (pinsweep/__main__.py), this catches one set in a config file."""
    if (line := cannot_write(sweep_dir)) is not None:
        print(f"pinsweep: {line}: choose another hydra.sweep.dir=", file=sys.stderr)
        raise SystemExit(EXIT_UNWRITABLE)
    _HELD[str(sweep_dir)] = hold(sweep_dir)
