"""Writing a sweep's files: each whole or not at all, with the user's umask, and a file the disk has no
room for costs that file, not the run.

Every result file (a job's row.csv and ranks.csv, summary.csv, effects.csv, the plots, the report,
rounds.json, autotune.yaml) is written through `replacing(path)`: into a new temporary file beside it,
then renamed over it, so a reader never sees half a file. The temporary file is created with mode 0666
and the kernel applies the umask (and a folder's default ACL) to it, as to any file the user creates:
0644 under umask 022, 0600 under 077, so a colleague reads a sweep on a shared cluster folder as the
user's umask says (tempfile.mkstemp would make every file 0600).

An OSError while writing (no space left on the device, a folder that is read-only or gone) comes out as
`WriteError`, an OSError about the file meant, not the temporary one. The files made when a sweep ends
are each written inside `output(path, unwritten)`: a WriteError there removes the file, partly written
or left from an earlier run, so that no truncated PNG, half a report or out-of-date table passes for this
sweep's; logs one line naming the file and the real error (`report.html not written: [Errno 28] No space
left on device: '/x/report.html'`) instead of a traceback; and adds the path to `unwritten`. The caller
goes on with the next file, and the sweep exits non-zero because an output is missing
(pinsweep.sweep.results). Any other exception, a bug, passes through: it is no disk problem.
Below every layer: it imports nothing of pinsweep.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("pinsweep")


class WriteError(OSError):
    """An OSError writing a file: errno and strerror as the system said them, filename the file meant."""


@contextlib.contextmanager
def replacing(path: str | Path, sync: bool = False) -> Iterator[Path]:
    """Yield a new, empty temporary file beside `path` (same suffix: matplotlib reads the format from it)
    for the block to write by name; then it replaces `path` in one rename (after an fsync, with `sync`:
    a job's row must survive a crash). The file's mode is the umask's, as `open()` would make it. On any
    error the temporary file is removed; an OSError comes out as a WriteError naming `path`."""
    path = Path(path)
    temporary = None
    try:
        while temporary is None:
            candidate = path.with_name(f".{path.stem}-{secrets.token_hex(4)}{path.suffix}")
            try:  # 0o666: the kernel applies the umask, as for any file the user creates
                os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                temporary = candidate
            except FileExistsError:
                continue
        yield temporary
        if sync:
            handle = os.open(temporary, os.O_RDONLY)
            try:
                os.fsync(handle)
            finally:
                os.close(handle)
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            if error.errno is None:  # raised by Python code, not the system: its message, and the file meant
                raise WriteError(f"{error}: {str(path)!r}") from error
            raise WriteError(error.errno, error.strerror, str(path)) from error
        raise


@contextlib.contextmanager
def output(path: str | Path, unwritten: list[Path]) -> Iterator[None]:
    """Write `path` in the block (through `replacing`); on a WriteError, the one line, no file, and `path`
    in `unwritten`. Anything else raised in the block is not about the disk and passes through."""
    try:
        yield
    except WriteError as error:
        with contextlib.suppress(OSError):  # left from an earlier run; or the folder itself is gone or read-only
            Path(path).unlink(missing_ok=True)
        log.error("%s not written: %s", Path(path).name, error)
        unwritten.append(Path(path))
