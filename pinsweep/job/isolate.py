"""Each job's body in a fresh process, so that jobs of one sweep cannot influence each other.

Hydra's basic launcher runs every job of a sweep in one Python process, one after another: the
notebook's mistake in another form. A CUDA context, cuDNN's kernel choices, the caching allocator's
pool, warm page caches and leftover DataLoader workers would carry from one job into the next.
With `isolate=true` (the default) the job runs in a child process of its own, one at a time; the
parent only records the row. A crash that kills the child (segfault, the kernel's OOM killer) becomes
a `crashed` row instead of ending the sweep.

The child is forked from a *fork server*: a process started once per sweep, from a fresh interpreter,
that imports torch, torchvision and pinsweep's job code and then does nothing but fork. Each job is a
copy of that idle process: nothing from a previous job can be in it, CUDA has never been initialized
in it (CUDA cannot be forked safely once initialized; _child checks), and the 3-5 s of importing torch
again that `spawn` costs every job is paid once, in the background (pinsweep.job.start). Set
PINSWEEP_JOB_START=spawn for the old way: a new interpreter per job (the benchmark's "before").
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pinsweep.job import start

log = logging.getLogger(__name__)
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job-log format
EXIT_GRACE_S = 30.0  # beyond train.timeout_s, for the child to time itself out and report


class JobCrashed(RuntimeError):
    """The job's process died without reporting (killed by a signal, or a crash in native code)."""


def _exit_with_parent() -> None:
    """End this job as soon as the sweep process that started it is gone (SIGKILL, a cluster's time
    limit): an orphaned job would run on and share the device with the re-run that resumes the sweep."""
    parent = multiprocessing.parent_process()  # its join() returns when the parent's end of a pipe closes

    def watch() -> None:
        parent.join()
        if os.getpgid(0) == os.getpid():  # the job's whole group (_child): its ranks and their DataLoader workers
            os.killpg(0, signal.SIGKILL)
        os._exit(1)

    if parent is not None:
        threading.Thread(target=watch, name="pinsweep-parent-watch", daemon=True).start()


def _child(config: dict, log_file: str | None, results: Connection) -> None:
    start.IN_JOB_PROCESS = True
    _exit_with_parent()
    # a process group of its own, which its DataLoader workers join: the sweep stops them all at once
    # (_kill_job), and a Ctrl-C at the terminal reaches only the sweep, which records the job as
    # interrupted; the sweep's own SIGTERM handler, inherited under fork, is not this process's
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # a spawned child inherits "spawn" as its default start method; DataLoader workers must start as in
    # the user's own script (the platform default, fork on Linux), not re-import torch every epoch
    multiprocessing.set_start_method(None, force=True)
    import torch

    from pinsweep.job.environment import torch_environment
    from pinsweep.job.ranks import run  # the job: one process, or train.ranks ranks

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers, force=True)
    try:
        if torch.cuda.is_initialized():  # never true from the fork server, which imports and forks only
            raise RuntimeError("the job process started with CUDA initialized: set PINSWEEP_JOB_START=spawn")
        results.send(("environment", torch_environment()))  # first: the row has it also if the job fails
        results.send(("ok", run(OmegaConf.create(config))))
    except Exception as error:
        log_traceback(error)
        try:
            pickle.dumps(error)
        except Exception:  # an exception that cannot cross the process boundary: keep its text
            error = RuntimeError(f"{type(error).__name__}: {error}")
        results.send(("error", error))


def one_line(error: BaseException) -> str:
    """`ValueError: bad sample 3`: the exception's type and the first line of its message, for the
    terminal and the row. An exception raised in a DataLoader worker reaches the job as "Caught
    ValueError in DataLoader worker process 0." plus the worker's whole traceback: its last line is the
    worker's own exception."""
    rank, cause = getattr(error, "rank", None), getattr(error, "error", None)
    if isinstance(rank, int) and isinstance(cause, BaseException):  # pinsweep.job.ranks.RankFailed: that rank's own
        return f"rank {rank}: {one_line(cause)}"
    raw = [line for line in str(error).strip().splitlines() if line.strip()]
    lines = [line.strip() for line in raw]
    if len(lines) > 1 and lines[1].startswith("Original Traceback"):
        # the worker's exception is what follows its traceback's last frame (indented lines), all of it:
        # "ValueError: No samples found ..." may go on over several lines
        last_frame = max((index for index, line in enumerate(raw) if line[:1].isspace()), default=1)
        return f"{' '.join(lines[last_frame + 1 :])} (in a DataLoader worker)"
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def log_traceback(error: BaseException) -> None:
    """The whole traceback into the job's log file, not the terminal (it gets one_line)."""
    record = logging.LogRecord(
        log.name,
        logging.ERROR,
        __file__,
        0,
        "job failed: %s",
        (one_line(error),),
        (type(error), error, error.__traceback__),
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _kill_job(child: BaseProcess) -> None:
    """Kill the job's process and the DataLoader workers it started (its process group, see _child)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except OSError:  # not yet the leader of its own group, so it has started no workers either
        child.kill()
    child.join()


def job_log_file() -> str | None:
    """The log file Hydra set up for this job, so the child writes to the same one."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


def run_isolated(cfg: DictConfig, on_environment: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    """`run_job(cfg)` in a fresh process (see the module's docstring); its exceptions are raised here
    unchanged. `on_environment` gets the job's torch environment (pinsweep.job.environment) as soon as
    the job sends it, before it trains, so that a failed job's row has it too. This process imports
    no torch (only to unpickle a torch exception, when a job raises one)."""
    context = start.job_context()
    results, sender = context.Pipe(duplex=False)
    config = OmegaConf.to_container(cfg, resolve=True)
    child = context.Process(target=_child, args=(config, job_log_file(), sender), name="pinsweep-job")
    child.start()
    sender.close()  # the child holds the only writing end: a dead child reads as end-of-file
    deadline = time.monotonic() + cfg.train.timeout_s + EXIT_GRACE_S if cfg.train.timeout_s else None
    while True:
        try:
            finished = wait([results], timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except BaseException:  # Ctrl-C or SIGTERM (pinsweep.sweep.interrupt): the job stops with the sweep
            _kill_job(child)
            raise
        if not finished:  # stuck where its own alarm cannot reach: stop it from here
            _kill_job(child)
            from pinsweep.job.train import JobTimeout  # here only: it imports torch

            raise JobTimeout(f"job exceeded train.timeout_s={cfg.train.timeout_s:g} and was killed")
        try:
            outcome, payload = results.recv()
        except EOFError:
            child.join()
            message = f"job process exited with code {child.exitcode} without a result (killed or crashed)"
            raise JobCrashed(message) from None
        if outcome != "environment":
            break
        if on_environment is not None:
            on_environment(payload)
    child.join()
    if outcome == "error":
        raise payload
    return payload
