"""The sweep's tables in the terminal, and the command that summarizes a sweep folder.

    python -m pinsweep.summarize multirun/2026-11-24_10-00-00 [--baseline loader.num_workers=0]

Presentation only: the numbers come from pinsweep.analysis.summarize, their spelling from pinsweep.present.wording.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from pinsweep.analysis.summarize import OVERALL, SummaryError, Tables, job_label, norm, summarize_sweep
from pinsweep.present.wording import axes_of, fastest_first, ratio_interval, table_cells


def print_tables(tables: Tables) -> None:
    """The summary sorted by images/s (config, images/s with its interval, speedup, efficiency vs the
    compute-only ceiling, verdict, status), the per-axis effects, and the failed jobs with their reasons."""
    from rich.console import Console  # lazy: the report imports this module without printing
    from rich.table import Table

    summary, effects, rows = tables.summary, tables.effects, tables.rows
    console = Console(width=None if Console().is_terminal else 160)
    axes = axes_of(summary)
    cells = table_cells(summary, rows)
    table = Table(title="pinsweep summary, fastest first (images/s: steady state, geometric mean over repeats, 95% CI)")
    for column in cells.columns:
        numeric = column.startswith(("images/s", "speedup", "efficiency"))
        table.add_column(column, justify="right" if numeric else "left")
    for row, (_, record) in zip(cells.itertuples(index=False), fastest_first(summary).iterrows()):
        all_ok = record.get("n", 0) > 0 and not record.get("n_failed", 0) and not record.get("n_loss_not_finite", 0)
        table.add_row(*map(str, row), style=None if all_ok else "red")
    console.print(table)
    if axes:
        console.print(
            "speedup: over the baseline config, compared within repeat rounds; intervals are simultaneous over "
            "every comparison (95% for all at once); efficiency: images/s over the compute-only ceiling"
        )
    if summary["note"].astype(bool).any():
        console.print(f"note: {summary['note'].iloc[0].strip()}")
    if not effects.empty:
        overall = effects[effects["held_fixed"] == OVERALL]
        console.print("per-axis effects (ratio of images/s, every other axis held fixed):")
        for _, effect in overall.iterrows():
            console.print(
                f"  {effect['axis']}: {effect['reference']} -> {effect['level']}: "
                f"{ratio_interval(effect['ratio'], effect['ci_low'], effect['ci_high'])}  {effect['effect']}"
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


def _log_of(row: pd.Series) -> str:
    log = row.get("log")
    return f" (log: {log})" if isinstance(log, str) and log else ""


def summarize_and_report(sweep_dir: str | Path, baseline: str = "") -> Tables:
    """Summarize a sweep folder, write summary.csv and effects.csv, print them; return the tables."""
    tables = summarize_sweep(sweep_dir, baseline)
    print_tables(tables)
    print(f"wrote {Path(sweep_dir) / 'summary.csv'} and {Path(sweep_dir) / 'effects.csv'}")
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinsweep.summarize", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a sweep folder, e.g. multirun/2026-11-24_10-00-00")
    parser.add_argument("--baseline", default="", help="e.g. loader.pin_memory=false,loader.num_workers=0")
    args = parser.parse_args(argv)
    try:
        tables = summarize_and_report(args.sweep_dir, args.baseline)
    except SummaryError as error:
        print(f"pinsweep.summarize: {error}", file=sys.stderr)
        return 2
    return 1 if tables.failed else 0
