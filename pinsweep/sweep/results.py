"""What a sweep's results go through, one way, each step once: the rows, then the tables
(pinsweep.analysis.summarize), then what presents them (pinsweep.present), each writing its own files.

    rows = read_rows(sweep)                                    # pinsweep.record, once
    tables = summarize_sweep(sweep, baseline, rows)            # the tables, in memory: prints and writes nothing
    write_tables(tables, sweep); print_tables(tables)          # summary.csv, effects.csv; the terminal table
    plots = make_plots(tables, sweep)                          # the PNGs
    report = build(sweep, tables, plots, autotune)             # conclusion and advice, composed once
    write_report(report, sweep); print_report(report, ...)    # report.html, report.md; the conclusion printed

Called by the end-of-sweep callback (pinsweep.sweep.callbacks), a sweep stopped by a signal
(pinsweep.sweep.interrupt), the auto-tune's confirmation (pinsweep.autotune.sweeper) and the commands
`python -m pinsweep.summarize` and `python -m pinsweep.report` (pinsweep/summarize.py, pinsweep/report.py).
Nothing below this module calls back up into it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from pinsweep.analysis.summarize import SummaryError, Tables, read_tables, summarize_sweep, write_tables
from pinsweep.autotune.confirm import read_outcome, sentences
from pinsweep.present import report, terminal
from pinsweep.present.plots import make_plots
from pinsweep.record import ROW_FILE, read_rows
from pinsweep.sweep.lock import FolderUnwritable, cannot_write

log = logging.getLogger("pinsweep")


def summarize_folder(
    sweep_dir: str | Path, baseline: str = "", rows: pd.DataFrame | None = None, write: bool = True
) -> Tables:
    """Summarize a sweep folder, write summary.csv and effects.csv (unless `write` is false: a folder the
    caller found it cannot write), print the tables; return them."""
    tables = summarize_sweep(sweep_dir, baseline, rows)
    paths = write_tables(tables, sweep_dir) if write else ()  # one that could not be is named in one line
    terminal.print_tables(tables)
    if paths:
        terminal.print_written(paths)
    return tables


def tables_missing(sweep_dir: str | Path) -> list[Path]:
    """summary.csv and effects.csv, those not in the folder after summarize_folder: not written (a file
    that could not be written is removed, not left half written: pinsweep.outputs)."""
    return [path for path in (Path(sweep_dir) / "summary.csv", Path(sweep_dir) / "effects.csv") if not path.exists()]


def report_folder(sweep_dir: str | Path, tables: Tables) -> list[Path]:
    """The plots and the report of summarized tables, into the sweep folder, and the conclusion printed;
    returns the files that could not be written (a full disk), each already named in one line."""
    sweep_dir = Path(sweep_dir)
    plots = make_plots(tables, sweep_dir)
    outcome = read_outcome(sweep_dir)  # an auto-tune's outcome (pinsweep.autotune.confirm), else None
    composed = report.build(sweep_dir, tables, plots, sentences(outcome) if outcome is not None else None)
    written = report.write_report(composed, sweep_dir)
    terminal.print_report(composed, written, sorted(p.name for p in sweep_dir.glob("*.png")))
    reports = [sweep_dir / "report.html", sweep_dir / "report.md"]
    return [*plots.unwritten, *(path for path in reports if path not in written)]


def write_results(sweep_dir: str | Path, baseline: str = "") -> int:
    """The end of a sweep: summary.csv and effects.csv, then plots and report; returns the failed jobs
    plus the outputs missing (non-zero: the sweep exits 1). The summary comes first and stands alone. A
    file that could not be written was named with its real error as it failed (pinsweep.outputs), and the
    others are still written; a report that fails otherwise is an error in pinsweep, not the disk, and
    is logged as one with its traceback, never raised past the summary."""
    tables = summarize_folder(sweep_dir, baseline)
    unwritten = tables_missing(sweep_dir)
    broken = 0
    try:
        unwritten += report_folder(sweep_dir, tables)  # the tables just summarized, not re-read from disk
    except OSError as error:  # not writing a file (that was caught where it was written): reading one, say
        log.error("report not made: %s (summary.csv and effects.csv are written)", error)
        broken = 1
    except Exception as error:  # a bug: no disk to free, and its traceback is what a fix needs
        log.exception(
            "report not made: %s: %s, an error in pinsweep, not the disk (summary.csv and effects.csv are "
            "written); please report it with this traceback",
            type(error).__name__,
            error,
        )
        broken = 1
    if unwritten:
        log.error(
            "%d output(s) not written (%s), each for the error named above; once that is fixed: "
            "python -m pinsweep.report %s",
            len(unwritten),
            ", ".join(path.name for path in unwritten),
            sweep_dir,
        )
    return tables.failed + len(unwritten) + broken


def stale(sweep_dir: Path) -> bool:
    """summary.csv missing, or older than some job's row (a resumed sweep added rows)."""
    summary = sweep_dir / "summary.csv"
    if not summary.exists() or not (sweep_dir / "effects.csv").exists():
        return True
    written = summary.stat().st_mtime
    return any(p.stat().st_mtime > written for p in sweep_dir.rglob(ROW_FILE))


def report_command(sweep_dir: str | Path, baseline: str = "") -> list[Path]:
    """`python -m pinsweep.report`: the folder's rows read once; summarized (and written, printed) when
    summary.csv is stale or another baseline is asked for, else its tables read back; then the report.
    Returns the files that could not be written. Raises SummaryError when the folder holds no job rows,
    FolderUnwritable when this process cannot write it (before anything is drawn: the report is its files)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise SummaryError(f"{sweep_dir}: no such sweep folder (look under multirun/)")
    rows = read_rows(sweep_dir)
    if rows.empty:
        raise SummaryError(f"{sweep_dir}: no job rows found (no <job>/row.csv): nothing to report")
    if (line := cannot_write(sweep_dir)) is not None:
        raise FolderUnwritable(line)
    if baseline or stale(sweep_dir):
        tables = summarize_folder(sweep_dir, baseline, rows)
        unwritten = tables_missing(sweep_dir)
    else:
        tables, unwritten = read_tables(sweep_dir, rows), []
    return unwritten + report_folder(sweep_dir, tables)
