"""Hydra callbacks: the summary, plots and report are written when a multirun ends, also when some of
its jobs failed."""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("pinsweep")


class SummarizeOnMultirunEnd(Callback):
    """Summarize the sweep folder once every job has returned (runs locally, also under SLURM), then
    draw the plots and write the report.

    The summary comes first and stands alone: a plot or report that fails is logged, not raised, so it
    never costs the summary. Exits non-zero after writing when a job failed, so that scripts and CI
    notice; Hydra lets a SystemExit from a callback through as the process's exit status.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if write_results(config.hydra.sweep.dir):
            raise SystemExit(1)


def write_results(sweep_dir: str) -> int:
    """summary.csv and effects.csv, then plots and report; returns the failed-job count. Also called
    for a sweep stopped by Ctrl-C or SIGTERM (pinsweep.sweep.interrupt)."""
    from pinsweep.present.terminal import summarize_and_report  # lazy: keeps job start-up light

    tables = summarize_and_report(sweep_dir)
    try:
        from pinsweep.present.report import write_report

        write_report(sweep_dir, tables=tables)  # the tables just summarized, not re-read from disk
    except Exception:
        log.exception("plots/report not written (summary.csv is); retry: python -m pinsweep.report %s", sweep_dir)
    return tables.failed
