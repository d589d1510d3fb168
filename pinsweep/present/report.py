"""One self-contained report of a sweep: conclusion, table, plots, per-axis effects, environment, failures.

    python -m pinsweep.report multirun/2026-11-24_10-00-00 [--baseline loader.num_workers=0]

`build` composes the report once from the tables (pinsweep.analysis.summarize.Tables) and the plots already
drawn (pinsweep.present.plots); `write_report` writes `report.html` (the plots embedded as base64 PNGs: one
file to mail or attach) and `report.md` (the same content, the plots referenced beside it). The conclusion
is generated from the summary and effects tables: which axis matters, by how much, what does nothing, what
the fastest config is limited by. The command above (pinsweep/report.py) summarizes first when summary.csv
is missing or older than a job's row.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pinsweep.analysis.summarize import CEILING_PRECISE_CI, OVERALL, TOO_FAST_EFFICIENCY, Effect, Tables, effect_kinds
from pinsweep.outputs import output, replacing
from pinsweep.present.advice import MAX_USEFUL_REPEATS, Advice, advise
from pinsweep.present.plots import Plots, setup_title
from pinsweep.present.wording import (
    PRECISE_CEILING_HOW,
    baseline_origin,
    baseline_record,
    ceiling_note,
    claim_label,
    config_label,
    imprecise_ceiling,
    per_s,
    ratio_interval,
    row_label,
    short_name,
    table_cells,
    why_imprecise,
)
from pinsweep.present.wording import interval as _interval
from pinsweep.present.wording import ips as _ips
from pinsweep.present.wording import missing as _missing
from pinsweep.present.wording import ratio as _ratio
from pinsweep.spelling import norm

WHY = {  # verdict -> what it means for the fastest config; {wait}/{copy} are its step-time shares. What to
    # change is pinsweep.present.advice's, which checks each change against the sweep
    "compute-bound": "the model's compute is the limit, so a faster input pipeline would not help",
    "loader-bound": "{wait} of its step time goes to waiting for the next batch, so the input pipeline is the limit",
    "copy-bound": "host-to-device copies take {copy} of its step time",
    "contended": "it hardly waits for data, yet compute runs below its ceiling: something competes with training "
    "for the CPU cores (loader workers, other processes)",
}
READING_GUIDE = [
    "{rate}: steady-state training throughput (warm-up excluded), geometric mean over repeats, with a 95% "
    "Student's t interval on the log scale.",
    "speedup: {rate} over the baseline config's, compared within each repeat round (the sweep is a randomized "
    "block design) with the noise pooled over all configs. Its 95% interval is simultaneous over every comparison "
    "in the sweep (Dunnett-style max-t), so 'significant' (the interval excludes 1) is wrong for any config at "
    "most 5% of the time. 'inactive': the config differs from the baseline only in settings that cannot act on "
    "this device (pin_memory, non_blocking without an accelerator).",
    "efficiency: {rate} over the compute-only ceiling (same model and batch, data already on the device): "
    "100% means the input pipeline costs nothing. With train.ranks > 1 both are per rank: the slowest rank's "
    "ceiling, without the gradient all-reduce, against the throughput per rank; the breakdown and verdict are "
    "that rank's too, and 'straggler rank r' marks one rank whose wait for data dominates (ranks.csv).",
    "[too wide]: a 95% interval whose high end is over 10 times its low end (too few runs, or too noisy ones) "
    "says nothing a reader could act on, so it is not quoted.",
    "verdict: compute-bound (within 10% of the ceiling), loader-bound or copy-bound (that stall takes >= 10% of "
    "the step), contended (no stall, but compute slower than its ceiling: loader workers or other processes "
    "compete for the CPU).",
    "(imprecise): a compute-only ceiling whose 95% interval is not finite (timed over too few steps) or wider "
    f"than ±{CEILING_PRECISE_CI:.0%}, or that the config beats by over {TOO_FAST_EFFICIENCY - 1:.0%} (mismeasured), "
    "cannot place a config on either side of the verdict's 90% line: its efficiency is shown but is not a finding, "
    "and its verdict is 'ceiling imprecise' unless a stall names the limit; the summary's ceiling_imprecise column "
    f"marks it, compute_ceiling_ci_rel gives the interval; {PRECISE_CEILING_HOW}.",
]
ENVIRONMENT = {  # row column -> label, in display order
    "env.hostname": "host",
    "device": "device",
    "env.device_name": "GPU",
    "env.cpu_model": "CPU",
    "env.cpu_count": "CPU cores",
    "env.torch": "torch",
    "env.torchvision": "torchvision",
    "env.cuda": "CUDA",
    "env.cudnn": "cuDNN",
    "env.python": "Python",
    "env.pinsweep": "pinsweep",
    "env.git_commit": "pinsweep commit",
}
FIXED_SETTINGS = (
    "model.name",
    "data.name",
    "data.pipeline",
    "data.train_size",
    "data.sample_delay_ms",
    "loader.batch_size",
    "loader.num_workers",
    "loader.pin_memory",
    "train.mode",
    "train.epochs",
    "train.device",
)


# -------------------------------------------------------------------------------------- conclusion


def _size(effect: pd.Series) -> float:
    """How big an effect is, either way: |log ratio|."""
    return abs(math.log(effect["ratio"])) if not _missing(effect["ratio"]) and effect["ratio"] > 0 else -1.0


def _change(effect: pd.Series) -> str:
    """`0 -> 2 is 1.80x [1.62, 2.01]`; `0 -> 2 is not measured` where no stratum ran both."""
    if _missing(effect["ratio"]):
        return f"{effect['reference']} -> {effect['level']} is not measured"
    return (
        f"{effect['reference']} -> {effect['level']} is {_ratio(effect['ratio'])}"
        f"{_interval(effect['ci_low'], effect['ci_high'])}"
    )


def _acting(effects: pd.DataFrame) -> pd.Series:
    """Which rows found a significant effect, either way."""
    return effect_kinds(effects).map(lambda kind: kind.acts).astype(bool)


def _others(axis: str, axes: list[str]) -> str:
    return " and ".join(short_name(a, axes) for a in axes if a != axis)


def _axis_sentence(
    axis: str,
    overall: pd.DataFrame,
    strata: pd.DataFrame,
    axes: list[str],
    lead: str,
    margin: float = 0.05,
    auto: bool = False,
) -> str:
    """One axis's effect in words. `overall` holds its OVERALL rows (one per level), `strata` the rest."""
    name = short_name(axis, axes)
    others = _others(axis, axes)
    everywhere = f" at any {others}" if others else ""
    kinds = effect_kinds(overall)
    if (kinds == Effect.INACTIVE).all():
        measured = ", ".join(_change(e).replace(" is ", " ratio, ") for _, e in overall.iterrows())
        return (
            f"{name} changes nothing on this machine: it is inactive without an accelerator, so the measured "
            f"{measured}, is noise or drift"
        )
    real = overall[_acting(overall)]
    if len(real):
        top = real.loc[real.apply(_size, axis=1).idxmax()]
        sentence = f"{name} {lead}: {_change(top)}"
        if len(overall) > 1:
            levels = ", ".join(
                f"{e['level']}: {'not measured' if _missing(e['ratio']) else _ratio(e['ratio'])}"
                for _, e in overall.iterrows()
            )
            sentence += f" (every level vs {top['reference']}: {levels})"
        return sentence
    if kinds.map(lambda kind: kind.unknown).all():
        top = overall.loc[overall.apply(_size, axis=1).idxmax()]
        if _missing(top["ratio"]):  # no stratum ran both levels: nothing was measured
            return f"{name}: {top['reference']} -> {top['level']} was not measured ({top['effect']})"
        return (
            f"{name}: {top['reference']} -> {top['level']} measured {_ratio(top['ratio'])}, but without a confidence "
            "interval (a config with fewer than 2 successful runs) that cannot be told from noise"
        )
    # not significant overall; it may still act at some levels of the other axes (an interaction)
    acting = strata[_acting(strata)]
    measured = ", ".join(_change(e) for _, e in overall.iterrows())
    if len(acting):
        where = "; ".join(f"at {e['held_fixed']} {_change(e)} ({e['effect']})" for _, e in acting.iterrows())
        return f"{name} has no consistent effect ({measured} overall), but it depends on {others}: {where}"
    if (kinds == Effect.EQUIVALENT).all():  # a finding: the intervals lie inside +-margin
        return f"{name} makes no difference here (within ±{margin:.0%}{everywhere}: {measured})"
    return f"{name} changes nothing measurable{everywhere} ({measured}){_repeats_hint(overall, auto)}"


def _repeats_hint(comparisons: pd.DataFrame, auto: bool = False) -> str:
    """What would settle a difference the sweep could not: the repeats at which the largest measured
    difference would be significant with 80% power (a column of the table); in a rounds=auto sweep
    (`auto`), the limit of rounds that would let it get there."""
    needed = comparisons["repeats_needed"].dropna() if "repeats_needed" in comparisons else pd.Series(dtype=float)
    if needed.empty:
        return ""
    fewest = int(needed.min())
    if fewest > MAX_USEFUL_REPEATS:
        return (
            f"; against this machine's noise, over {MAX_USEFUL_REPEATS} repeats would be needed to resolve it: "
            "treat it as no difference"
        )
    if auto:
        return f"; about {fewest} rounds (hydra.sweeper.max_rounds={fewest}) would resolve a difference of this size"
    return f"; about {fewest} repeats (train.repeat=0,...,{fewest - 1}) would resolve a difference of this size"


def _axis_sentences(effects: pd.DataFrame, axes: list[str], margin: float = 0.05, auto: bool = False) -> list[str]:
    """Axes that matter first (largest effect first), then unmeasurable ones, then those that do nothing."""
    if effects.empty:
        return []
    overall = effects[effects["held_fixed"] == OVERALL]
    strata = effects[effects["held_fixed"] != OVERALL]

    def rank(axis: str) -> tuple[int, float]:
        mine = overall[overall["axis"] == axis]
        kinds = effect_kinds(mine)
        group = 0 if _acting(mine).any() else 1 if kinds.map(lambda kind: kind.unknown).all() else 2
        group = 3 if (kinds == Effect.INACTIVE).all() else group
        return group, -max((_size(e) for _, e in mine.iterrows()), default=0.0)

    ordered = sorted((a for a in axes if (overall["axis"] == a).any()), key=rank)
    mattering = [a for a in ordered if rank(a)[0] == 0]
    sentences = []
    for axis in ordered:
        if len(mattering) == 1:
            lead = "is what matters here"
        elif mattering and axis == mattering[0]:
            lead = "matters most"
        else:
            lead = "also matters"
        mine = overall["axis"] == axis
        sentences.append(_axis_sentence(axis, overall[mine], strata[strata["axis"] == axis], axes, lead, margin, auto))
    if len(ordered) > 1 and all(rank(a)[0] >= 2 for a in ordered):
        sentences.insert(0, "No swept setting changes throughput measurably here")
    return sentences


def _speed(record: pd.Series, summary: pd.DataFrame) -> str:
    """`1800 [1700, 1900] images/s`: one row's throughput and its interval, in the sweep's unit."""
    return f"{_ips(record['ips_geomean'], record.get('ips_ci_low'), record.get('ips_ci_high'))} {per_s(summary)}"


def _diverged(record: pd.Series) -> str:
    """`; its training diverged in 3 of its 3 jobs (loss not finite): the speed of a broken run`, or ''."""
    count = record.get("n_loss_not_finite")
    if _missing(count) or not count:
        return ""
    return (
        f"; its training diverged in {int(count)} of its {int(record['n'])} jobs (loss not finite): the speed "
        "of a broken run"
    )


def _fastest_sentences(tables: Tables, auto: bool = False) -> list[str]:
    """The fastest config (Tables.fastest: configs that differ only in settings that cannot act here are one,
    the row at the baseline's levels of those settings speaking for it) with that row's own figures. A config
    is named by `row_label`: the short label only where it names that one row."""
    summary, axes, inactive, best = tables.summary, tables.axes, tables.inactive, tables.fastest
    if best is None:
        return ["No config ran successfully: see the failed jobs"]
    ran = summary[summary["ips_geomean"].notna() & tables.claims]
    label = row_label(best, summary, axes, inactive)
    if not axes:
        return [f"The config runs at {_speed(best, summary)}{_diverged(best)}", *_limit_sentence(best)]
    base = baseline_record(summary)
    if not [a for a in axes if a not in inactive]:  # every swept setting is one that cannot act here
        names = " and ".join(short_name(a, axes) for a in inactive)
        sentences = [
            f"Every config differs from the baseline only in {names}, which cannot act here: the baseline, "
            f"{label}, runs at {_speed(best, summary)}, and the other configs' differences are noise or drift"
            f"{_diverged(best)}"
        ]
        return sentences + _limit_sentence(best)
    if bool(best["baseline"]):
        sentences = [f"The fastest config is the baseline, {label}, at {_speed(best, summary)}{_diverged(best)}"]
    elif bool(best.get("inactive", False)) and base is not None:  # differs from the baseline only where nothing acts
        differing = [short_name(a, axes) for a in inactive if best[a] != base[a]]
        sentences = [
            f"Fastest: {label} at {_speed(best, summary)}; it differs from the baseline "
            f"({row_label(base, summary, axes, inactive)}, {_speed(base, summary)}) only in {' and '.join(differing)}, "
            f"which cannot act here, so the difference is noise or drift{_diverged(best)}"
        ]
    else:
        versus = f" ({row_label(base, summary, axes, inactive)})" if base is not None else ""
        significant = best.get("significant")
        caveat = (
            ", no interval (one run per config)"
            if _missing(significant)
            else ""
            if significant
            else f", not significantly different{_repeats_hint(ran.loc[[best.name]], auto)}"
        )
        ratio = (
            ""
            if _missing(best.get("speedup"))
            else f", {_ratio(best['speedup'])}{_interval(best.get('speedup_ci_low'), best.get('speedup_ci_high'))} "
            f"the baseline{versus}{caveat}"
        )
        sentences = [f"Fastest: {label} at {_speed(best, summary)}{ratio}{_diverged(best)}"]
    sentences += _best_set_sentence(ran, best, axes, inactive)
    return sentences + _limit_sentence(best)


def _limit_sentence(best: pd.Series) -> list[str]:
    """What limits the fastest config, against its compute-only ceiling. Where that ceiling is imprecise
    (pinsweep.analysis.summarize.ceiling_imprecise) its efficiency is said to be no finding, with how to
    make it one; a stall, measured in training itself, still names the limit."""
    verdict, efficiency = best.get("verdict"), best.get("efficiency")
    if not isinstance(verdict, str) or _missing(efficiency):
        return []
    shares = {key: best.get(f"{part}_frac") for key, part in (("wait", "data_wait"), ("copy", "copy"))}
    if verdict in ("loader-bound", "copy-bound") and _missing(shares["wait" if verdict == "loader-bound" else "copy"]):
        return []  # a stall named without its share: nothing to cite
    spelt = {key: "-" if _missing(value) else f"{value:.0%}" for key, value in shares.items()}
    why = WHY[verdict].format(**spelt) if verdict in WHY else ""
    imprecise = f"its compute-only ceiling is imprecise ({why_imprecise(best)})"
    if not imprecise_ceiling(best):
        return [f"It reaches {efficiency:.0%} of the compute-only ceiling and is {verdict}: {why}"] if why else []
    if verdict in ("loader-bound", "copy-bound"):
        return [
            f"It is {verdict}: {why}; {imprecise}, so its efficiency ({efficiency:.0%}) is not a finding: "
            f"{PRECISE_CEILING_HOW}"
        ]
    return [
        f"It hardly waits for data or copies, but {imprecise}, so neither its efficiency ({efficiency:.0%}) nor "
        f"whether compute or contention for the CPU limits it is a finding: {PRECISE_CEILING_HOW}"
    ]


def _best_set_sentence(ran: pd.DataFrame, best: pd.Series, axes: list[str], inactive: list[str]) -> list[str]:
    """Whether 'fastest' is a finding: Hsu's comparisons with the best (summary column could_be_fastest)
    keep every config that the data cannot rule out as the fastest, at 95% confidence."""
    if "could_be_fastest" not in ran or ran["could_be_fastest"].isna().all() or len(ran) < 2:
        return []
    if not [a for a in axes if a not in inactive]:  # every config is one here: no fastest to single out
        return []
    label = claim_label(best, axes, inactive)
    contenders = {claim_label(r, axes, inactive) for _, r in ran[ran["could_be_fastest"].eq(True)].iterrows()}
    contenders.discard(label)
    if not contenders:
        return [f"No other config can be the fastest at 95% confidence: {label} is the fastest here"]
    return [
        f"It cannot be told apart from {', '.join(sorted(contenders))}: any of them may be the fastest "
        "(95% confidence); among those, prefer the cheapest"
    ]


def _still_open(tables: Tables) -> list[str]:
    """The comparisons the tables mark unresolved (`resolved` false), each with its own figures."""
    summary, effects, axes = tables.summary, tables.effects, tables.axes
    said = []
    if "resolved" in summary:
        for _, record in summary[summary["resolved"].eq(False)].iterrows():
            low, high = record.get("speedup_ci_low"), record.get("speedup_ci_high")
            speedup = ratio_interval(record["speedup"], low, high)
            said.append(f"{', '.join(f'{a}={record[a]}' for a in axes)} vs the baseline ({speedup})")
    if "resolved" in effects:
        for _, effect in effects[effects["resolved"].eq(False)].iterrows():
            where = "" if effect["held_fixed"] in ("(none)", OVERALL) else f" at {effect['held_fixed']}"
            said.append(
                f"{effect['axis']} {effect['reference']} -> {effect['level']}{where} "
                f"({ratio_interval(effect['ratio'], effect['ci_low'], effect['ci_high'])})"
            )
    return said


def _baseline_sentences(tables: Tables) -> list[str]:
    """Where the baseline is not the one the default rule picks, which one it is and why: a --baseline a
    summary was made with stays in summary.csv, and the report says so."""
    origin, rule = baseline_origin(tables.summary)
    base = baseline_record(tables.summary)
    if origin != "chosen" or base is None:
        return []
    default = ", ".join(f"{short_name(a, tables.axes)}={level}" for a, level in rule.items())
    return [
        f"Every speedup here is over the baseline {config_label(base, tables.axes)}, chosen with --baseline when "
        f"this folder was last summarized, not the default one ({default}); pinsweep-summarize or pinsweep-report "
        "with --baseline changes it"
    ]


def _stopping_sentences(tables: Tables) -> list[str]:
    """Why a rounds=auto sweep stopped (rounds.json, pinsweep/sweep/rounds.py) and, at a limit, what is
    still open and what would settle it."""
    stopping = getattr(tables, "stopping", None)
    if stopping is None:
        return []
    if stopping.state == "resolved":
        return [f"The sweep stopped after {stopping.rounds} rounds (rounds=auto): every comparison was resolved"]
    if stopping.state == "running":
        return [f"The sweep ended after {stopping.rounds} rounds before deciding (rounds=auto): resume it to go on"]
    why = "its wall-time budget" if stopping.state == "budget" else "its limit of rounds"
    still = _still_open(tables) or [item.replace(" at (none)", "") for item in stopping.open]
    opened = still[:3] + ([f"{len(still) - 3} more"] if len(still) > 3 else [])
    sentence = f"The sweep stopped at {why} after {stopping.rounds} rounds with {'; '.join(opened)} still open"
    needed = tables.summary.loc[tables.summary.get("resolved", pd.Series(dtype=object)).eq(False), "repeats_needed"]
    needed = needed.dropna() if len(needed) else needed
    if len(needed) and int(needed.min()) <= MAX_USEFUL_REPEATS:
        rounds = max(int(needed.min()), stopping.rounds + 1)
        sentence += f"; about {rounds} rounds would settle the closest (hydra.sweeper.max_rounds={rounds})"
    return [sentence]


def conclusion(tables: Tables, advice: Advice | None = None) -> list[str]:
    """Plain-language findings, computed from the summary and effects tables (and the rows, for the cores,
    the device and the job's settings), then the advice that follows from them (`advice`, when the caller
    has it already); one sentence per item."""
    summary, effects, axes = tables.summary, tables.effects, tables.axes
    margin = float(summary["equivalence_margin"].iloc[0]) if "equivalence_margin" in summary and len(summary) else 0.05
    auto = getattr(tables, "stopping", None) is not None  # a rounds=auto sweep: more rounds, not more repeats
    sentences = _baseline_sentences(tables) + _axis_sentences(effects, axes, margin, auto)
    sentences += _fastest_sentences(tables, auto)
    sentences += _stopping_sentences(tables)
    sentences += (advice or advise(tables)).sentences
    if summary["ips_ci_low"].isna().all() and summary["ips_median"].notna().any():
        sentences.append(
            "With one run per config no difference can be told from noise: rerun with train.repeat=0,1,2 "
            "for confidence intervals"
        )
    failed = int(summary["n_failed"].sum()) if "n_failed" in summary else 0
    if failed:
        lost = summary[summary["n"] == 0]
        lost_text = f"; no successful run for {'; '.join(config_label(r, axes) for _, r in lost.iterrows())}"
        sentences.append(
            f"{failed} job{'s' if failed > 1 else ''} failed (see Failed jobs){lost_text if len(lost) else ''}"
        )
    diverged = summary[summary["n_loss_not_finite"].fillna(0) > 0] if "n_loss_not_finite" in summary else []
    if len(diverged):
        count = int(diverged["n_loss_not_finite"].sum())
        sentences.append(
            f"The training diverged (final loss NaN or inf, loss_finite=false) in {count} job(s) of "
            f"{'; '.join(config_label(r, axes) for _, r in diverged.iterrows())}: their timing is kept, "
            "but it is the timing of a broken run (check the learning rate and the model)"
        )
    return [s + "." for s in sentences]


# -------------------------------------------------------------------------------------- the report


@dataclass
class Image:
    path: Path
    alt: str


@dataclass
class Table:
    frame: pd.DataFrame


@dataclass
class Code:
    text: str  # a command to copy and run


Block = str | list | Image | Table | Code  # paragraph, bullet list, image, table, command


def _environment(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per environment key; several values (a sweep spread over nodes) are all listed."""
    items = []
    for column, label in ENVIRONMENT.items():
        if column in rows:
            values = [_env_value(column, v) for v in rows[column].dropna().unique() if str(v) != ""]
            values = [v for v in values if v != "null"]
            if values:
                items.append((label, ", ".join(values) + (" (differs between jobs)" if len(values) > 1 else "")))
    if "env.utc_time" in rows and rows["env.utc_time"].notna().any():
        times = sorted(rows["env.utc_time"].dropna().astype(str))
        items.append(("time (UTC)", times[0] if times[0] == times[-1] else f"{times[0]} to {times[-1]}"))
    return pd.DataFrame(items, columns=["", "value"])


def _env_value(column: str, value: Any) -> str:
    """As recorded: pandas reads CUDA `13.0` as a number, which must not become `13`."""
    if column == "env.cuda" and isinstance(value, (float, np.floating)):
        return f"{value:.1f}"
    return norm(value)


def _settings(rows: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    ok = rows[rows["status"] == "ok"] if (rows["status"] == "ok").any() else rows
    items = []
    for column in FIXED_SETTINGS:
        if column in ok and column not in axes and ok[column].notna().any():
            items.append((column, norm(ok[column].dropna().iloc[0])))
    return pd.DataFrame(items, columns=["setting", "value"])


def _effects_table(effects: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    ordered = pd.concat([effects[effects["held_fixed"] == OVERALL], effects[effects["held_fixed"] != OVERALL]])
    return pd.DataFrame(
        {
            "axis": [short_name(a, axes) for a in ordered["axis"]],
            "change": [f"{e['reference']} -> {e['level']}" for _, e in ordered.iterrows()],
            "other axes held at": ordered["held_fixed"].astype(str),
            "ratio [95% CI]": [ratio_interval(e["ratio"], e["ci_low"], e["ci_high"]) for _, e in ordered.iterrows()],
            "effect": ordered["effect"].astype(str),
        }
    )


def _failed_table(rows: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    failed = rows[rows["status"] != "ok"]
    return pd.DataFrame(
        {
            "job": [
                norm(r.get("job.num")) if not _missing(r.get("job.num")) else Path(r["job.dir"]).name
                for _, r in failed.iterrows()
            ],
            "config": [config_label(r.reindex(axes).map(norm), axes) for _, r in failed.iterrows()],
            "status": failed["status"].astype(str),
            "reason": failed.get("error", pd.Series("", index=failed.index)).fillna("").astype(str),
        }
    )


@dataclass
class Report:
    """One sweep's report, composed once: its blocks for both renderings, and the parts the terminal
    prints at the end of a sweep (conclusion, next sweep, auto-tune outcome)."""

    blocks: list[Block]
    conclusion: list[str]
    advice: Advice
    autotune: list[str]  # the auto-tune's outcome in words (pinsweep.autotune.confirm.sentences); [] otherwise


CAPTIONS = {
    "throughput": "{rate} per config with its interval; the red mark is the compute-only ceiling.",
    "heatmap": "{rate} (geometric mean over repeats) over two swept axes, with the speedup over the baseline.",
    "breakdown": "Share of steady-state step time spent waiting for data, copying, computing.",
}


def build(sweep_dir: Path, tables: Tables, plots: Plots, autotune: list[str] | None = None) -> Report:
    """The report's content, in order, independent of its rendering: from the tables and the plots already
    drawn (pinsweep.present.plots.make_plots); `autotune`, an auto-tune's outcome in words, comes first,
    since the conclusion below is about the search's single measurements. Writes nothing."""
    summary, effects, rows, axes = tables.summary, tables.effects, tables.rows, tables.axes
    rows = rows if rows is not None else pd.DataFrame({"status": pd.Series(dtype=str)})
    advice = advise(tables)
    sentences = conclusion(tables, advice)
    blocks: list[Block] = [f"# pinsweep report: {Path(sweep_dir).name}", setup_title(tables)]
    if autotune:
        blocks += ["## Auto-tune: search pick and confirmed pick", list(autotune)]
    blocks += ["## Conclusion", sentences]
    if advice.commands:
        blocks += ["## Next sweep"]
        for sweep in advice.commands:
            blocks += [f"To {sweep.why}:", Code(sweep.command)]
    note = summary["note"].dropna().astype(str) if "note" in summary else pd.Series(dtype=str)
    blocks += ["## Summary", Table(table_cells(summary, tables.rows))]
    if len(note) and note.iloc[0]:
        blocks.append(f"Note: {note.iloc[0]}.")
    if caveat := ceiling_note(summary):
        blocks.append(f"{caveat[0].upper()}{caveat[1:]}.")
    blocks += ["## Plots"]
    rate = per_s(summary)  # images/s, tokens/s, ...: train.unit
    blocks += [Image(path, CAPTIONS[name].format(rate=rate.capitalize())) for name, path in plots.written.items()]
    blocks += [f"{name}.png not drawn: {reason}." for name, reason in plots.skipped.items()]
    if not effects.empty:
        blocks += [
            "## Per-axis effects",
            f"Each axis's effect with every other axis held fixed: the ratio of {rate} at each level over the "
            "reference level, per combination of the other axes (within repeat rounds), then their geometric mean "
            f"('{OVERALL}'). Intervals are simultaneous with the summary's: 95% for every claim at once.",
            Table(_effects_table(effects, axes)),
        ]
    blocks += ["## Fixed settings", Table(_settings(rows, axes))]
    blocks += ["## Environment", Table(_environment(rows))]
    failed = _failed_table(rows, axes)
    blocks += ["## Failed jobs", Table(failed) if len(failed) else "None: every job finished."]
    blocks += ["## How to read this", [line.format(rate=rate) for line in READING_GUIDE]]
    return Report(blocks, sentences, advice, list(autotune or []))


def render_markdown(blocks: list[Block]) -> str:
    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    parts = []
    for block in blocks:
        if isinstance(block, Image):
            parts.append(f"![{block.alt}]({block.path.name})\n\n*{block.alt}*")
        elif isinstance(block, Code):
            parts.append(f"```bash\n{block.text}\n```")
        elif isinstance(block, Table):
            frame = block.frame
            lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
            lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
            parts.append("\n".join(lines))
        elif isinstance(block, list):
            parts.append("\n".join(f"- {item}" for item in block))
        else:
            parts.append(block)
    return "\n\n".join(parts) + "\n"


NUMBER = r"-|-?[\d,]+(\.\d+)?[x%]?( \[[-\d.,]+, [-\d.,]+\])?"  # 1,016 [792, 1,624]; 1.52x; 55%; right-aligned
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 1150px; margin: 2em auto;
       padding: 0 1em; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; }
th { background: #f6f8fa; } tr:nth-child(even) td { background: #fbfcfd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #d0d7de; } figure { margin: 1em 0; }
figcaption { color: #57606a; font-size: 0.9em; } .subtitle { color: #57606a; margin-top: 0; }
ul.conclusion li { margin: 0.3em 0; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: 8px 10px; white-space: pre-wrap; }
"""


def render_html(blocks: list[Block]) -> str:
    parts = []
    for index, block in enumerate(blocks):
        if isinstance(block, Image):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}">'
                f"<figcaption>{html.escape(block.alt)}</figcaption></figure>"
            )
        elif isinstance(block, Code):
            parts.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in block.frame.columns)
            numeric = [block.frame[c].astype(str).str.fullmatch(NUMBER).all() for c in block.frame.columns]
            body = "".join(
                "<tr>"
                + "".join(
                    f"<td{' class=num' if right else ''}>{html.escape(str(v))}</td>" for v, right in zip(row, numeric)
                )
                + "</tr>"
                for row in block.frame.itertuples(index=False)
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, list):
            items = "".join(f"<li>{html.escape(str(item))}</li>" for item in block)
            parts.append(f'<ul class="conclusion">{items}</ul>')
        elif block.startswith("## "):
            parts.append(f"<h2>{html.escape(block[3:])}</h2>")
        elif block.startswith("# "):
            parts.append(f"<h1>{html.escape(block[2:])}</h1>")
        else:
            css = ' class="subtitle"' if index == 1 else ""
            parts.append(f"<p{css}>{html.escape(block)}</p>")
    title = html.escape(blocks[0].lstrip("# ")) if blocks and isinstance(blocks[0], str) else "pinsweep report"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def write_report(report: Report, sweep_dir: str | Path) -> list[Path]:
    """report.html (the plots embedded) and report.md (the plots beside it) into the sweep folder; returns
    the paths written: one that could not be (a full disk) is named in one line (pinsweep.outputs)."""
    sweep_dir = Path(sweep_dir)
    unwritten: list[Path] = []
    for path, render in ((sweep_dir / "report.html", render_html), (sweep_dir / "report.md", render_markdown)):
        text = render(report.blocks)  # before the write: a plot it cannot read is its own error, not this file's
        with output(path, unwritten), replacing(path) as temporary:
            temporary.write_text(text, encoding="utf-8")
    return [path for path in (sweep_dir / "report.html", sweep_dir / "report.md") if path not in unwritten]
