"""What a finished (or stopped) sweep leaves behind."""

from __future__ import annotations

import logging

log = logging.getLogger("pinsweep")


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
