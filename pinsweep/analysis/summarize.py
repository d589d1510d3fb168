"""Aggregate a sweep's rows into the table that says which setting wins, by how much, and whether
the difference is real.

    python -m pinsweep.summarize multirun/2026-11-24_10-00-00 [--baseline loader.num_workers=0]

The sweep axes are found, not declared: every config column whose value differs between rows is an
axis (`train.repeat` is the replicate index, not an axis), so a new axis needs no code change.
Writes `summary.csv` (one row per config) and `effects.csv` (each axis's effect with every other
axis held fixed) into the sweep folder, prints both, and exits 1 when a job failed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock
from omegaconf import OmegaConf

from pinsweep.analysis import design, stats
from pinsweep.config import Config
from pinsweep.record import CONFIG_GROUPS, flatten_config, read_rows

REPLICATE_KEYS = ("train.repeat",)
ACCELERATOR_ONLY_AXES = ("loader.pin_memory", "loader.non_blocking", "loader.device_prefetch")
COMPUTE_BOUND_EFFICIENCY = 0.9  # within 10% of the compute-only ceiling: the input path is not the limit
STALL_FRACTION = 0.1  # a step spending >= 10% of its time waiting for data or copies is held up by them
OVERALL = "all (geometric mean)"  # effects.csv's held_fixed value for an axis's effect over all strata


class Effect(str, Enum):
    """What an effects.csv row concludes. Each member is the phrase the CSV holds (and compares, hashes
    and prints as that phrase), so files written before this enum read back as members."""

    FASTER = "faster"
    SLOWER = "slower"
    NOT_SIGNIFICANT = "none: not significant"
    INACTIVE = "none: inactive without an accelerator"
    NO_REPEATS = "unknown: needs train.repeat >= 2"
    TOO_FEW_REPEATS = "unknown: too few successful repeats for an interval"
    NOT_RUN = "unknown: no stratum ran both levels"

    __str__ = str.__str__
    __format__ = str.__format__
    __hash__ = str.__hash__

    @property
    def acts(self) -> bool:
        """A significant effect, either way."""
        return self in (Effect.FASTER, Effect.SLOWER)

    @property
    def unknown(self) -> bool:
        """No interval: the data cannot say."""
        return self in (Effect.NO_REPEATS, Effect.TOO_FEW_REPEATS, Effect.NOT_RUN)


INACTIVE_EFFECT = Effect.INACTIVE


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


def level_key(level: str) -> tuple:
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


@lru_cache(maxsize=1)
def schema_defaults() -> dict[str, str]:
    container = OmegaConf.to_container(OmegaConf.structured(Config), throw_on_missing=False)
    return {key: norm(value) for key, value in flatten_config(OmegaConf.create(container)).items()}


def default_baseline(levels: dict[str, list[str]]) -> dict[str, str]:
    """Per axis, the schema's default value when it was swept (pin_memory=false, num_workers=0, ...),
    else the lowest level."""
    defaults = schema_defaults()
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
    """What limits this config. A stall that takes >= 10% of the step names the limit first, so the
    verdict never contradicts the breakdown; otherwise compute-bound when within 10% of the
    compute-only ceiling, or `contended` when compute itself ran slower than its ceiling (workers
    competing with training for the same CPU cores)."""
    if math.isnan(efficiency) and math.isnan(wait_frac):
        return ""
    if max(wait_frac, copy_frac) >= STALL_FRACTION:
        return "loader-bound" if wait_frac >= copy_frac else "copy-bound"
    if math.isnan(efficiency) or efficiency >= COMPUTE_BOUND_EFFICIENCY:
        return "compute-bound"
    return "contended"


def _group_stats(group: pd.DataFrame) -> dict[str, Any]:
    ok = group[group["status"] == "ok"]
    ips = ok["images_per_s"].astype(float).to_numpy() if len(ok) else np.array([])
    epochs = [seconds for cell in ok.get("epoch_times_s", []) for seconds in _steady_epochs(cell)]
    geomean, low, high = design.mean_interval(ips)
    steady = ok["steady_s"].astype(float) if len(ok) else pd.Series(dtype=float)
    fractions = {
        f"{part}_frac": float((ok[f"{part}_s"] / steady).median()) if len(ok) and f"{part}_s" in ok else math.nan
        for part in ("data_wait", "host_wait", "copy", "compute")
    }
    efficiency = float(np.median(ips) / _median(ok, "compute_ceiling_ips")) if len(ips) else math.nan
    failures = group[group["status"] != "ok"]
    return {
        "n": len(ok),
        "n_failed": len(failures),
        # ok jobs whose training diverged (NaN or inf final loss): timed and kept, flagged in table and report
        "n_loss_not_finite": int(ok["loss_finite"].map(norm).eq("false").sum()) if "loss_finite" in ok else 0,
        # jobs that overlapped with another job on the same device: their timings are suspect
        "n_shared_device": int(ok["shared_device"].map(norm).eq("true").sum()) if "shared_device" in ok else 0,
        "ips_median": float(np.median(ips)) if len(ips) else math.nan,
        "ips_geomean": geomean,
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
        "failures": "; ".join(
            f"job {job_label(r)} {r['status']}: {r.get('error', '')}" for _, r in failures.iterrows()
        ),
    }


def job_label(row: pd.Series) -> str:
    """The job's number, or its folder's name when the row has no number."""
    num = row.get("job.num")
    return norm(num) if num is not None and norm(num) != "null" else Path(str(row.get("job.dir", "?"))).name


def on_accelerator(rows: pd.DataFrame) -> bool:
    return "device" in rows and rows["device"].astype(str).str.startswith("cuda").any()


def inactive_axes(rows: pd.DataFrame, axes: list[str]) -> list[str]:
    """Swept axes that cannot act on the device these jobs ran on (pin_memory without an accelerator)."""
    return [] if on_accelerator(rows) else [axis for axis in axes if axis in ACCELERATOR_ONLY_AXES]


@dataclass
class Sweep:
    """The ok jobs as a block design: one index per config (summary row), one block per repeat round."""

    summary: pd.DataFrame
    axes: list[str]
    inactive: list[str]
    fit: design.BlockFit
    rounds: int

    @classmethod
    def of(cls, keyed: pd.DataFrame, summary: pd.DataFrame, axes: list[str], inactive: list[str]) -> Sweep:
        ok = keyed[(keyed["status"] == "ok") & keyed["images_per_s"].astype(float).gt(0)]
        index = {tuple(r[a] for a in axes): i for i, r in summary.iterrows()}
        config = [index[tuple(r[f"_{a}"] for a in axes)] for _, r in ok.iterrows()]
        round_of = ok[REPLICATE_KEYS[0]].map(norm) if REPLICATE_KEYS[0] in ok else pd.Series("0", index=ok.index)
        log_ips = np.log(ok["images_per_s"].astype(float).to_numpy())
        fit = design.fit_blocks(log_ips, config, round_of.to_numpy(), len(summary))
        return cls(summary, axes, inactive, fit, round_of.nunique())

    def config(self, levels: dict[str, str], ran: bool = True) -> int | None:
        """The summary row of the config with these levels (that has ok rows, when `ran`)."""
        match = np.logical_and.reduce([self.summary[a] == levels[a] for a in self.axes])
        found = np.flatnonzero(match & (self.summary["n"].gt(0).to_numpy() if ran else True))
        return int(found[0]) if len(found) else None

    def difference(self, treatment: int, control: int) -> np.ndarray:
        weights = np.zeros(len(self.summary))
        weights[treatment] += 1.0
        weights[control] -= 1.0
        return weights

    def only_inactive(self, a: int, b: int) -> bool:
        """Whether configs a and b differ only in axes that cannot act here."""
        differing = [axis for axis in self.axes if self.summary.at[a, axis] != self.summary.at[b, axis]]
        return bool(differing) and set(differing) <= set(self.inactive)

    def why_no_interval(self) -> Effect:
        return Effect.NO_REPEATS if self.rounds < 2 else Effect.TOO_FEW_REPEATS


def summarize(rows: pd.DataFrame, baseline: str = "") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, effects) for a frame of job rows; see the module docstring."""
    if rows.empty or "status" not in rows:
        raise SummaryError("no job rows found: point at a sweep folder that holds <job>/row.csv files")
    if "images_per_s" not in rows:  # no job succeeded: still a summary, of failures
        rows = rows.assign(images_per_s=math.nan)
    axes = find_axes(rows)
    keyed = rows.assign(**{f"_{axis}": rows[axis].map(norm) for axis in axes})
    levels = {axis: sorted(keyed[f"_{axis}"].unique(), key=level_key) for axis in axes}
    base = parse_baseline(baseline, levels)
    keys = [f"_{axis}" for axis in axes]
    groups = keyed.groupby(keys, sort=False) if keys else [((), keyed)]

    records = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        record = dict(zip(axes, key))
        record.update(_group_stats(group))
        records.append(record)
    summary = pd.DataFrame(records)
    if axes:
        summary = summary.sort_values(axes, key=lambda col: col.map(level_key)).reset_index(drop=True)
    sweep = Sweep.of(keyed, summary, axes, inactive_axes(rows, axes))
    base_index, base, fallback_note = _baseline(sweep, base, baseline)
    summary.insert(len(axes), "baseline", summary.index == base_index)
    effects, effect_contrasts = axis_effects(sweep, base)
    compare(sweep, summary, effects, speedup_contrasts(sweep, base_index) + effect_contrasts)
    if base_index is not None:
        summary.at[base_index, "speedup"] = 1.0
    ran = [c for c in range(len(summary)) if summary.at[c, "n"]]
    summary["could_be_fastest"] = pd.Series([None] * len(summary), dtype=object)
    for c, flag in zip(ran, design.could_be_fastest(sweep.fit, ran)):
        summary.at[c, "could_be_fastest"] = flag
    notes = [fallback_note, _accelerator_note(sweep.inactive), _shared_note(rows)]
    summary["note"] = "; ".join(filter(None, notes))
    return summary, effects


def _baseline(sweep: Sweep, base: dict[str, str], requested: str) -> tuple[int | None, dict[str, str], str]:
    """The baseline config's summary row: the requested or default levels if they ran; else the first
    config that has ok rows, with a note saying so."""
    summary, axes = sweep.summary, sweep.axes
    if not axes:
        return (0 if len(summary) and summary.at[0, "n"] else None), base, ""
    exists = np.logical_and.reduce([summary[axis] == base[axis] for axis in axes])
    chosen = ",".join(f"{axis}={level}" for axis, level in base.items())
    if requested and not (exists & summary["n"].gt(0)).any():
        raise SummaryError(f"--baseline {requested}: no job ran {chosen} successfully; pick a config in summary.csv")
    index = sweep.config(base)
    if index is not None:
        return index, base, ""
    ran = np.flatnonzero(summary["n"].gt(0).to_numpy())
    if not len(ran):
        return None, base, ""
    index = int(ran[0])
    fallback = {axis: summary.at[index, axis] for axis in axes}
    why = "failed in every repeat" if exists.any() else "did not run"
    label = ",".join(f"{axis}={level}" for axis, level in fallback.items())
    return index, fallback, f"baseline {chosen} {why}: speedups are over {label}"


@dataclass
class Contrast:
    """One comparison a table row states: which table and row, and its weights over the configs."""

    table: str  # "summary" (a config against the baseline) or "effects"
    row: int
    weights: np.ndarray | None  # None when the data hold no such comparison
    claim: bool  # False where it differs only in axes that cannot act here (pin_memory on a CPU)


# the columns each table writes a comparison into: ratio, interval, adjusted p
RATIO_COLUMNS = {
    "summary": ("speedup", "speedup_ci_low", "speedup_ci_high", "speedup_p"),
    "effects": ("ratio", "ci_low", "ci_high", "p_adjusted"),
}


def speedup_contrasts(sweep: Sweep, base_index: int | None) -> list[Contrast]:
    if base_index is None:
        return []
    return [
        Contrast("summary", c, sweep.difference(c, base_index), not sweep.only_inactive(c, base_index))
        for c in range(len(sweep.summary))
        if c != base_index and sweep.summary.at[c, "n"]
    ]


def compare(sweep: Sweep, summary: pd.DataFrame, effects: pd.DataFrame, contrasts: list[Contrast]) -> None:
    """Fill both tables' ratios, simultaneous intervals, `significant` and `effect`.

    The claims (every config against the baseline, every axis effect) form ONE family, so that the
    chance of any false "significant" or "faster" in the whole sweep is 5%. Comparisons that differ
    only in axes that cannot act here get their own family, for the numbers, and are never findings."""
    tables = {"summary": summary, "effects": effects}
    for frame, columns in zip(tables.values(), RATIO_COLUMNS.values()):
        for column in (*columns, "repeats_needed"):
            frame[column] = math.nan
    summary["significant"] = pd.Series([None] * len(summary), dtype=object)
    summary["inactive"] = False
    effects["effect"] = pd.Series([Effect.NOT_RUN] * len(effects), index=effects.index, dtype=object)
    for claim in (True, False):
        members = [c for c in contrasts if c.claim == claim and c.weights is not None]
        result = design.simultaneous(sweep.fit, [c.weights for c in members])
        for k, contrast in enumerate(members):
            frame = tables[contrast.table]
            ratio, low, high, p_value = RATIO_COLUMNS[contrast.table]
            for column, value in ((ratio, result.estimate[k]), (low, result.low[k]), (high, result.high[k])):
                frame.at[contrast.row, column] = math.exp(value)
            flag = result.significant[k] if claim else False
            if claim:
                frame.at[contrast.row, p_value] = result.p_adjusted[k]
            if flag is False and claim:
                needed = design.repeats_needed(result.estimate[k], result.se[k], sweep.rounds, result.critical)
                frame.at[contrast.row, "repeats_needed"] = needed
            if contrast.table == "summary":
                summary.at[contrast.row, "significant"] = flag
                summary.at[contrast.row, "inactive"] = not claim
            else:
                effects.at[contrast.row, "effect"] = _effect_word(flag, result.estimate[k], claim, sweep)
    for contrast in contrasts:  # an inactive axis is inactive, whether or not its strata ran
        if contrast.table == "effects" and not contrast.claim:
            effects.at[contrast.row, "effect"] = Effect.INACTIVE


def _effect_word(flag: bool | None, estimate: float, claim: bool, sweep: Sweep) -> Effect:
    if not claim:
        return Effect.INACTIVE
    if flag is None:
        return sweep.why_no_interval()
    if not flag:
        return Effect.NOT_SIGNIFICANT
    return Effect.FASTER if estimate > 0 else Effect.SLOWER


def axis_effects(sweep: Sweep, base: dict[str, str]) -> tuple[pd.DataFrame, list[Contrast]]:
    """Each axis's effect with every other axis held fixed: per stratum (one combination of the other
    axes) the contrast of each level against the baseline level, then per level the average of those
    contrasts over the strata where both ran (a geometric mean of ratios). Returns the table's rows,
    numbers still to fill, and the contrast each row states."""
    summary, axes = sweep.summary, sweep.axes
    records, contrasts = [], []
    for axis in axes:
        others = [a for a in axes if a != axis]
        reference = base[axis]
        claim = axis not in sweep.inactive
        strata = summary[others].drop_duplicates().to_dict("records") if others else [{}]
        for level in sorted(set(summary[axis]) - {reference}, key=level_key):
            usable = []
            for stratum in strata:
                treated = sweep.config({**stratum, axis: level}, ran=False)
                control = sweep.config({**stratum, axis: reference}, ran=False)
                if treated is None or control is None:  # not in the grid (a search, a partial grid)
                    continue
                ran = summary.at[treated, "n"] and summary.at[control, "n"]
                weights = sweep.difference(treated, control) if ran else None
                contrasts.append(Contrast("effects", len(records), weights, claim))
                label = ", ".join(f"{a}={v}" for a, v in stratum.items()) or "(none)"
                records.append({"axis": axis, "level": level, "reference": reference, "held_fixed": label})
                if weights is not None:
                    usable.append(weights)
            overall = np.mean(usable, axis=0) if usable else None
            contrasts.append(Contrast("effects", len(records), overall, claim))
            records.append({"axis": axis, "level": level, "reference": reference, "held_fixed": OVERALL})
    effects = pd.DataFrame(records, columns=["axis", "level", "reference", "held_fixed"])
    return effects, contrasts


def _accelerator_note(inactive: list[str]) -> str:
    """CPU-only honesty: pin_memory and non_blocking cannot act without an accelerator."""
    if inactive:
        return f"{' and '.join(inactive)} inactive: no accelerator, so any difference is noise"
    return ""


def _shared_note(rows: pd.DataFrame) -> str:
    """Jobs that overlapped with another job on the same device have untrustworthy timings."""
    if "shared_device" not in rows:
        return ""
    shared = int(rows["shared_device"].map(norm).eq("true").sum())
    return f"{shared} job(s) shared their device with another job: rerun them alone" if shared else ""


# ---------------------------------------------------------------------------------------- the folder


@dataclass
class Tables:
    """A summarized sweep, in memory: what the terminal, the plots and the report are drawn from."""

    summary: pd.DataFrame
    effects: pd.DataFrame
    rows: pd.DataFrame

    @property
    def failed(self) -> int:
        return int((self.rows["status"] != "ok").sum())


def summarize_sweep(sweep_dir: str | Path, baseline: str = "") -> Tables:
    """Summarize a sweep folder's rows and write summary.csv and effects.csv into it."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise SummaryError(f"{sweep_dir}: no such sweep folder (look under multirun/)")
    rows = read_rows(sweep_dir)
    summary, effects = summarize(rows, baseline)
    with FileLock(sweep_dir / ".summary.lock"):  # the end-of-sweep callback and a user may both write
        summary.to_csv(sweep_dir / "summary.csv", index=False)
        effects.to_csv(sweep_dir / "effects.csv", index=False)
    return Tables(summary, effects, rows)


def read_summary(path: str | Path) -> pd.DataFrame:
    """summary.csv with its axis columns kept as written (`false`, `null`, `2`), not parsed by pandas."""
    summary = pd.read_csv(path)
    axes = list(summary.columns[: list(summary.columns).index("baseline")]) if "baseline" in summary else []
    if axes:
        summary[axes] = pd.read_csv(path, usecols=axes, dtype=str, keep_default_na=False)[axes]
    return summary


def read_effects(path: str | Path) -> pd.DataFrame:
    """effects.csv with its level columns kept as written, like `read_summary`."""
    effects = pd.read_csv(path)
    text = [c for c in ("level", "reference", "held_fixed") if c in effects]
    if len(effects) and text:
        effects[text] = pd.read_csv(path, usecols=text, dtype=str, keep_default_na=False)[text]
    if "effect" in effects:
        effects["effect"] = effects["effect"].map(Effect).astype(object)
    return effects


def read_tables(sweep_dir: str | Path) -> Tables:
    """The tables a previous summary wrote into the folder, with the folder's rows."""
    sweep_dir = Path(sweep_dir)
    summary, effects = read_summary(sweep_dir / "summary.csv"), read_effects(sweep_dir / "effects.csv")
    return Tables(summary, effects, read_rows(sweep_dir))
