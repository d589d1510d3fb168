"""What to do after a sweep, from the sweep's own evidence: advice that never names a change the sweep
measured as no faster, the next sweep as ready-to-run commands, and the configuration to use.

    advice = advise(Tables(summary, effects, rows))  # rows (optional): the cores, device, job settings
    advice.sentences       # each cites the configs or effect rows it rests on
    advice.recommendation  # the DataLoader(...) call and Hydra overrides, or None: the defaults hold
    advice.commands        # one or two `python -m pinsweep -m ...` lines

The fastest config is the one advised on, as the report's conclusion names it. Every suggested change is
checked against the configs that differ from it in that one setting (the same stratum): since it is the
fastest, any such config was measured as no faster, which rules the change out.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from pinsweep.analysis.summarize import (
    COMPUTE_BOUND_EFFICIENCY,
    OVERALL,
    REPLICATE_KEYS,
    Effect,
    Tables,
    effect_kinds,
    level_key,
    schema_defaults,
)
from pinsweep.present.wording import claim_label, imprecise_ceiling, interval, ips, missing, per_s, ratio, short_name
from pinsweep.record import CONFIG_GROUPS
from pinsweep.spelling import norm

NUM_WORKERS, PIPELINE, DECODER = "loader.num_workers", "data.pipeline", "data.decoder"
RANKS, THREADS, WORKER_THREADS = "train.ranks", "train.threads", "loader.worker_threads"
PIN_MEMORY, NON_BLOCKING = "loader.pin_memory", "loader.non_blocking"
DEFAULT_REPEATS = 3
MAX_USEFUL_REPEATS = 30  # beyond this, a difference is too small to be worth chasing on a shared machine
ALWAYS_KEPT = ("loader.batch_size", "train.epochs")  # set by presets as often as by hand: always spelt out
NEVER_KEPT = ("train.inject_fault",)  # a test's fault is not part of the job being measured
COMMAND = "python -m pinsweep -m"
PLAIN_VALUE = re.compile(r"[\w.:/+-]+")


@dataclass(frozen=True)
class Recommendation:
    label: str  # num_workers=2
    overrides: tuple[str, ...]  # loader.num_workers=2
    dataloader: str  # DataLoader(train_set, batch_size=256, ...)
    speedup: str  # 1.80x [1.60, 2.00]


@dataclass(frozen=True)
class NextSweep:
    command: str
    why: str


@dataclass
class Advice:
    sentences: list[str] = field(default_factory=list)
    recommendation: Recommendation | None = None
    commands: list[NextSweep] = field(default_factory=list)


def _workers(sweep: Tables, record: pd.Series) -> int:
    return int(float(sweep.setting(record, NUM_WORKERS) or 0))


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["status"] == "ok"] if "status" in rows and (rows["status"] == "ok").any() else rows


def _column(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column that older or hand-made tables may lack, as missing values."""
    return frame[column] if column in frame else pd.Series(math.nan, index=frame.index, dtype=object)


# ---------------------------------------------------------------------------------------- citations


def _number(level: str) -> float | None:
    try:
        return float(level)
    except (TypeError, ValueError):
        return None


def _stratum(record: pd.Series, axis: str, axes: list[str]) -> str:
    """effects.csv's held_fixed label of the stratum this config sits in, for one axis."""
    return ", ".join(f"{a}={record[a]}" for a in axes if a != axis) or "(none)"


def cite_effect(effect: pd.Series, axes: list[str]) -> str:
    """`num_workers 0 -> 2 at loader.pin_memory=false: 0.70x [0.37, 1.32], none: not significant`."""
    where = "" if effect["held_fixed"] in ("(none)", OVERALL) else f" at {effect['held_fixed']}"
    return (
        f"{short_name(effect['axis'], axes)} {effect['reference']} -> {effect['level']}{where}: "
        f"{ratio(effect['ratio'])}{interval(effect['ci_low'], effect['ci_high'])}, {effect['effect']}"
    )


def cite_config(record: pd.Series, sweep: Tables) -> str:
    """`num_workers=2, pin_memory=false: 2727 images/s, 0.70x [0.37, 1.32] the baseline, loader-bound` (the
    sweep's unit: tokens/s, ...)."""
    speed = "the baseline"
    if not bool(record["baseline"]):
        low, high = record.get("speedup_ci_low"), record.get("speedup_ci_high")
        speed = f"{ratio(record['speedup'])}{interval(low, high)} {speed}"
    verdict = f", {record['verdict']}" if isinstance(record.get("verdict"), str) and record["verdict"] else ""
    label = claim_label(record, sweep.axes, sweep.inactive)
    return f"{label}: {ips(record['ips_geomean'])} {per_s(record)}, {speed}{verdict}"


def _ruled_out(sweep: Tables, focus: pd.Series, axis: str, wanted: Callable[[str], bool]) -> list[str]:
    """Measurements that rule out moving the focus config along `axis` to a level `wanted` accepts: the
    configs that differ from it only there. The effect row is cited where the focus sits at the reference
    level (its interval is the direct comparison), else the config itself."""
    if axis not in sweep.axes:
        return []
    summary, others = sweep.summary, [a for a in sweep.axes if a != axis]
    same = summary[summary["n"].gt(0) & summary[axis].map(wanted) & (summary[axis] != focus[axis])]
    for other in others:
        same = same[same[other] == focus[other]]
    cites = []
    for _, alternative in same.iterrows():
        effect = sweep.effects[
            (sweep.effects["axis"] == axis)
            & (sweep.effects["level"] == alternative[axis])
            & (sweep.effects["reference"] == focus[axis])
            & (sweep.effects["held_fixed"] == _stratum(focus, axis, sweep.axes))
        ]
        if len(effect) and Effect(effect.iloc[0]["effect"]) is Effect.FASTER:
            continue  # measured faster than the focus: not ruled out
        cites.append(cite_effect(effect.iloc[0], sweep.axes) if len(effect) else cite_config(alternative, sweep))
    return cites


# ---------------------------------------------------------------------------------------- contention


def compute_share(record: pd.Series) -> float:
    """How fast compute ran during training against its compute-only ceiling: images/s over the share of
    the step spent computing is the compute rate; below the ceiling means something took its cores. None
    (NaN) against an imprecise ceiling: no finding to cite."""
    frac, ceiling = record.get("compute_frac"), record.get("compute_ceiling_ips")
    if missing(frac) or missing(ceiling) or not frac or not ceiling or imprecise_ceiling(record):
        return math.nan
    return float(record["ips_geomean"]) / float(frac) / float(ceiling)


def contention(sweep: Tables) -> list[str]:
    """The configs whose numbers point at worker processes competing with training for the CPU: more
    processes than cores, a `contended` verdict, or compute below its ceiling while workers ran (and below
    what it reached without workers, so a generally slow machine is not mistaken for contention)."""
    ran = sweep.summary[sweep.summary["ips_geomean"].notna()]
    alone = [compute_share(r) for _, r in ran.iterrows() if _workers(sweep, r) == 0]
    alone_share = min((s for s in alone if not math.isnan(s)), default=math.inf)
    cites: dict[str, list[str]] = {}  # by label without the axes inactive here: configs that differ only there
    # (pin_memory on a CPU) are one config, cited once with all their reasons
    for _, record in ran.iterrows():
        workers, reasons = _workers(sweep, record), []
        had = budget(record)
        if had is not None and had[1] > had[0]:  # what the job had, with its ranks (pinsweep.job.ranks)
            reasons.append(processes_line(sweep, record, had))
        elif had is None and workers and sweep.cores and workers + 1 > sweep.cores:  # a sweep from before
            reasons.append(f"{workers} workers + the training process on {sweep.cores} cores")
        share = compute_share(record)
        if workers and share < min(COMPUTE_BOUND_EFFICIENCY, alone_share):
            reasons.append(f"compute at {share:.0%} of its ceiling")
        if workers and record.get("verdict") == "contended":  # without workers, other processes compete
            reasons.append("verdict contended")
        label = claim_label(record, sweep.axes, sweep.inactive)
        if reasons:
            known = cites.setdefault(label, [])
            known += [reason for reason in reasons if reason not in known]
    return [f"{label} ({', '.join(reasons)})" for label, reasons in cites.items()]


def budget(record: pd.Series) -> tuple[int, int, int] | None:
    """(cores, processes, torch threads) a config's jobs had and ran (the summary's cpu_* columns,
    from pinsweep.job.ranks); None for a sweep written before they were recorded."""
    values = [record.get(column) for column in ("cpu_cores", "cpu_processes", "cpu_threads")]
    if any(missing(value) for value in values):
        return None
    return tuple(int(float(value)) for value in values)


def _ranks(sweep: Tables, record: pd.Series) -> int:
    return int(float(sweep.setting(record, RANKS) or 1))


def processes_line(sweep: Tables, record: pd.Series, had: tuple[int, int, int]) -> str:
    """`4 processes (2 ranks x (1 + 1 worker)) on 2 cores`."""
    cores, processes, _ = had
    ranks, workers = _ranks(sweep, record), _workers(sweep, record)
    per_rank = f"1 + {workers} worker{'s' * (workers != 1)}"
    return f"{processes} processes ({ranks} rank{'s' * (ranks != 1)} x ({per_rank})) on {_cores(cores)}"


def threads_line(had: tuple[int, int, int]) -> str:
    cores, processes, threads = had
    return f"{threads} torch threads in {processes} processes on {_cores(cores)}"


def _cores(count: int) -> str:
    return f"{count} core{'s' * (count != 1)}"


def fitting_threads(sweep: Tables, record: pd.Series, cores: int) -> int:
    """Intra-op threads per rank that keep all the config's torch threads within the cores."""
    ranks, workers = _ranks(sweep, record), _workers(sweep, record)
    per_worker = int(float(sweep.setting(record, WORKER_THREADS) or 1)) if workers else 0
    return max(1, (cores - ranks * workers * per_worker) // ranks)


def _fits(record: pd.Series) -> bool:
    """Whether a config's processes fit the cores its jobs had (unknown: taken as fitting)."""
    had = budget(record)
    return had is None or had[1] <= had[0]


def over_budget(sweep: Tables) -> list[str]:
    """Configs whose processes or torch threads outnumbered the cores they had, in numbers."""
    ran = sweep.summary[sweep.summary["ips_geomean"].notna()]
    cites: dict[str, str] = {}
    for _, record in ran.iterrows():
        had = budget(record)
        if had is None or max(had[1], had[2]) <= had[0]:
            continue
        line = processes_line(sweep, record, had) if had[1] > had[0] else threads_line(had)
        cites.setdefault(claim_label(record, sweep.axes, sweep.inactive), line)
    return [f"{label} ({line})" for label, line in cites.items()]


def _budget_sentence(sweep: Tables, cites: list[str]) -> str:
    cores = f"{sweep.cores} cores" if sweep.cores else "the machine's cores"
    threads = f"its {sweep.threads} intra-op threads" if sweep.threads else "its intra-op threads"
    spare = f"num_workers <= {sweep.cores - 1} with one training thread, " if sweep.cores else ""
    return (
        f"CPU contention, not too few workers, limits this machine: {'; '.join(cites)}. The budget is {cores} "
        f"shared by num_workers worker processes and the training process with {threads} "
        "(torch.get_num_threads(); set by OMP_NUM_THREADS or torch.set_num_threads): keep num_workers plus the "
        f"training threads within the cores ({spare}or fewer threads to give workers cores) rather than adding "
        "workers"
    )


# ---------------------------------------------------------------------------------------- advice


def verdict_changes(sweep: Tables, focus: pd.Series) -> list[tuple[str, str, str]]:
    """(change, axis, level) the fastest config's verdict points at, besides more workers: the tensor
    pipeline for a loader-bound PIL pipeline of a built-in dataset (torchvision's decoder for JPEG
    folders); pinning and non-blocking copies for a copy-bound config where an accelerator can act on them."""
    changes = []
    if focus.get("verdict") == "loader-bound":
        dataset = sweep.setting(focus, "data.name")
        if dataset == "imagefolder":  # JPEG files: no in-memory arrays for the tensor pipeline; a faster decoder
            if sweep.setting(focus, DECODER) in ("pil", None):
                changes.append(("data.decoder=torchvision", DECODER, "torchvision"))
        elif dataset != "custom" and sweep.setting(focus, PIPELINE) in ("pil", None):
            changes.append(("data.pipeline=tensor", PIPELINE, "tensor"))
    if focus.get("verdict") == "copy-bound" and sweep.accelerator is not False:
        changes += [(f"{a}=true", a, "true") for a in (PIN_MEMORY, NON_BLOCKING) if sweep.setting(focus, a) != "true"]
    return changes


def _focus_advice(sweep: Tables, focus: pd.Series, contended: bool) -> list[str]:
    """What could lift the fastest config past its limit, each change checked against the sweep."""
    verdict = focus.get("verdict")
    workers = _workers(sweep, focus)
    candidates: list[tuple[str, str, Callable[[str], bool]]] = []  # (change, axis, levels it means)
    if verdict == "loader-bound":
        candidates.append(("more loader.num_workers", NUM_WORKERS, lambda level: float(level) > workers))
    for change, axis, target in verdict_changes(sweep, focus):
        candidates.append((change, axis, lambda level, target=target: level == target))
    sentences, open_changes = [], []
    for change, axis, wanted in candidates:
        cites = _ruled_out(sweep, focus, axis, wanted)
        if cites:
            sentences.append(f"Not {change}: the sweep measured it as no faster ({'; '.join(cites)})")
        elif axis == NUM_WORKERS and (contended or (sweep.cores and workers + 2 > sweep.cores)):
            cores = f"{sweep.cores} cores" if sweep.cores else "the cores"
            sentences.append(f"Not {change}: {workers + 1} workers and the training process would exceed {cores}")
        else:
            open_changes.append(change)
    if open_changes:
        together = " with ".join(open_changes) if verdict == "copy-bound" else " or ".join(open_changes)
        sentences.insert(
            0,
            f"For the fastest config ({cite_config(focus, sweep)}), {together} could help: not yet measured here",
        )
    return sentences


def recommend(sweep: Tables) -> Recommendation | None:
    """The config significantly faster than the baseline, among those that may be the fastest first."""
    summary = sweep.summary
    better = summary[
        summary["significant"].eq(True) & summary["speedup"].gt(1) & ~_column(summary, "inactive").eq(True)
    ]
    if better.empty:
        return None
    contenders = better[better["could_be_fastest"].eq(True)] if "could_be_fastest" in better else better
    # among those, one whose processes fit the cores it had: more would be measured on a machine that has them
    fits = contenders[[_fits(record) for _, record in contenders.iterrows()]]
    contenders = fits if len(fits) else contenders
    pick = (contenders if len(contenders) else better).sort_values("ips_geomean", ascending=False).iloc[0]
    base = summary[summary["baseline"].astype(bool)]

    def value(column: str, default: str) -> str:
        if column in sweep.inactive and len(base):  # a setting that cannot act here: the baseline's, the cheaper
            return str(base.iloc[0][column])
        found = sweep.setting(pick, column)
        return found if found not in (None, "null") else default

    def python(text: str) -> str:
        return {"true": "True", "false": "False"}.get(text, text)

    defaults = schema_defaults()
    call = [f"batch_size={value('loader.batch_size', defaults['loader.batch_size'])}"]
    call += [f"shuffle={python(value('loader.shuffle', defaults['loader.shuffle']))}"]
    for key in ("num_workers", "pin_memory", "persistent_workers"):
        call.append(f"{key}={python(value(f'loader.{key}', defaults[f'loader.{key}']))}")
    prefetch = value("loader.prefetch_factor", "null")
    call += [f"prefetch_factor={prefetch}"] if prefetch != "null" else []
    dataloader = f"torch.utils.data.DataLoader(train_set, {', '.join(call)})"
    if value(NON_BLOCKING, "false") == "true":
        dataloader += ", with batch.to(device, non_blocking=True)"
    had = budget(pick)
    if had is not None:
        cores, processes, threads = had
        dataloader += f" per rank; {processes} processes and {threads} torch threads on {_cores(cores)}"
        if processes > cores:
            dataloader += " (more processes than cores: no config of this sweep fits them)"
        elif threads > cores:
            dataloader += (
                f" (more threads than cores: train.threads={fitting_threads(sweep, pick, cores)}, "
                "torch.set_num_threads in each rank, would fit them; not measured here)"
            )
    active = [a for a in sweep.axes if a not in sweep.inactive]
    return Recommendation(
        label=claim_label(pick, sweep.axes, sweep.inactive),
        overrides=tuple(f"{a}={pick[a]}" for a in active),
        dataloader=dataloader,
        speedup=f"{ratio(pick['speedup'])}{interval(pick['speedup_ci_low'], pick['speedup_ci_high'])}",
    )


def _defaults_hold(sweep: Tables) -> str:
    """Nothing beats the baseline significantly: say so, and what would have to change."""
    summary = sweep.summary
    base = summary[summary["baseline"].astype(bool)]
    if base.empty or summary["significant"].isna().all():
        return ""
    record = base.iloc[0]
    changes = []
    ahead = summary[summary["significant"].eq(False) & summary["speedup"].gt(1)]
    ahead = ahead[_column(ahead, "repeats_needed").le(MAX_USEFUL_REPEATS)]
    if len(ahead):
        lead = ahead.sort_values("ips_geomean", ascending=False).iloc[0]
        changes.append(
            f"about {int(lead['repeats_needed'])} repeats showing {claim_label(lead, sweep.axes, sweep.inactive)}'s "
            f"{ratio(lead['speedup'])}{interval(lead['speedup_ci_low'], lead['speedup_ci_high'])} is real"
        )
    if record.get("verdict") in ("compute-bound", "contended"):
        changes.append("a slower input pipeline per sample (heavier decoding; data.sample_delay_ms mimics one)")
    elif record.get("verdict") == "loader-bound":
        changes.append("cores to spare for loader workers")
    if sweep.accelerator is False:
        changes.append("an accelerator, where pin_memory and non_blocking can act")
    what = f"; that would change with {' or '.join(changes)}" if changes else ""
    return (
        f"The defaults are fine here: no config beats the baseline ({claim_label(record, sweep.axes, sweep.inactive)})"
        f" significantly{what}"
    )


# ---------------------------------------------------------------------------------------- next sweep


def _quote(key: str, value: str) -> str:
    token = f"{key}={value}" if PLAIN_VALUE.fullmatch(value) else f"{key}='{value}'"
    return shlex.quote(token)


def job_overrides(rows: pd.DataFrame | None, exclude: set[str]) -> list[str]:
    """The overrides that make a new sweep run the same job: the model and data choices, then every
    fixed setting that differs from the schema's default (sizes, epochs, batch always)."""
    if rows is None:
        return []
    ok, defaults, overrides = _ok(rows), schema_defaults(), []
    for group in ("model", "data"):
        names = ok[f"{group}.name"].dropna().map(norm).unique() if f"{group}.name" in ok else []
        overrides += [f"{group}={names[0]}"] if len(names) == 1 else []
    for column in ok.columns:
        group = column.split(".", 1)[0]
        if group not in CONFIG_GROUPS or column in exclude or column in REPLICATE_KEYS or column in NEVER_KEPT:
            continue
        if column in ("model.name", "data.name"):
            continue
        values = ok[column].map(norm).unique()
        if len(values) != 1:
            continue
        if column.endswith(".kwargs"):  # a JSON dict: one `+group.kwargs.key=value` each, as typed
            overrides += [_quote(f"+{column}.{k}", norm(v)) for k, v in json.loads(values[0]).items()]
        elif values[0] != defaults.get(column) or column in ALWAYS_KEPT:
            overrides.append(_quote(column, values[0]))
    return overrides


def _between(low: float, high: float) -> int | None:
    """A level between two measured ones: geometric for spans of 4x and more (batch sizes), else halfway."""
    middle = round(math.sqrt(low * high)) if low > 0 and high / low >= 4 else int((low + high) // 2)
    return middle if low < middle < high else None


def _around(levels: list[str], best: str, cap: int | None) -> list[str]:
    """Numeric levels between the best one and its measured neighbours, and beyond it where it is an end."""
    values = sorted({float(level) for level in levels})
    at, middle = values.index(float(best)), float(best)
    new = {middle}
    if at > 0:
        new.add(_between(values[at - 1], middle))
    elif middle >= 1:
        new.add(middle // 2)
    if at < len(values) - 1:
        new.add(_between(middle, values[at + 1]))
    else:
        new.add(middle * 2 if middle else 1)
    kept = sorted(v for v in new if v is not None and (cap is None or v <= cap or v == middle))
    return [norm(float(v)) for v in kept]


def _repeats(count: int, auto: bool = False) -> str:
    """The rounds of a next sweep: as many fixed rounds, or (after a rounds=auto sweep) at most as many."""
    if auto:
        return f"hydra.sweeper.rounds=auto hydra.sweeper.max_rounds={max(count, 2)}"
    return f"train.repeat={','.join(str(r) for r in range(count))}"


def _command(rows: pd.DataFrame | None, grid: dict[str, list[str]], repeats: int, auto: bool = False) -> str:
    swept = [
        _quote(axis, ",".join(levels)) if len(levels) == 1 else f"{axis}={','.join(levels)}"
        for axis, levels in grid.items()
    ]
    return " ".join([COMMAND, _repeats(repeats, auto), *job_overrides(rows, set(grid)), *swept])


def next_sweeps(sweep: Tables, focus: pd.Series | None, contended: bool) -> list[NextSweep]:
    """At most two commands: one that settles the differences this sweep left open (more repeats), one
    that explores around the fastest config (levels between and beyond it, an axis its verdict points at)."""
    active = [a for a in sweep.axes if a not in sweep.inactive]
    summary, effects = sweep.summary, sweep.effects
    levels = {a: sorted(summary[a].unique(), key=level_key) for a in active}
    done = int(summary["n"].max()) if len(summary) else 0
    commands = []
    overall = effects[effects["held_fixed"] == OVERALL] if not effects.empty else effects
    open_rows = overall[
        overall["axis"].isin(active)
        & (effect_kinds(overall) == Effect.NOT_SIGNIFICANT)
        & _column(overall, "repeats_needed").le(MAX_USEFUL_REPEATS)
    ]
    if len(open_rows):
        needed = max(int(open_rows["repeats_needed"].max()), done + 1, DEFAULT_REPEATS)
        what = "; ".join(cite_effect(e, sweep.axes) for _, e in open_rows.iterrows())
        grid = {a: levels[a] for a in active}
        auto = getattr(sweep, "stopping", None) is not None  # a rounds=auto sweep: the next one looks too
        why = f"settle what this sweep left open ({what})"
        commands.append(NextSweep(_command(sweep.rows, grid, needed, auto), why))
    if focus is None:
        return commands
    grid, reasons = {}, []
    cap = sweep.cores - 1 if contended and sweep.cores else None
    for axis in active:
        numeric = all(_number(level) is not None for level in levels[axis])
        new = _around(levels[axis], focus[axis], cap if axis == NUM_WORKERS else None) if numeric else [focus[axis]]
        if axis in (RANKS, THREADS, WORKER_THREADS):  # at least one rank, one thread (null: torch's default)
            new = [level for level in new if _number(level) is None or _number(level) >= 1] or [focus[axis]]
        if axis == RANKS and sweep.accelerator is False and sweep.cores:  # on a CPU, a core per rank at most
            new = [level for level in new if _number(level) <= sweep.cores] or [focus[axis]]
        grid[axis] = new
        if set(new) - set(levels[axis]):
            budget = f", within the {sweep.cores}-core budget" if cap is not None and axis == NUM_WORKERS else ""
            reasons.append(f"{short_name(axis, sweep.axes)} {','.join(new)} around the fastest{budget}")
    for change, axis, level in _pointed_at(sweep, focus):
        grid[axis] = sorted({sweep.setting(focus, axis) or schema_defaults()[axis], level}, key=level_key)
        reasons.append(f"{change}, which its verdict points at")
    if reasons:
        why = "explore " + "; ".join(reasons)
        auto = getattr(sweep, "stopping", None) is not None
        commands.append(NextSweep(_command(sweep.rows, grid, max(done, DEFAULT_REPEATS), auto), why))
    return commands


def _pointed_at(sweep: Tables, focus: pd.Series) -> list[tuple[str, str, str]]:
    """Unswept settings the fastest config's verdict points at: the next sweep adds them as axes."""
    return [change for change in verdict_changes(sweep, focus) if change[1] not in sweep.axes]


def advise(sweep: Tables) -> Advice:
    """Advice, recommendation and next sweep for a summarized sweep; see the module docstring."""
    summary = sweep.summary
    ran = summary[summary["ips_geomean"].notna()]
    if ran.empty:
        return Advice()
    focus = ran.loc[ran["ips_geomean"].astype(float).idxmax()]
    cites = contention(sweep)
    advice = Advice(sentences=_focus_advice(sweep, focus, bool(cites)))
    if cites:
        advice.sentences.append(_budget_sentence(sweep, cites))
    if over := over_budget(sweep):
        advice.sentences.append(
            f"Over the CPU budget (train.ranks x (1 + num_workers) processes, each rank's intra-op threads and "
            f"loader.worker_threads in each worker, against the cores each job had): {'; '.join(over)}"
        )
    advice.recommendation = recommend(sweep)
    if advice.recommendation:
        r = advice.recommendation
        advice.sentences.append(
            f"Recommended: {r.label}, {r.speedup} the baseline: {r.dataloader}; as Hydra overrides: "
            f"{' '.join(r.overrides)}"
        )
    elif (held := _defaults_hold(sweep)) != "":
        advice.sentences.append(held)
    advice.commands = next_sweeps(sweep, focus if sweep.axes else None, bool(cites))
    return advice
