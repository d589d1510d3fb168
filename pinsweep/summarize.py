"""Aggregate a sweep's rows into the table that says which setting wins, by how much, and whether
the difference is real.

    python -m pinsweep.summarize multirun/2026-11-24_10-00-00 [--baseline loader.num_workers=0]

The sweep axes are found, not declared: every config column whose value differs between rows is an
axis (`train.repeat` is the replicate index, not an axis), so a new axis needs no code change.
Writes `summary.csv` (one row per config) and `effects.csv` (each axis's effect with every other
axis held fixed) into the sweep folder, prints both, and exits 1 when a job failed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock
from omegaconf import OmegaConf

from pinsweep import stats
from pinsweep.config import Config
from pinsweep.record import CONFIG_GROUPS, flatten_config, read_rows

REPLICATE_KEYS = ("train.repeat",)
ACCELERATOR_ONLY_AXES = ("loader.pin_memory", "loader.non_blocking")
COMPUTE_BOUND_EFFICIENCY = 0.9  # within 10% of the compute-only ceiling: the input path is not the limit
STALL_FRACTION = 0.1  # a step spending >= 10% of its time waiting for data or copies is held up by them


class SummaryError(ValueError):
    """Bad input to the summarizer; the message says what to do."""


# ------------------------------------------------------------------------------------------ grouping


def norm(value: Any) -> str:
    """One spelling per value, as a user types it on the command line (true, 2, null)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _level_key(level: str) -> tuple:
    """Sort levels as values: null first, then numbers numerically, then text."""
    if level == "null":
        return (0, 0.0, "")
    try:
        return (1, float(level), "")
    except ValueError:
        return (2, 0.0, level)


def find_axes(rows: pd.DataFrame) -> list[str]:
    """Config columns whose values differ between rows, in config order."""
    axes = []
    for column in rows.columns:
        if column.split(".", 1)[0] not in CONFIG_GROUPS or column in REPLICATE_KEYS:
            continue
        if rows[column].map(norm).nunique() > 1:
            axes.append(column)
    return axes


def _schema_defaults() -> dict[str, str]:
    container = OmegaConf.to_container(OmegaConf.structured(Config), throw_on_missing=False)
    return {key: norm(value) for key, value in flatten_config(OmegaConf.create(container)).items()}


def default_baseline(levels: dict[str, list[str]]) -> dict[str, str]:
    """Per axis, the schema's default value when it was swept (pin_memory=false, num_workers=0, ...),
    else the lowest level."""
    defaults = _schema_defaults()
    return {axis: defaults[axis] if defaults.get(axis) in values else values[0] for axis, values in levels.items()}


def parse_baseline(text: str, levels: dict[str, list[str]]) -> dict[str, str]:
    """`loader.pin_memory=false,loader.num_workers=0` -> {axis: level}, checked against the sweep."""
    chosen = default_baseline(levels)
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in levels:
            raise SummaryError(f"--baseline {key}: not a swept axis; the axes are {', '.join(levels) or 'none'}")
        if norm(value) not in levels[key]:
            raise SummaryError(f"--baseline {key}={value}: not swept; its levels are {', '.join(levels[key])}")
        chosen[key] = norm(value)
    return chosen


# ---------------------------------------------------------------------------------------- statistics


def _steady_epochs(cell: Any) -> list[float]:
    """A row's epoch times, without the first epoch (warm-up) when there is more than one."""
    if not isinstance(cell, str):
        return []
    epochs = json.loads(cell)
    return epochs[1:] if len(epochs) > 1 else epochs


def _median(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].median()) if column in frame and frame[column].notna().any() else math.nan


def verdict(efficiency: float, wait_frac: float, copy_frac: float) -> str:
    """What limits this config. Compute-bound when within 10% of the compute-only ceiling; otherwise
    whichever stall is larger, or `contended` when neither stalls but compute itself ran slower than
    its ceiling (workers competing with training for the same CPU cores)."""
    if math.isnan(efficiency) and math.isnan(wait_frac):
        return ""
    if efficiency >= COMPUTE_BOUND_EFFICIENCY:
        return "compute-bound"
    if max(wait_frac, copy_frac) >= STALL_FRACTION:
        return "loader-bound" if wait_frac >= copy_frac else "copy-bound"
    return "contended" if not math.isnan(efficiency) else "compute-bound"


def _group_stats(group: pd.DataFrame) -> dict[str, Any]:
    ok = group[group["status"] == "ok"]
    ips = ok["images_per_s"].astype(float).to_numpy() if len(ok) else np.array([])
    epochs = [seconds for cell in ok.get("epoch_times_s", []) for seconds in _steady_epochs(cell)]
    low, high = stats.median_ci(ips)
    steady = ok["steady_s"].astype(float) if len(ok) else pd.Series(dtype=float)
    fractions = {
        f"{part}_frac": float((ok[f"{part}_s"] / steady).median()) if len(ok) else math.nan
        for part in ("data_wait", "copy", "compute")
    }
    efficiency = float(np.median(ips) / _median(ok, "compute_ceiling_ips")) if len(ips) else math.nan
    failures = group[group["status"] != "ok"]
    return {
        "n": len(ok),
        "n_failed": len(failures),
        # jobs that overlapped with another job on the same device: their timings are suspect
        "n_shared_device": int(ok["shared_device"].map(norm).eq("true").sum()) if "shared_device" in ok else 0,
        "ips_median": float(np.median(ips)) if len(ips) else math.nan,
        "ips_iqr": stats.iqr(ips) if len(ips) else math.nan,
        "ips_ci_low": low,
        "ips_ci_high": high,
        "ips_mean": float(ips.mean()) if len(ips) else math.nan,
        "ips_std": float(ips.std(ddof=1)) if len(ips) > 1 else math.nan,
        "ips_min": float(ips.min()) if len(ips) else math.nan,
        "ips_max": float(ips.max()) if len(ips) else math.nan,
        "epoch_s_median": float(np.median(epochs)) if epochs else math.nan,
        "epoch_s_mean": float(np.mean(epochs)) if epochs else math.nan,
        "epoch_s_std": float(np.std(epochs, ddof=1)) if len(epochs) > 1 else math.nan,
        "epoch_s_min": float(np.min(epochs)) if epochs else math.nan,
        "epoch_s_max": float(np.max(epochs)) if epochs else math.nan,
        "compute_ceiling_ips": _median(ok, "compute_ceiling_ips"),
        "loader_ceiling_ips": _median(ok, "loader_ceiling_ips"),
        "efficiency": efficiency,
        **fractions,
        "verdict": verdict(efficiency, fractions["data_wait_frac"], fractions["copy_frac"]) if len(ok) else "",
        "first_batch_s": _median(ok, "first_batch_s_median"),
        "test_accuracy": _median(ok, "test_accuracy"),
        "failures": "; ".join(f"job {_job(r)} {r['status']}: {r.get('error', '')}" for _, r in failures.iterrows()),
    }


def _job(row: pd.Series) -> str:
    num = row.get("job.num")
    return norm(num) if num is not None and norm(num) != "null" else Path(str(row.get("job.dir", "?"))).name


def summarize(rows: pd.DataFrame, baseline: str = "") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, effects) for a frame of job rows; see the module docstring."""
    if rows.empty or "status" not in rows:
        raise SummaryError("no job rows found: point at a sweep folder that holds <job>/row.csv files")
    if "images_per_s" not in rows:  # no job succeeded: still a summary, of failures
        rows = rows.assign(images_per_s=math.nan)
    axes = find_axes(rows)
    keyed = rows.assign(**{f"_{axis}": rows[axis].map(norm) for axis in axes})
    levels = {axis: sorted(keyed[f"_{axis}"].unique(), key=_level_key) for axis in axes}
    base = parse_baseline(baseline, levels)
    keys = [f"_{axis}" for axis in axes]
    groups = keyed.groupby(keys, sort=False) if keys else [((), keyed)]

    records = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        record = dict(zip(axes, key))
        record.update(_group_stats(group))
        record["_ips"] = group.loc[group["status"] == "ok", "images_per_s"].astype(float).to_numpy()
        records.append(record)
    summary = pd.DataFrame(records)
    if axes:
        summary = summary.sort_values(axes, key=lambda col: col.map(_level_key)).reset_index(drop=True)
        is_base = np.logical_and.reduce([summary[axis] == base[axis] for axis in axes])
        if not is_base.any() and baseline:
            chosen = ",".join(f"{axis}={level}" for axis, level in base.items())
            raise SummaryError(f"--baseline {baseline}: no job ran {chosen}; pick a config listed in summary.csv")
        if not is_base.any():  # the default combination never ran (a search, a partial grid): the first config
            is_base = np.asarray(summary.index == summary["n"].gt(0).idxmax())
            base = {axis: summary.loc[is_base, axis].iloc[0] for axis in axes}
    else:
        is_base = np.ones(len(summary), dtype=bool)
    summary.insert(len(axes), "baseline", is_base)
    base_ips = summary.loc[is_base, "_ips"].iloc[0] if is_base.any() else np.array([])
    ratios = [_ratio(ips, base_ips) for ips in summary["_ips"]]
    summary["speedup"] = [r[0] for r in ratios]
    summary["speedup_ci_low"] = [r[1] for r in ratios]
    summary["speedup_ci_high"] = [r[2] for r in ratios]
    summary["significant"] = [None if flag else stats.significant(r[1], r[2]) for r, flag in zip(ratios, is_base)]
    summary["note"] = "; ".join(filter(None, [_accelerator_note(rows, axes), _shared_note(rows)]))
    effects = axis_effects(keyed, axes, base)
    return summary.drop(columns="_ips"), effects


def _ratio(treatment: np.ndarray, control: np.ndarray) -> tuple[float, float, float]:
    if not len(treatment) or not len(control):
        return math.nan, math.nan, math.nan
    return stats.ratio_of_medians(treatment, control)


def _accelerator_note(rows: pd.DataFrame, axes: list[str]) -> str:
    """CPU-only honesty: pin_memory and non_blocking cannot act without an accelerator."""
    inactive = [axis for axis in axes if axis in ACCELERATOR_ONLY_AXES]
    on_cpu = "device" not in rows or not rows["device"].astype(str).str.startswith("cuda").any()
    if inactive and on_cpu:
        return f"{' and '.join(inactive)} inactive: no accelerator, so any difference is noise"
    return ""


def _shared_note(rows: pd.DataFrame) -> str:
    """Jobs that overlapped with another job on the same device have untrustworthy timings."""
    if "shared_device" not in rows:
        return ""
    shared = int(rows["shared_device"].map(norm).eq("true").sum())
    return f"{shared} job(s) shared their device with another job: rerun them alone" if shared else ""


def axis_effects(keyed: pd.DataFrame, axes: list[str], base: dict[str, str]) -> pd.DataFrame:
    """Each axis's effect with every other axis held fixed: for each stratum (one combination of the
    other axes) the ratio of median images/s of each level over the baseline level, then per level
    the median of those ratios, with the envelope of the strata's intervals."""
    ok = keyed[keyed["status"] == "ok"]
    on_cpu = "device" not in ok or not ok["device"].astype(str).str.startswith("cuda").any()
    records = []
    for axis in axes:
        others = [f"_{a}" for a in axes if a != axis]
        reference = base[axis]
        strata = ok.groupby(others, sort=True) if others else [((), ok)]
        per_level: dict[str, list[dict]] = {}
        for stratum, group in strata:
            stratum = stratum if isinstance(stratum, tuple) else (stratum,)
            label = ", ".join(f"{a[1:]}={v}" for a, v in zip(others, stratum)) or "(none)"
            control = group.loc[group[f"_{axis}"] == reference, "images_per_s"].astype(float).to_numpy()
            for level in sorted(set(group[f"_{axis}"]) - {reference}, key=_level_key):
                treatment = group.loc[group[f"_{axis}"] == level, "images_per_s"].astype(float).to_numpy()
                ratio, low, high = _ratio(treatment, control)
                entry = {
                    "axis": axis,
                    "level": level,
                    "reference": reference,
                    "held_fixed": label,
                    "ratio": ratio,
                    "ci_low": low,
                    "ci_high": high,
                }
                per_level.setdefault(level, []).append(entry)
                records.append(entry)
        for level, entries in per_level.items():
            ratios = [e["ratio"] for e in entries if not math.isnan(e["ratio"])]
            records.append(
                {
                    "axis": axis,
                    "level": level,
                    "reference": reference,
                    "held_fixed": "all (median)",
                    "ratio": float(np.median(ratios)) if ratios else math.nan,
                    "ci_low": _envelope([e["ci_low"] for e in entries], min),
                    "ci_high": _envelope([e["ci_high"] for e in entries], max),
                }
            )
    effects = pd.DataFrame(records, columns=["axis", "level", "reference", "held_fixed", "ratio", "ci_low", "ci_high"])
    effects["effect"] = [
        _effect_word(row, on_cpu and row["axis"] in ACCELERATOR_ONLY_AXES) for _, row in effects.iterrows()
    ]
    return effects


def _envelope(bounds: list[float], pick) -> float:
    """The outermost bound, or NaN when any stratum has no interval."""
    return math.nan if any(math.isnan(b) for b in bounds) else pick(bounds)


def _effect_word(row: pd.Series, inactive: bool) -> str:
    if inactive:
        return "none: inactive without an accelerator"
    flag = stats.significant(row["ci_low"], row["ci_high"])
    if flag is None:
        return "unknown: needs train.repeat >= 2"
    if not flag:
        return "none: not significant"
    return "faster" if row["ratio"] > 1 else "slower"


# -------------------------------------------------------------------------------------------- output


def print_tables(summary: pd.DataFrame, effects: pd.DataFrame, rows: pd.DataFrame) -> None:
    """The summary sorted by images/s (config, images/s with its interval, speedup, efficiency vs the
    compute-only ceiling, verdict, status), the per-axis effects, and the failed jobs with their reasons."""
    from rich.console import Console
    from rich.table import Table

    from pinsweep.report import table_cells  # the same cells as the report's table

    console = Console(width=None if Console().is_terminal else 160)
    axes = [c for c in summary.columns if c.split(".", 1)[0] in CONFIG_GROUPS]
    cells = table_cells(summary, rows)
    table = Table(title="pinsweep summary, fastest first (images/s: steady state, median over repeats, 95% CI)")
    for column in cells.columns:
        numeric = column.startswith(("images/s", "speedup", "efficiency"))
        table.add_column(column, justify="right" if numeric else "left")
    for row in cells.itertuples(index=False):
        status = str(row[-1])
        table.add_row(*map(str, row), style=None if status.endswith(" ok") and "," not in status else "red")
    console.print(table)
    if axes:
        console.print("speedup: over the baseline config; efficiency: images/s over the compute-only ceiling")
    if summary["note"].astype(bool).any():
        console.print(f"note: {summary['note'].iloc[0].strip()}")
    if not effects.empty:
        overall = effects[effects["held_fixed"] == "all (median)"]
        console.print("per-axis effects (ratio of images/s, every other axis held fixed):")
        for _, effect in overall.iterrows():
            console.print(
                f"  {effect['axis']}: {effect['reference']} -> {effect['level']}: x{_fmt(effect['ratio'])} "
                f"[{_fmt(effect['ci_low'])}, {_fmt(effect['ci_high'])}]  {effect['effect']}"
            )
    failed = rows[rows["status"] != "ok"]
    for _, row in failed.iterrows():
        console.print(f"[red]job {_job(row)} {row['status']}[/red]: {row.get('error', '')}")


def _short(column: str, columns: list[str]) -> str:
    """`loader.num_workers` -> `num_workers` when no other column ends the same way."""
    tail = column.rsplit(".", 1)[-1]
    return tail if sum(c.rsplit(".", 1)[-1] == tail for c in columns) == 1 else column


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def summarize_and_report(sweep_dir: str | Path, baseline: str = "") -> int:
    """Summarize a sweep folder, write summary.csv and effects.csv, print; return the failed-job count."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise SummaryError(f"{sweep_dir}: no such sweep folder (look under multirun/)")
    rows = read_rows(sweep_dir)
    summary, effects = summarize(rows, baseline)
    with FileLock(sweep_dir / ".summary.lock"):  # the end-of-sweep callback and a user may both write
        summary.to_csv(sweep_dir / "summary.csv", index=False)
        effects.to_csv(sweep_dir / "effects.csv", index=False)
    print_tables(summary, effects, rows)
    print(f"wrote {sweep_dir / 'summary.csv'} and {sweep_dir / 'effects.csv'}")
    return int((rows["status"] != "ok").sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinsweep.summarize", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a sweep folder, e.g. multirun/2026-11-24_10-00-00")
    parser.add_argument("--baseline", default="", help="e.g. loader.pin_memory=false,loader.num_workers=0")
    args = parser.parse_args(argv)
    try:
        failed = summarize_and_report(args.sweep_dir, args.baseline)
    except SummaryError as error:
        print(f"pinsweep.summarize: {error}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
