"""Every Hydra callback pinsweep registers (conf/config.yaml, conf/experiment/autotune.yaml), in one place.

Each is a thin hook; what it does lives in the module of pinsweep/sweep/ named beside it.

- `HoldSweepFolder` (multirun start): takes the sweep folder, or refuses with exit 2 (lock.py)
- `StopOnSignal` (multirun start): Ctrl-C / SIGTERM record the running job, summarize the rest (interrupt.py)
- `AnnounceJobs` (multirun start, job start): the job count, then `job #n (i of N)` per job (progress.py)
- `SaveSweepConfig` (multirun start): multirun.yaml for sweepers that write none (resume.py)
- `SummarizeOnMultirunEnd` (multirun end): summary, plots, report; exit 1 if a job failed (results.py)

Hydra runs the callbacks of one event in the order conf/config.yaml lists them. A SystemExit raised by a
callback passes Hydra's callback guard and becomes the process's exit status.
"""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from pinsweep.sweep import interrupt, lock, progress, resume


class HoldSweepFolder(Callback):
    """Takes the sweep folder as the multirun starts, before anything is written there; refuses with
    one line and exit status 2 when another sweep holds it."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            lock.hold_until_exit(config.hydra.sweep.dir)
        except lock.FolderInUse as error:
            print(f"pinsweep: {error}", file=sys.stderr)
            raise SystemExit(lock.EXIT_IN_USE) from None


class StopOnSignal(Callback):
    """From the start of a multirun, Ctrl-C and SIGTERM end the sweep as pinsweep/sweep/interrupt.py
    says (pinsweep.app.cli catches the interruption and calls finish_interrupted)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        interrupt.install(str(config.hydra.sweep.dir))


class AnnounceJobs(Callback):
    """Logs `job #n (i of N): overrides` as each job starts (the count is shared through the sweep folder,
    because under a cluster launcher jobs start in other processes on other machines)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        progress.write_job_count(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        progress.announce_job(config)


class SaveSweepConfig(Callback):
    """Writes `multirun.yaml` as a sweep starts, for sweepers that do not (Hydra's basic sweeper does;
    the Optuna sweeper does not), so that `pinsweep.resume` can re-run the sweep."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        resume.save_sweep_config(config)


class SummarizeOnMultirunEnd(Callback):
    """Summarize the sweep folder once every job has returned (runs locally, also under SLURM), then
    draw the plots and write the report (pinsweep.sweep.results.write_results).

    The summary comes first and stands alone: a plot or report that fails is logged, not raised, so it
    never costs the summary. Exits non-zero after writing when a job failed or an output could not be
    written, so that scripts and CI notice.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from pinsweep.sweep.results import write_results  # lazy: pandas and matplotlib, not at job start

        if write_results(config.hydra.sweep.dir):
            raise SystemExit(1)
