"""Each job's body in a fresh process, so that jobs of one sweep cannot influence each other.

Hydra's basic launcher runs every job of a sweep in one Python process, one after another: the
notebook's mistake in another form. A CUDA context, cuDNN's kernel choices, the caching allocator's
pool, warm page caches and leftover DataLoader workers would carry from one job into the next.
With `isolate=true` (the default) the job runs in a child started with `spawn` (a new interpreter:
CUDA cannot be forked safely), one at a time; the parent only records the row. A crash that kills
the child (segfault, the kernel's OOM killer) becomes a `crashed` row instead of ending the sweep.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import sys
import threading
from multiprocessing.connection import Connection, wait
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pinsweep.train import JobTimeout, run_job

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
        os._exit(1)

    if parent is not None:
        threading.Thread(target=watch, name="pinsweep-parent-watch", daemon=True).start()


def _child(config: dict, log_file: str | None, results: Connection) -> None:
    _exit_with_parent()
    # a spawned child inherits "spawn" as its default start method; DataLoader workers must start as in
    # the user's own script (the platform default, fork on Linux), not re-import torch every epoch
    multiprocessing.set_start_method(None, force=True)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers, force=True)
    try:
        results.send(("ok", run_job(OmegaConf.create(config))))
    except Exception as error:
        try:
            pickle.dumps(error)
        except Exception:  # an exception that cannot cross the process boundary: keep its text
            error = RuntimeError(f"{type(error).__name__}: {error}")
        results.send(("error", error))


def _job_log_file() -> str | None:
    """The log file Hydra set up for this job, so the child writes to the same one."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


def run_isolated(cfg: DictConfig) -> dict[str, Any]:
    """`run_job(cfg)` in a fresh spawned process; its exceptions are raised here unchanged."""
    context = multiprocessing.get_context("spawn")
    results, sender = context.Pipe(duplex=False)
    config = OmegaConf.to_container(cfg, resolve=True)
    child = context.Process(target=_child, args=(config, _job_log_file(), sender), name="pinsweep-job")
    child.start()
    sender.close()  # the child holds the only writing end: a dead child reads as end-of-file
    deadline = cfg.train.timeout_s + EXIT_GRACE_S if cfg.train.timeout_s else None
    if not wait([results], timeout=deadline):  # stuck where its own alarm cannot reach: stop it from here
        child.kill()
        child.join()
        raise JobTimeout(f"job exceeded train.timeout_s={cfg.train.timeout_s:g} and was killed")
    try:
        outcome, payload = results.recv()
    except EOFError:
        child.join()
        message = f"job process exited with code {child.exitcode} without a result (killed or crashed)"
        raise JobCrashed(message) from None
    child.join()
    if outcome == "error":
        raise payload
    return payload
