"""How a person reads a number or a config, one spelling everywhere: the terminal, the report and its advice.

`1.80x [1.60, 2.00]` for a ratio and its interval, `1800 [1700, 1900]` for a throughput (<unit>/s),
`num_workers=2, pin_memory=false` for a config, as it is typed on the command line.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from pinsweep.analysis.summarize import (
    CEILING_PRECISE_CI,
    TOO_FAST_EFFICIENCY,
    axes_of,
    default_baseline,
    level_key,
    schema_defaults,
)
from pinsweep.spelling import norm


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


# A 95% interval whose high end is over ten times its low end (or that is not finite, or reaches 0 as printed)
# holds every answer a reader could act on: two runs of a noisy job give `1588 [0, 40277747]`. Such an
# interval is written `[too wide]`, never quoted as a finding.
WIDEST_INTERVAL = 10.0
TOO_WIDE = " [too wide]"


def useful(low: Any, high: Any) -> bool:
    """Whether an interval says something: both ends there, finite, positive, within WIDEST_INTERVAL."""
    if missing(low) or missing(high):
        return False
    low, high = float(low), float(high)
    return math.isfinite(low) and math.isfinite(high) and low > 0 and high <= low * WIDEST_INTERVAL


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def interval(low: Any, high: Any) -> str:
    """` [0.59, 0.84]`; '' without an interval; ` [too wide]` for one that says nothing (`useful`)."""
    if missing(low) or missing(high):
        return ""
    return f" [{low:.2f}, {high:.2f}]" if useful(low, high) and f"{low:.2f}" != "0.00" else TOO_WIDE


def ratio_interval(value: Any, low: Any = math.nan, high: Any = math.nan) -> str:
    """`0.71x [0.59, 0.84]`, or `-` when there is no ratio: one spelling in the terminal, tables and report."""
    return "-" if missing(value) else ratio(value) + interval(low, high)


def ips(value: float, low: Any = math.nan, high: Any = math.nan) -> str:
    """`1800 [1700, 1900]`; `1800` without an interval; `1588 [too wide]` for one that says nothing."""
    if missing(low) or missing(high):
        ci = ""
    else:
        ci = f" [{low:.0f}, {high:.0f}]" if useful(low, high) and f"{low:.0f}" != "0" else TOO_WIDE
    return f"{value:.0f}{ci}"


def short_name(column: str, columns: list[str]) -> str:
    """`loader.num_workers` -> `num_workers` when no other column ends the same way."""
    tail = column.rsplit(".", 1)[-1]
    return tail if sum(c.rsplit(".", 1)[-1] == tail for c in columns) == 1 else column


def config_label(record: pd.Series, axes: list[str]) -> str:
    """`num_workers=2, pin_memory=false`, as typed on the command line."""
    return ", ".join(f"{short_name(a, axes)}={record[a]}" for a in axes) or "the single config"


def claim_label(record: pd.Series, axes: list[str], inactive: list[str]) -> str:
    """config_label without the axes that cannot act here: on a CPU, `num_workers=2`, never
    `num_workers=2, pin_memory=true`, which would credit pin_memory with a speed it cannot have."""
    active = [a for a in axes if a not in inactive]
    return config_label(record, active) if active else "every config"


def baseline_record(summary: pd.DataFrame) -> pd.Series | None:
    """The summary's baseline row, None when no config ran."""
    base = summary[summary["baseline"].astype(bool)] if "baseline" in summary else summary.iloc[0:0]
    return base.iloc[0] if len(base) else None


def baseline_origin(summary: pd.DataFrame) -> tuple[str, dict[str, str]]:
    """How the summary's baseline came to be, and the config the default rule picks (each swept setting at
    the schema's default, else its lowest level): `defaults` (that config, every setting at its default),
    `lowest` (that config, some setting at its lowest level), `chosen` (another, while the default one ran:
    a --baseline), `fallback` (another, since the default one did not run), or `none`."""
    axes, base = axes_of(summary), baseline_record(summary)
    levels = {a: sorted(summary[a].astype(str).unique(), key=level_key) for a in axes}
    rule = default_baseline(levels)
    if base is None:
        return "none", rule
    if all(str(base[a]) == rule[a] for a in axes):
        defaults = schema_defaults()
        return ("defaults" if all(rule[a] == defaults.get(a) for a in axes) else "lowest"), rule
    match = summary["n"].gt(0) if "n" in summary else summary["ips_geomean"].notna()
    for a in axes:
        match &= summary[a].astype(str) == rule[a]
    return ("chosen" if match.any() else "fallback"), rule


def at_baseline_inactive(record: pd.Series, summary: pd.DataFrame, inactive: list[str]) -> bool:
    """Whether a config sits at the baseline's levels of every axis that cannot act here: then its short
    label (claim_label) names this one row, since the rows it also fits differ only where nothing acts."""
    base = baseline_record(summary)
    return not inactive or (base is not None and all(record[a] == base[a] for a in inactive))


def row_label(record: pd.Series, summary: pd.DataFrame, axes: list[str], inactive: list[str]) -> str:
    """The label a sentence names one row by when it quotes that row's figures: claim_label where that names
    this row alone (`at_baseline_inactive`), else every axis (`num_workers=0, pin_memory=true`), so a figure is
    never credited to another row with the same short label."""
    active = [a for a in axes if a not in inactive]
    if active and at_baseline_inactive(record, summary, inactive):
        return config_label(record, active)
    return config_label(record, axes)


def config_status(record: pd.Series, axes: list[str], rows: pd.DataFrame | None) -> str:
    """`3 ok`, `2 ok, 1 oom`, `3 ok (1 loss not finite)`: how the config's jobs ended."""
    counts = {"ok": int(record.get("n", 0))}
    if rows is not None and "status" in rows and record.get("n_failed", 0):
        mine = np.logical_and.reduce([rows[a].map(norm) == record[a] for a in axes]) if axes else True
        for status, count in rows.loc[mine & (rows["status"] != "ok"), "status"].value_counts().items():
            counts[str(status)] = int(count)
    elif record.get("n_failed", 0):
        counts["failed"] = int(record["n_failed"])
    text = ", ".join(f"{count} {status}" for status, count in counts.items() if count or status != "ok") or "no run"
    diverged = record.get("n_loss_not_finite", 0)
    return f"{text} ({int(diverged)} loss not finite)" if pd.notna(diverged) and diverged else text


def unit(table: pd.DataFrame | pd.Series) -> str:
    """What the sweep's throughput counts (train.unit: images, tokens, samples, ...), from the summary or
    one of its records; a summary written before the unit existed counted images."""
    value = table.get("unit")
    if isinstance(value, pd.Series):
        value = next((v for v in value.dropna().astype(str) if v), None)
    return value if isinstance(value, str) and value else "images"


def per_s(table: pd.DataFrame | pd.Series) -> str:
    """`images/s`, `tokens/s`: the throughput's unit as every header, axis and sentence writes it."""
    return f"{unit(table)}/s"


def per_s_short(table: pd.DataFrame | pd.Series) -> str:
    """The same inside a plot's bars: `img/s` for images, as it always read there."""
    return "img/s" if unit(table) == "images" else per_s(table)


# the one way to make a ceiling precise, as every caveat says it
PRECISE_CEILING_HOW = "raise train.ceiling_steps or train.ceiling_budget_s for a precise ceiling"


def imprecise_ceiling(record: pd.Series) -> bool:
    """Whether a config's efficiency and verdict rest on an imprecise compute-only ceiling (the summary's
    `ceiling_imprecise`; a summary written before the column existed: no)."""
    value = record.get("ceiling_imprecise")
    return not missing(value) and str(value).lower() == "true"


def efficiency_cell(record: pd.Series) -> str:
    """`95%`, or `323% (imprecise)` where the ceiling is not a finding: the number, never as a finding."""
    value = record.get("efficiency")
    if missing(value):
        return "-"
    return f"{value:.0%} (imprecise)" if imprecise_ceiling(record) else f"{value:.0%}"


def why_imprecise(record: pd.Series) -> str:
    """`its 95% interval is not finite` / `its 95% interval is ±23%` / `the config runs at 323% of it`."""
    reasons = []
    ci = record.get("compute_ceiling_ci_rel")
    if not missing(ci) and not float(ci) <= CEILING_PRECISE_CI:
        reasons.append("its 95% interval is not finite" if math.isinf(ci) else f"its 95% interval is ±{ci:.0%}")
    if not missing(record.get("efficiency")) and record["efficiency"] > TOO_FAST_EFFICIENCY:
        reasons.append(f"the config runs at {record['efficiency']:.0%} of it")
    return " and ".join(reasons)


def ceiling_note(summary: pd.DataFrame) -> str:
    """One sentence naming the configs whose efficiency and verdict are not findings, and why; '' if none."""
    axes = axes_of(summary)
    imprecise = [(r, why_imprecise(r)) for _, r in fastest_first(summary).iterrows() if imprecise_ceiling(r)]
    if not imprecise:
        return ""
    which = "; ".join(f"{config_label(r, axes)} ({why})" for r, why in imprecise)
    return (
        f"compute-only ceiling imprecise for {which}: there efficiency is not a finding, nor is a compute-bound or "
        f"contended verdict (a precise ceiling has a finite 95% interval within ±{CEILING_PRECISE_CI:.0%} and is "
        f"not beaten by over {TOO_FAST_EFFICIENCY - 1:.0%}); {PRECISE_CEILING_HOW}"
    )


def fastest_first(summary: pd.DataFrame) -> pd.DataFrame:
    return summary.sort_values("ips_geomean", ascending=False, na_position="last")


def table_cells(summary: pd.DataFrame, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """The summary as display text, fastest first: config, <unit>/s with its interval, speedup with its
    interval, significance, efficiency, verdict, status. Shared by the terminal table and the report."""
    axes = axes_of(summary)
    rate = per_s(summary)
    cells = []
    for _, r in fastest_first(summary).iterrows():
        row = {short_name(a, axes): str(r[a]) for a in axes}
        ran = not missing(r["ips_geomean"])
        row[f"{rate} [95% CI]"] = ips(r["ips_geomean"], r.get("ips_ci_low"), r.get("ips_ci_high")) if ran else "-"
        row["speedup [95% CI]"] = ratio_interval(r.get("speedup"), r.get("speedup_ci_low"), r.get("speedup_ci_high"))
        significant = r.get("significant")
        row["significant"] = (
            "baseline"
            if bool(r["baseline"])
            else "inactive"
            if bool(r.get("inactive", False))
            else "-"
            if missing(significant)
            else "yes"
            if significant
            else "equivalent"  # no: and shown to be within +-equivalence_margin of the baseline
            if r.get("equivalent") is True or str(r.get("equivalent")).lower() == "true"
            else "no"
        )
        row["efficiency"] = efficiency_cell(r)
        row["verdict"] = r["verdict"] if isinstance(r.get("verdict"), str) and r["verdict"] else "-"
        if isinstance(r.get("straggler"), str) and r["straggler"]:  # the verdict is that rank's (pinsweep.job.ranks)
            row["verdict"] += f", straggler {r['straggler']}"
        row["status"] = config_status(r, axes, rows)
        cells.append(row)
    return pd.DataFrame(cells)
