"""How a job's processes start: the job from pinsweep's fork server (pinsweep.job.isolate), its ranks
by fork or from the same server (pinsweep.job.ranks). No torch here: the sweep's process imports it."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os

START_METHODS = ("forkserver", "spawn")
# what the fork server imports once, so that no job imports it again: the job and its lazy imports
PRELOAD = ["pinsweep.job.train", "pinsweep.job.ranks", "scipy.special"]
# True in a job's own process (pinsweep.job.isolate's child): fresh from the fork server or spawned, it
# has run no parallel torch work yet, so it can fork its ranks (pinsweep.job.ranks); a process that has
# (isolate=false, a test) cannot: GNU OpenMP's thread pool does not survive fork, and a forked rank
# hangs in its first op
IN_JOB_PROCESS = False


def start_method() -> str:
    """The start method of jobs, PINSWEEP_JOB_START: the fork server (default), or spawn (the old way)."""
    method = os.environ.get("PINSWEEP_JOB_START", "forkserver")
    if method not in START_METHODS:
        raise ValueError(f"PINSWEEP_JOB_START={method}: choose one of {', '.join(START_METHODS)} (or unset it)")
    return method


def job_context() -> multiprocessing.context.BaseContext:
    """The multiprocessing context jobs start from (the fork server, with its imports, by default)."""
    context = multiprocessing.get_context(start_method())
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(PRELOAD)
    return context


def start_job_server() -> None:
    """Start the fork server now (it returns at once), so that it imports torch while this process
    imports its own and composes the config; the first job then waits for it no longer than that."""
    if job_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
