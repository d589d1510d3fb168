"""Aggregate a sweep's rows into the table that says which setting wins, by how much, and whether
the difference is real.

    python -m pinsweep.summarize multirun/2026-11-24_10-00-00 [--baseline loader.num_workers=0]

The sweep axes are found, not declared: every config column whose value differs between rows is an
axis (`train.repeat` is the replicate index, not an axis), so a new axis needs no code change.
`summarize_sweep` returns the two tables, summary (one row per config) and effects (each axis's effect
with every other axis held fixed), as `Tables`; it prints nothing and writes nothing. `write_tables`
writes them as summary.csv and effects.csv, `read_tables` reads them back. Presentation (pinsweep/present/)
draws from `Tables` alone; the command above is pinsweep/summarize.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import Enum
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock
from omegaconf import OmegaConf

from pinsweep.analysis import design, sequential, stats
from pinsweep.config import Config
from pinsweep.outputs import output, replacing
from pinsweep.record import CONFIG_GROUPS, flatten_config, read_rows, with_throughput
from pinsweep.spelling import norm

REPLICATE_KEYS = ("train.repeat",)
ACCELERATOR_ONLY_AXES = ("loader.pin_memory", "loader.non_blocking", "loader.device_prefetch")
COMPUTE_BOUND_EFFICIENCY = 0.9  # within 10% of the compute-only ceiling: the input path is not the limit
# A compute-only ceiling is precise enough for efficiency and the verdict to be findings when its relative 95%
# interval is finite and within +-10%: the margin the verdict itself draws (COMPUTE_BOUND_EFFICIENCY), so a
# ceiling known more loosely cannot place a config on either side of that line. Raising train.ceiling_steps
# or train.ceiling_budget_s makes it precise (the job times it until train.ceiling_target_ci, 2%).
CEILING_PRECISE_CI = 0.10
TOO_FAST_EFFICIENCY = 1.1  # beating the ceiling by more than 10% is beyond noise: the ceiling was mismeasured
STALL_FRACTION = 0.1  # a step spending >= 10% of its time waiting for data or copies is held up by them
OVERALL = "all (geometric mean)"  # effects.csv's held_fixed value for an axis's effect over all strata


class Effect(str, Enum):
    """What an effects.csv row concludes. Each member is the phrase the CSV holds (and compares, hashes
    and prints as that phrase), so files written before this enum read back as members."""

    FASTER = "faster"
    SLOWER = "slower"
    NOT_SIGNIFICANT = "none: not significant"
    EQUIVALENT = "none: equivalent within the margin"  # the interval lies inside +-equivalence_margin
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


def effect_words(column: pd.Series) -> pd.Series:
    """The effects table's `effect` column as it is declared: each row's Effect as its plain word, dtype
    str, in every Tables however made (summarized, read back from effects.csv, made by hand). pandas does
    not keep enum members in a column (pandas 3 with pyarrow infers them back to plain str on any `map`),
    so the table holds words, checked here, and `effect_kinds` is the one place they become members."""
    return pd.Series([Effect(word).value for word in column], index=column.index, dtype=str)


def effect_kinds(effects: pd.DataFrame) -> pd.Series:
    """Each effects row's `Effect` member (object dtype: pandas keeps them members, never re-infers them)."""
    return pd.Series([Effect(word) for word in effects["effect"]], index=effects.index, dtype=object)


class SummaryError(ValueError):
    """Bad input to the summarizer; the message says what to do."""


# ------------------------------------------------------------------------------------------ grouping


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


IMPRECISE_VERDICT = "ceiling imprecise"  # no stall, and a ceiling too loose to tell compute-bound from contended


def ceiling_imprecise(ci_rel: float, efficiency: float) -> bool:
    """Whether a config's efficiency rests on a compute-only ceiling too loose to be a finding: its relative
    95% interval is not finite (timed over too few steps) or wider than +-CEILING_PRECISE_CI, or the config
    beats it by more than TOO_FAST_EFFICIENCY allows (the ceiling itself was mismeasured). No ceiling
    (efficiency NaN) qualifies nothing; rows that did not record the interval are judged by the second
    test alone."""
    if math.isnan(efficiency):
        return False
    too_loose = not math.isnan(ci_rel) and not ci_rel <= CEILING_PRECISE_CI  # inf: timed over 2 steps
    return too_loose or efficiency > TOO_FAST_EFFICIENCY


def verdict(efficiency: float, wait_frac: float, copy_frac: float, imprecise: bool = False) -> str:
    """What limits this config. A stall that takes >= 10% of the step names the limit first, so the
    verdict never contradicts the breakdown (the stall is measured in training, not against a ceiling);
    otherwise compute-bound when within 10% of the compute-only ceiling, or `contended` when compute
    itself ran slower than its ceiling (workers competing with training for the same CPU cores), or
    IMPRECISE_VERDICT when that ceiling is too loose to say which (`ceiling_imprecise`)."""
    if math.isnan(efficiency) and math.isnan(wait_frac):
        return ""
    if max(wait_frac, copy_frac) >= STALL_FRACTION:
        return "loader-bound" if wait_frac >= copy_frac else "copy-bound"
    if imprecise:
        return IMPRECISE_VERDICT
    if math.isnan(efficiency) or efficiency >= COMPUTE_BOUND_EFFICIENCY:
        return "compute-bound"
    return "contended"


def straggler(ok: pd.DataFrame) -> str:
    """`rank 1` when most of a config's jobs name the same rank as the one whose stall dominates (the
    breakdown and verdict are that rank's), else ''."""
    if "straggler_rank" not in ok or not len(ok):
        return ""
    named = ok["straggler_rank"].dropna().astype(int)
    counts = named[named >= 0].value_counts()
    return f"rank {counts.index[0]}" if len(counts) and counts.iloc[0] > len(ok) / 2 else ""


def _group_stats(group: pd.DataFrame) -> dict[str, Any]:
    ok = group[group["status"] == "ok"]
    ips = ok["throughput"].astype(float).to_numpy() if len(ok) else np.array([])  # per second, in `unit`
    epochs = [seconds for cell in ok.get("epoch_times_s", []) for seconds in _steady_epochs(cell)]
    geomean, low, high = design.mean_interval(ips)
    steady = ok["steady_s"].astype(float) if len(ok) else pd.Series(dtype=float)
    fractions = {
        f"{part}_frac": float((ok[f"{part}_s"] / steady).median()) if len(ok) and f"{part}_s" in ok else math.nan
        for part in ("data_wait", "host_wait", "copy", "compute")
    }
    # the ceilings are one rank's (pinsweep.job.ranks): compared with what each rank trained
    per_rank = ips / ok["ranks"].fillna(1).astype(float).to_numpy() if "ranks" in ok and len(ips) else ips
    efficiency = float(np.median(per_rank) / _median(ok, "compute_ceiling_ips")) if len(ips) else math.nan
    ceiling_ci = _median(ok, "compute_ceiling_ci_rel")  # the median job's, as the ceiling is the median job's
    imprecise = ceiling_imprecise(ceiling_ci, efficiency)
    failures = group[group["status"] != "ok"]
    return {
        "n": len(ok),
        "n_failed": len(failures),
        # ok jobs whose training diverged (NaN or inf final loss): timed and kept, flagged in table and report
        "n_loss_not_finite": int(ok["loss_finite"].map(norm).eq("false").sum()) if "loss_finite" in ok else 0,
        # jobs that overlapped with another job on the same device: their timings are suspect
        "n_shared_device": int(ok["shared_device"].map(norm).eq("true").sum()) if "shared_device" in ok else 0,
        "unit": (ok if len(ok) else group)["unit"].iloc[0],  # what ips_* count: train.unit (images, tokens, ...)
        "throughput": geomean,  # = ips_geomean, under a name that does not say images
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
        # each ceiling's relative 95% interval (inf: timed over too few steps for one), and whether efficiency
        # and the verdict rest on a compute-only ceiling too loose to be findings (`ceiling_imprecise`)
        "compute_ceiling_ci_rel": ceiling_ci,
        "loader_ceiling_ci_rel": _median(ok, "loader_ceiling_ci_rel"),
        "efficiency": efficiency,
        "ceiling_imprecise": imprecise,
        **fractions,
        "verdict": verdict(efficiency, fractions["data_wait_frac"], fractions["copy_frac"], imprecise)
        if len(ok)
        else "",
        "straggler": straggler(ok),
        # the CPU budget each job had and what it ran on it (pinsweep.job.ranks)
        "cpu_cores": _median(ok, "cpu_cores"),
        "cpu_processes": _median(ok, "cpu_processes"),
        "cpu_threads": _median(ok, "cpu_threads"),
        "first_batch_s": _median(ok, "first_batch_s_median"),
        # what one epoch held, as the loader yielded it (pinsweep.job.train.EpochAccounting): equal across
        # configs of the same data, or they did not do the same work (`epoch_items_differ`)
        "items_per_epoch": _median(ok, "items_per_epoch"),
        "idle_workers": _median(ok, "idle_workers"),
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


def _cannot_act_here(rows: pd.DataFrame, axes: list[str]) -> list[str]:
    """The rule: swept axes that cannot act on the device these jobs ran on (pin_memory without an
    accelerator). Their effects are written as Effect.INACTIVE; `inactive_axes` reads that back."""
    return [] if on_accelerator(rows) else [axis for axis in axes if axis in ACCELERATOR_ONLY_AXES]


def inactive_axes(effects: pd.DataFrame) -> list[str]:
    """The swept axes that cannot act here, as the effects table records them (every effect of the axis
    is Effect.INACTIVE), in table order: never named in a finding, in a plot's title as a caveat. The one
    source for plots, advice and report, also for tables read back from CSV or made by hand."""
    if effects.empty:
        return []
    inactive = effect_kinds(effects).eq(Effect.INACTIVE).groupby(effects["axis"], sort=False).all()
    return [str(axis) for axis, flag in inactive.items() if flag]


@dataclass
class _Design:
    """The summarizer's working state: the ok jobs as a block design, one index per config (summary
    row), one block per repeat round. What the summary says afterwards is `Tables`."""

    summary: pd.DataFrame
    axes: list[str]
    inactive: list[str]
    fit: design.BlockFit
    rounds: int
    config_index: np.ndarray  # per ok job: its summary row (the fit's config)
    round_index: np.ndarray  # per ok job: its round, 0, 1, ... in train.repeat order (the fit's block)

    @classmethod
    def of(cls, keyed: pd.DataFrame, summary: pd.DataFrame, axes: list[str], inactive: list[str]) -> _Design:
        ok = keyed[(keyed["status"] == "ok") & keyed["throughput"].astype(float).gt(0)]
        index = {tuple(r[a] for a in axes): i for i, r in summary.iterrows()}
        config = [index[tuple(r[f"_{a}"] for a in axes)] for _, r in ok.iterrows()]
        round_of = ok[REPLICATE_KEYS[0]].map(norm) if REPLICATE_KEYS[0] in ok else pd.Series("0", index=ok.index)
        log_ips = np.log(ok["throughput"].astype(float).to_numpy())
        fit = design.fit_blocks(log_ips, config, round_of.to_numpy(), len(summary))
        labels = sorted(round_of.unique(), key=level_key)
        rounds = round_of.map({label: i for i, label in enumerate(labels)}).to_numpy(dtype=int)
        return cls(summary, axes, inactive, fit, round_of.nunique(), np.asarray(config, dtype=int), rounds)

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


def summarize(
    rows: pd.DataFrame, baseline: str = "", stopping: sequential.Stopping | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, effects) for a frame of job rows; see the module docstring. `stopping`: the record of a
    rounds=auto sweep (pinsweep.analysis.sequential), whose intervals are that look's repeated ones."""
    if rows.empty or "status" not in rows:
        raise SummaryError("no job rows found: point at a sweep folder that holds <job>/row.csv files")
    rows = with_throughput(rows)  # items/s in the row's unit; images_per_s in rows written before units
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
    sweep = _Design.of(keyed, summary, axes, _cannot_act_here(rows, axes))
    base_index, base, fallback_note = _baseline(sweep, base, baseline)
    summary.insert(len(axes), "baseline", summary.index == base_index)
    effects, effect_contrasts = axis_effects(sweep, base)
    contrasts = speedup_contrasts(sweep, base_index) + effect_contrasts
    compare(sweep, summary, effects, contrasts, stopping)
    if base_index is not None:
        summary.at[base_index, "speedup"] = 1.0
    ran = [c for c in range(len(summary)) if summary.at[c, "n"]]
    summary["could_be_fastest"] = pd.Series([None] * len(summary), dtype=object)
    for c, flag in zip(ran, _could_be_fastest(sweep, ran, stopping)):
        summary.at[c, "could_be_fastest"] = flag
    mark_resolved(summary, effects, contrasts)
    summary["epoch_items_differ"], epoch_note = epoch_items_differ(summary, axes)
    notes = [fallback_note, _accelerator_note(sweep.inactive), _shared_note(rows), epoch_note]
    summary["note"] = "; ".join(filter(None, notes))
    return summary, effects


def _baseline(sweep: _Design, base: dict[str, str], requested: str) -> tuple[int | None, dict[str, str], str]:
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
    # the config that ran nearest the baseline asked for (fewest settings apart; the first of those): in a
    # search, whose draws rarely hold every default at once, the baseline's stand-in, named as one
    apart = [sum(summary.at[i, axis] != base[axis] for axis in axes) for i in ran]
    index = int(ran[int(np.argmin(apart))])
    fallback = {axis: summary.at[index, axis] for axis in axes}
    label = ",".join(f"{axis}={level}" for axis, level in fallback.items())
    if exists.any():
        note = f"baseline {chosen} failed in every repeat: speedups are over {label}, the config nearest it"
    else:
        note = (
            f"no job ran the default baseline {chosen} (each swept setting at its default, else its lowest level): "
            f"speedups are over {label}, the config that ran nearest it"
        )
    return index, fallback, note


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


def speedup_contrasts(sweep: _Design, base_index: int | None) -> list[Contrast]:
    if base_index is None:
        return []
    return [
        Contrast("summary", c, sweep.difference(c, base_index), not sweep.only_inactive(c, base_index))
        for c in range(len(sweep.summary))
        if c != base_index and sweep.summary.at[c, "n"]
    ]


def compare(
    sweep: _Design,
    summary: pd.DataFrame,
    effects: pd.DataFrame,
    contrasts: list[Contrast],
    stopping: sequential.Stopping | None = None,
) -> None:
    """Fill both tables' ratios, simultaneous intervals, `significant`, `equivalent` and `effect`.

    The claims (every config against the baseline, every axis effect) form ONE family, so that the
    chance of any false "significant" or "faster" in the whole sweep is 5%. Comparisons that differ
    only in axes that cannot act here get their own family, for the numbers, and are never findings.
    `equivalent`: the interval lies inside +-margin, a claim of the same family. A rounds=auto sweep
    (`stopping`) widens every interval to its last look's sequential boundary."""
    margin = stopping.the_plan().margin if stopping else sequential.MARGIN
    tables = {"summary": summary, "effects": effects}
    for frame, columns in zip(tables.values(), RATIO_COLUMNS.values()):
        for column in (*columns, "repeats_needed"):
            frame[column] = math.nan
    summary["significant"] = pd.Series([None] * len(summary), dtype=object)
    summary["equivalent"] = pd.Series([None] * len(summary), dtype=object)
    summary["equivalence_margin"] = margin
    summary["inactive"] = False
    kinds = [Effect.NOT_RUN] * len(effects)  # per effects row; the column is written once, as words
    for claim in (True, False):
        members = [c for c in contrasts if c.claim == claim and c.weights is not None]
        result = design.simultaneous(sweep.fit, [c.weights for c in members], critical=_look(sweep, members, stopping))
        for k, contrast in enumerate(members):
            frame = tables[contrast.table]
            ratio, low, high, p_value = RATIO_COLUMNS[contrast.table]
            for column, value in ((ratio, result.estimate[k]), (low, result.low[k]), (high, result.high[k])):
                frame.at[contrast.row, column] = math.exp(value)
            flag = result.significant[k] if claim else False
            same = result.equivalent(margin)[k] if claim else False
            if claim:
                frame.at[contrast.row, p_value] = result.p_adjusted[k]
            if flag is False and claim:
                needed = design.repeats_needed(result.estimate[k], result.se[k], sweep.rounds, result.critical)
                frame.at[contrast.row, "repeats_needed"] = needed
            if contrast.table == "summary":
                summary.at[contrast.row, "significant"] = flag
                summary.at[contrast.row, "equivalent"] = same
                summary.at[contrast.row, "inactive"] = not claim
            else:
                kinds[contrast.row] = _effect_word(flag, result.estimate[k], claim, sweep, same)
    for contrast in contrasts:  # an inactive axis is inactive, whether or not its strata ran
        if contrast.table == "effects" and not contrast.claim:
            kinds[contrast.row] = Effect.INACTIVE
    effects["effect"] = effect_words(pd.Series(kinds, index=effects.index, dtype=object))


def _look(sweep: _Design, members: list[Contrast], stopping: sequential.Stopping | None) -> float | None:
    """A rounds=auto sweep's critical value for this family at its last look; None: the fixed analysis."""
    if stopping is None or not members:
        return None
    weights = np.array([c.weights for c in members])
    plan = stopping.the_plan()
    n_configs = len(sweep.summary)
    return sequential.critical_now(sweep.config_index, sweep.round_index, n_configs, weights, plan, stopping.final)


def _could_be_fastest(sweep: _Design, ran: list[int], stopping: sequential.Stopping | None) -> list[bool | None]:
    """Hsu's multiple comparisons with the best; in a rounds=auto sweep, not beaten by another config
    beyond the pairwise family's sequential interval."""
    if stopping is None:
        return design.could_be_fastest(sweep.fit, ran)
    family = sequential.pairwise(ran, len(sweep.summary))
    critical = _look(sweep, [Contrast("summary", 0, w, True) for w in family], stopping)
    out = sequential.ruled_out(sweep.fit, ran, math.nan if critical is None else critical)
    return [None if flag is None else not flag for flag in out]


def mark_resolved(summary: pd.DataFrame, effects: pd.DataFrame, contrasts: list[Contrast]) -> None:
    """`resolved` per claim: significant, equivalent, or settled for the choice (every config it weighs
    is ruled out of being the fastest); None where it is no claim (the baseline, inactive settings) or
    has nothing to judge (a config that never ran). What a rounds=auto sweep waits for."""
    summary["resolved"] = pd.Series([None] * len(summary), dtype=object)
    effects["resolved"] = pd.Series([None] * len(effects), index=effects.index, dtype=object)
    out = summary["could_be_fastest"].eq(False).to_numpy()
    for contrast in contrasts:
        if not contrast.claim or contrast.weights is None:
            continue
        settled = bool(out[np.abs(contrast.weights) > 0].all())
        if contrast.table == "summary":
            decided = summary.at[contrast.row, "significant"] is True or summary.at[contrast.row, "equivalent"] is True
            summary.at[contrast.row, "resolved"] = decided or settled
        else:
            word = Effect(effects.at[contrast.row, "effect"])
            effects.at[contrast.row, "resolved"] = word.acts or word is Effect.EQUIVALENT or settled


def open_comparisons(summary: pd.DataFrame, effects: pd.DataFrame) -> list[str]:
    """The claims not yet resolved, each as `config vs baseline` or `axis level vs reference (held fixed)`."""
    axes = [c for c in summary.columns[: list(summary.columns).index("baseline")]] if "baseline" in summary else []
    said = []
    for _, record in summary[summary["resolved"].eq(False)].iterrows():
        said.append(", ".join(f"{a}={record[a]}" for a in axes) + " vs the baseline")
    for _, record in effects[effects["resolved"].eq(False)].iterrows():
        said.append(f"{record['axis']} {record['reference']} -> {record['level']} at {record['held_fixed']}")
    return said


def _effect_word(flag: bool | None, estimate: float, claim: bool, sweep: _Design, same: bool | None = None) -> Effect:
    if not claim:
        return Effect.INACTIVE
    if flag is None:
        return sweep.why_no_interval()
    if same:
        return Effect.EQUIVALENT
    if not flag:
        return Effect.NOT_SIGNIFICANT
    return Effect.FASTER if estimate > 0 else Effect.SLOWER


def axis_effects(sweep: _Design, base: dict[str, str]) -> tuple[pd.DataFrame, list[Contrast]]:
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


# swept settings that change what an epoch holds: configs that differ in one of them may differ in items
EPOCH_DEFINING = (
    "data.",
    "loader.drop_last",
    "loader.batch_size",
    "train.max_steps_per_epoch",
    "train.ranks",
    "train.count",
)


def epoch_items_differ(summary: pd.DataFrame, axes: list[str]) -> tuple[pd.Series, str]:
    """Configs that read the same data (equal in every swept setting that defines an epoch) must yield
    the same items an epoch; one that yields another count did other work, most often workers that each
    read a whole stream (items growing with num_workers). Each such config flagged, and a note naming it
    against the count most configs of its data yield."""
    flags = pd.Series(False, index=summary.index, dtype=bool)
    if "items_per_epoch" not in summary or summary["items_per_epoch"].isna().all():
        return flags, ""
    defining = [axis for axis in axes if axis.startswith(EPOCH_DEFINING)]
    groups = summary.groupby(defining, sort=False) if defining else [((), summary)]
    differing = []
    for _, group in groups:
        counts = group["items_per_epoch"].dropna()
        if counts.nunique() < 2:
            continue
        usual = counts.mode().iloc[0]
        odd = counts[counts != usual]
        flags[odd.index] = True
        for index, items in odd.items():
            config = ", ".join(f"{axis}={summary.at[index, axis]}" for axis in axes if axis not in defining)
            differing.append(f"{config} yielded {items:g} {summary.at[index, 'unit']} an epoch, the others {usual:g}")
    if not differing:
        return flags, ""
    return flags, (
        "epochs differ: " + "; ".join(differing) + ": these configs did not do the same work, so their speed is no "
        "finding; a stream whose every worker reads it whole grows with loader.num_workers (split it with "
        "torch.utils.data.get_worker_info(), webdataset's split_by_worker)"
    )


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


def axes_of(summary: pd.DataFrame) -> list[str]:
    """A summary's swept axes: its columns named after a config group, in summary order."""
    return [c for c in summary.columns if c.split(".", 1)[0] in CONFIG_GROUPS]


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["status"] == "ok"] if "status" in rows and (rows["status"] == "ok").any() else rows


def with_ceiling_precision(summary: pd.DataFrame) -> pd.DataFrame:
    """A summary without `ceiling_imprecise` (summary.csv from an earlier version, a frame made by hand)
    judged by today's rule (`ceiling_imprecise`), its compute-bound or contended verdicts IMPRECISE_VERDICT
    where the ceiling is: what a summary made today would say."""
    column = "compute_ceiling_ci_rel"
    ci = summary[column].astype(float) if column in summary else pd.Series(math.nan, index=summary.index)
    flags = [ceiling_imprecise(c, e) for c, e in zip(ci, summary["efficiency"].astype(float))]
    imprecise = pd.Series(flags, index=summary.index, dtype=bool)
    judged = summary.assign(ceiling_imprecise=imprecise)
    if "verdict" in summary:
        from_ceiling = imprecise & summary["verdict"].isin(["compute-bound", "contended"])
        judged["verdict"] = summary["verdict"].where(~from_ceiling, IMPRECISE_VERDICT)
    return judged


@dataclass
class Tables:
    """A summarized sweep, in memory: what the terminal, the plots, the advice and the report are drawn
    from, as torch.utils.benchmark's Measurement is what its Compare renders. Made by `summarize_sweep`
    or `read_tables`, or from frames made by hand (`rows` None: what only the rows know is unknown).
    Presentation reads the facts below from here, never derives them again."""

    summary: pd.DataFrame
    effects: pd.DataFrame
    rows: pd.DataFrame | None = None
    stopping: sequential.Stopping | None = None  # rounds=auto: how many rounds ran and why the sweep stopped
    config_dirs: tuple[str, ...] = ()  # the sweep's own --config-dir folders (multirun.yaml): a next sweep repeats them
    swept_by_config: tuple[str, ...] = ()  # keys its config sweeps (hydra.sweeper.params, e.g. experiment=quick's)

    def __post_init__(self) -> None:
        if "effect" in self.effects:  # the declared column, whoever made the frame (`effect_words`)
            self.effects = self.effects.assign(effect=effect_words(self.effects["effect"]))
        if "efficiency" in self.summary and "ceiling_imprecise" not in self.summary:
            self.summary = with_ceiling_precision(self.summary)  # written before the column, or by hand

    @property
    def failed(self) -> int:
        """Jobs that did not finish ok (failed, interrupted, missing, corrupt)."""
        if self.rows is None:
            return int(self.summary["n_failed"].sum()) if "n_failed" in self.summary else 0
        return int((self.rows["status"] != "ok").sum())

    @cached_property
    def axes(self) -> list[str]:
        return axes_of(self.summary)

    @cached_property
    def claims(self) -> pd.Series:
        """Per summary row, whether it is the row its config's claim names: at the baseline's levels of every
        axis that cannot act here (configs that differ only there are one config, and this row speaks for
        it; with no baseline, every row)."""
        summary, inactive = self.summary, self.inactive
        base = summary[summary["baseline"].astype(bool)] if "baseline" in summary else summary.iloc[0:0]
        flags = pd.Series(True, index=summary.index)
        for axis in inactive if len(base) else []:
            flags &= summary[axis] == base.iloc[0][axis]
        return flags

    @cached_property
    def fastest(self) -> pd.Series | None:
        """The config with the highest throughput (geometric mean) among the rows that speak for their config
        (`claims`): the one every sentence calls the fastest, with that row's figures; None when none ran."""
        ran = self.summary[self.summary["ips_geomean"].notna() & self.claims]
        return ran.loc[ran["ips_geomean"].astype(float).idxmax()] if len(ran) else None

    @cached_property
    def sound(self) -> pd.DataFrame:
        """The configs that ran and whose every job finished ok with a finite loss, one row each (`claims`):
        what advice may build on (a diverged run's speed is a broken run's; a config that failed may again)."""
        summary = self.summary
        keep = summary["ips_geomean"].notna() & self.claims
        for column in ("n_failed", "n_loss_not_finite"):
            if column in summary:
                keep &= summary[column].fillna(0).astype(float).eq(0)
        return summary[keep]

    @cached_property
    def inactive(self) -> list[str]:
        return inactive_axes(self.effects)

    @cached_property
    def accelerator(self) -> bool | None:
        """Whether the jobs ran on an accelerator; None when no rows tell (an axis inactive without an
        accelerator still says there was none)."""
        if self.rows is not None and "device" in self.rows:
            return bool(on_accelerator(self.rows))
        return False if self.inactive else None

    @cached_property
    def cores(self) -> int | None:
        """The CPU cores the jobs could use (the fewest, if they differ): train.cpus's where the rows record
        them (cpu_cores), else the machine's (a sweep from before); None when no rows tell."""
        return self._least("cpu_cores") or self._least("env.cpu_count")

    @cached_property
    def threads(self) -> int | None:
        """The training process's intra-op threads (torch.get_num_threads())."""
        return self._least("env.torch_threads")

    def _least(self, column: str) -> int | None:
        if self.rows is None or column not in self.rows or _ok(self.rows)[column].dropna().empty:
            return None
        return int(_ok(self.rows)[column].dropna().min())

    def fixed(self, column: str) -> str | None:
        """A setting's value in every ok job, when the rows hold it and it did not vary."""
        if self.rows is None or column not in self.rows:
            return None
        values = _ok(self.rows)[column].dropna().map(norm).unique()
        return values[0] if len(values) == 1 else None

    def setting(self, record: pd.Series, column: str) -> str | None:
        """A config's value of a setting: its axis level when swept, else the jobs' fixed value."""
        return str(record[column]) if column in self.axes else self.fixed(column)


def summarize_sweep(sweep_dir: str | Path, baseline: str = "", rows: pd.DataFrame | None = None) -> Tables:
    """A sweep folder's rows (read here unless the caller has them) summarized: the tables, in memory.
    Prints nothing and writes nothing; `write_tables` writes them."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise SummaryError(f"{sweep_dir}: no such sweep folder (look under multirun/)")
    rows = read_rows(sweep_dir) if rows is None else rows
    stopping = sequential.read_stopping(sweep_dir)  # a rounds=auto sweep: its looks' boundaries
    summary, effects = summarize(rows, baseline, stopping)
    return Tables(summary, effects, rows, stopping, *sweep_origin(sweep_dir))


def write_tables(tables: Tables, sweep_dir: str | Path) -> tuple[Path, Path]:
    """summary.csv and effects.csv into the sweep folder; returns the paths written: one that could not
    be (a full disk) is named in one line (pinsweep.outputs)."""
    sweep_dir = Path(sweep_dir)
    paths = sweep_dir / "summary.csv", sweep_dir / "effects.csv"
    unwritten: list[Path] = []
    with FileLock(sweep_dir / ".summary.lock"):  # the end-of-sweep callback and a user may both write
        for path, table in zip(paths, (tables.summary, tables.effects)):
            with output(path, unwritten), replacing(path) as temporary:
                table.to_csv(temporary, index=False)
    return tuple(path for path in paths if path not in unwritten)


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
        effects["effect"] = effect_words(effects["effect"])
    return effects


def read_tables(sweep_dir: str | Path, rows: pd.DataFrame | None = None) -> Tables:
    """The tables a previous summary wrote into the folder, with the folder's rows (read here unless the
    caller has them)."""
    sweep_dir = Path(sweep_dir)
    summary, effects = read_summary(sweep_dir / "summary.csv"), read_effects(sweep_dir / "effects.csv")
    rows = read_rows(sweep_dir) if rows is None else rows
    return Tables(summary, effects, rows, sequential.read_stopping(sweep_dir), *sweep_origin(sweep_dir))


def sweep_origin(sweep_dir: str | Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a next sweep must repeat of how this one was started, as Hydra recorded it in multirun.yaml: the
    folders its command line added with --config-dir (its command-line config sources), and the keys its
    config sweeps besides the command line (hydra.sweeper.params); () each when the folder holds no
    multirun.yaml or it cannot be read."""
    try:
        hydra = OmegaConf.load(Path(sweep_dir) / "multirun.yaml").hydra
    except Exception:  # no multirun.yaml (a search's confirm/, a folder copied without it), or not Hydra's
        return (), ()
    sources = OmegaConf.select(hydra, "runtime.config_sources", default=None) or []
    params = OmegaConf.select(hydra, "sweeper.params", default=None) or {}
    dirs = tuple(str(source.path) for source in sources if source.get("provider") == "command-line")
    return dirs, tuple(str(key) for key in params)
