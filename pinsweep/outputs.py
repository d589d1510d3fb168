"""Writing a sweep's output files (tables, plots, report) so that a full disk costs a file, not the run.

The rows are written atomically by pinsweep.record, job by job, and stay. The files made from them
when a sweep ends are each written inside `output(path, unwritten)`: an OSError there (no space left
on the device, a folder that is read-only or gone) removes the file, partly written or left from an
earlier run, so that no truncated PNG, half a report or out-of-date table passes for this sweep's;
logs one line naming the file and the reason instead of a traceback; and adds the path to
`unwritten`. The caller goes on with the next file, and the sweep exits non-zero because an output
is missing (pinsweep.sweep.results).
Below every layer: it imports nothing of pinsweep.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("pinsweep")


@contextlib.contextmanager
def output(path: str | Path, unwritten: list[Path]) -> Iterator[None]:
    """Write `path` in the block; on an OSError, the one line, no partial file, and `path` in `unwritten`."""
    try:
        yield
    except OSError as error:
        with contextlib.suppress(OSError):  # nothing there, or the folder itself is gone or read-only
            Path(path).unlink(missing_ok=True)
        log.error("%s not written: %s", path, error.strerror or error)
        unwritten.append(Path(path))
