"""What a sweep's results print on the terminal: the tables, then the report's conclusion.

Presentation only: the numbers come in as pinsweep.analysis.summarize.Tables and a composed
pinsweep.present.report.Report, their spelling from pinsweep.present.wording. Nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pinsweep.analysis.summarize import OVERALL, Tables, job_label
from pinsweep.present.report import Report
from pinsweep.present.wording import ceiling_note, fastest_first, per_s, ratio_interval, table_cells
from pinsweep.spelling import norm


def print_tables(tables: Tables) -> None:
    """The summary sorted by throughput (config, <unit>/s with its interval, speedup, efficiency vs the
    compute-only ceiling, verdict, status), the per-axis effects, and the failed jobs with their reasons."""
    from rich.console import Console  # lazy: only when something is printed
    from rich.markup import escape  # a cell's `[too wide]` is text, not a style tag
    from rich.table import Table

    summary, effects, rows = tables.summary, tables.effects, tables.rows
    console = Console(width=None if Console().is_terminal else 160)
    axes = tables.axes
    cells = table_cells(summary, rows)
    rate = per_s(summary)  # images/s, tokens/s, ...: train.unit
    table = Table(title=f"pinsweep summary, fastest first ({rate}: steady state, geometric mean over repeats, 95% CI)")
    for column in cells.columns:
        numeric = column.startswith((rate, "speedup", "efficiency"))
        table.add_column(column, justify="right" if numeric else "left")
    for row, (_, record) in zip(cells.itertuples(index=False), fastest_first(summary).iterrows()):
        all_ok = record.get("n", 0) > 0 and not record.get("n_failed", 0) and not record.get("n_loss_not_finite", 0)
        table.add_row(*(escape(str(cell)) for cell in row), style=None if all_ok else "red")
    console.print(table)
    if axes:
        console.print(
            "speedup: over the baseline config, compared within repeat rounds; intervals are simultaneous over "
            f"every comparison (95% for all at once); efficiency: {rate} over the compute-only ceiling"
            + (" (per rank where train.ranks > 1)" if _ranks(rows) > 1 else "")
        )
    notes = summary["note"].dropna().astype(str).str.strip() if "note" in summary else pd.Series(dtype=str)
    if notes.astype(bool).any():  # read back from summary.csv, no note is NaN
        console.print(f"note: {notes[notes.astype(bool)].iloc[0]}", markup=False)
    if caveat := ceiling_note(summary):  # efficiency shown, but not as a finding
        console.print(caveat, style="yellow", markup=False, highlight=False)
    if not effects.empty:
        overall = effects[effects["held_fixed"] == OVERALL]
        console.print(f"per-axis effects (ratio of {rate}, every other axis held fixed):")
        for _, effect in overall.iterrows():
            console.print(
                f"  {effect['axis']}: {effect['reference']} -> {effect['level']}: "
                f"{ratio_interval(effect['ratio'], effect['ci_low'], effect['ci_high'])}  {effect['effect']}",
                markup=False,
            )
    # one line per failed or diverged job; the whole traceback is in the job's log
    for _, row in rows[rows["status"] != "ok"].iterrows():
        error = str(row.get("error", "")).strip().split("\n", 1)[0]
        console.print(f"[red]job {job_label(row)} {row['status']}[/red]: {error}{_log_of(row)}", highlight=False)
    if "loss_finite" in rows:  # ok jobs whose training diverged (NaN or inf loss): timing kept, flagged
        for _, row in rows[rows["status"].eq("ok") & rows["loss_finite"].map(norm).eq("false")].iterrows():
            console.print(
                f"[red]job {job_label(row)} ok, loss not finite[/red]: final loss {row.get('final_loss')}, "
                f"timing kept{_log_of(row)}"
            )


def _ranks(rows) -> int:
    """The most ranks any job ran (pinsweep.job.ranks); 1 for rows from before ranks were recorded."""
    known = rows is not None and "ranks" in rows and rows["ranks"].notna().any()
    return int(rows["ranks"].max()) if known else 1


def _log_of(row: pd.Series) -> str:
    log = row.get("log")
    return f" (log: {log})" if isinstance(log, str) and log else ""


def print_written(paths: Sequence[Path]) -> None:
    """`wrote <sweep>/summary.csv and <sweep>/effects.csv`: where the tables went."""
    print(f"wrote {' and '.join(str(path) for path in paths)}")


def print_report(report: Report, written: Sequence[Path], pngs: Sequence[str]) -> None:
    """The report's conclusion, the next sweep's commands and an auto-tune's outcome, as composed once
    by pinsweep.present.report.build, then the files written."""
    print("conclusion:")
    for sentence in report.conclusion:
        print(f"  {sentence}")
    for sweep in report.advice.commands:
        print(f"next sweep, to {sweep.why}:\n  {sweep.command}")
    if report.autotune:
        print("auto-tune:")
        for sentence in report.autotune:
            print(f"  {sentence}")
    files = [f"{path} (self-contained)" if path.suffix == ".html" else path.name for path in written]
    if files or pngs:  # what could not be written (a full disk) was named as it failed
        print(f"wrote {', '.join(files)}{' and ' if files and pngs else ''}{', '.join(pngs)}")
