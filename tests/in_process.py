"""`python -m pinsweep <arguments>` run inside the test's own process: the same Hydra command line, sweeper,
callbacks, rows, summary, plots and report, without starting an interpreter that imports Hydra, torch,
pandas and matplotlib again (5-7 s a sweep on the suite's 2-core VM). For tests whose point is what a
sweep writes, not that it is a separate process (signals, a process's exit, a fresh interpreter keep
their subprocess).

The sweep's process-wide changes are undone when it returns, as the end of its process would: Hydra's
logging configuration (each job's `app.log` and the console handlers), pinsweep's stop-signal handlers
and its hold on the sweep folder (pinsweep.sweep.lock)."""

from __future__ import annotations

import io
import logging
import signal
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from pinsweep.sweep import lock

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2, signal.SIGHUP)


@dataclass(frozen=True)
class Ran:
    """What the command did, as subprocess.CompletedProcess names it."""

    returncode: int
    stdout: str
    stderr: str


def _loggers() -> dict[str, logging.Logger]:
    """The root logger and every named one (not the placeholders of names no logger has yet)."""
    named = logging.root.manager.loggerDict.items()
    return {"": logging.getLogger(), **{name: g for name, g in named if isinstance(g, logging.Logger)}}


def pinsweep_here(*arguments: str) -> Ran:
    """`python -m pinsweep <arguments>` (pinsweep.app.cli, as pinsweep/__main__.py calls it), here; its exit
    status (SystemExit's), and what it wrote to stdout and stderr."""
    from pinsweep.app import cli

    loggers = {name: (g.handlers[:], g.level, g.propagate, g.disabled) for name, g in _loggers().items()}
    handlers = {signum: signal.getsignal(signum) for signum in SIGNALS}
    held = set(lock._HELD)
    argv, sys.argv = sys.argv, ["pinsweep", *arguments]
    out, err = io.StringIO(), io.StringIO()
    returncode = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                cli()
            except SystemExit as exit:
                if isinstance(exit.code, str):  # sys.exit("message"): the interpreter prints it, status 1
                    print(exit.code, file=sys.stderr)
                returncode = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    finally:
        sys.argv = argv
        for name, logger in _loggers().items():
            kept, level, propagate, disabled = loggers.get(name, ([], logging.NOTSET, True, False))
            for handler in logger.handlers:
                if handler not in kept:
                    handler.close()
            logger.handlers[:] = kept
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        for folder in set(lock._HELD) - held:
            lock._HELD.pop(folder).release()
    return Ran(returncode, out.getvalue(), err.getvalue())
