"""What to do after a sweep, from the sweep's own evidence: advice that never names a change the sweep
measured as no faster, the next sweep as ready-to-run commands, and the configuration to use.

    advice = advise(Tables(summary, effects, rows))  # rows (optional): the cores, device, job settings
    advice.sentences       # each cites the configs or effect rows it rests on
    advice.recommendation  # the DataLoader(...) call and Hydra overrides, or None: the defaults hold
    advice.commands        # one or two `python -m pinsweep [--config-dir ...] -m ...` lines

The config advised on is the fastest whose jobs all ran cleanly (Tables.sound: no failed job, no diverged
loss), which is the conclusion's fastest unless that one broke. Every suggested change is checked against
the configs that differ from it in that one setting (the same stratum): since it is the fastest, any such
config was measured as no faster, which rules the change out; one that failed or diverged rules out a sweep
past it. The next sweep keeps to the bound the sentences state (`most_workers`), repeats the user's own
command (their --config-dir, their overrides as typed), and is checked job by job before it is printed.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import shlex
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from functools import lru_cache

import pandas as pd
from omegaconf import OmegaConf

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
from pinsweep.config import GROUP_SCHEMAS, Config, validate
from pinsweep.present.wording import (
    baseline_origin,
    baseline_record,
    claim_label,
    config_label,
    imprecise_ceiling,
    interval,
    ips,
    missing,
    per_s,
    ratio,
    row_label,
    short_name,
)
from pinsweep.record import CONFIG_GROUPS
from pinsweep.spelling import norm

NUM_WORKERS, PIPELINE, DECODER = "loader.num_workers", "data.pipeline", "data.decoder"
RANKS, THREADS, WORKER_THREADS = "train.ranks", "train.threads", "loader.worker_threads"
PIN_MEMORY, NON_BLOCKING = "loader.pin_memory", "loader.non_blocking"
DEFAULT_REPEATS = 3
MAX_USEFUL_REPEATS = 30  # beyond this, a difference is too small to be worth chasing on a shared machine
ALWAYS_KEPT = ("loader.batch_size", "train.epochs")  # set by presets as often as by hand: always spelt out
NEVER_KEPT = ("train.inject_fault",)  # a test's fault is not part of the job being measured


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
    measured = "not measured" if missing(effect["ratio"]) else f"{ratio(effect['ratio'])}"
    return (
        f"{short_name(effect['axis'], axes)} {effect['reference']} -> {effect['level']}{where}: "
        f"{measured}{interval(effect['ci_low'], effect['ci_high'])}, {effect['effect']}"
    )


def cite_config(record: pd.Series, sweep: Tables) -> str:
    """`num_workers=2, pin_memory=false: 2727 images/s, 0.70x [0.37, 1.32] the baseline, loader-bound` (the
    sweep's unit: tokens/s, ...)."""
    speed = ", the baseline"
    if not bool(record["baseline"]):
        low, high = record.get("speedup_ci_low"), record.get("speedup_ci_high")
        known = not missing(record.get("speedup"))
        speed = f", {ratio(record['speedup'])}{interval(low, high)} the baseline" if known else ""
    verdict = f", {record['verdict']}" if isinstance(record.get("verdict"), str) and record["verdict"] else ""
    label = row_label(record, sweep.summary, sweep.axes, sweep.inactive)
    return f"{label}: {ips(record['ips_geomean'])} {per_s(record)}{speed}{verdict}"


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
    # configs that differ only in axes inactive here (pin_memory on a CPU) are one config: the row that speaks
    # for it (Tables.claims) is cited, with its own figures, never a sibling's merged in
    cites: dict[str, list[str]] = {}
    for _, record in ran[sweep.claims.reindex(ran.index, fill_value=True)].iterrows():
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
        if reasons:
            cites[claim_label(record, sweep.axes, sweep.inactive)] = [f"({', '.join(reasons)})"]
    return [f"{label} {reasons[0]}" for label, reasons in cites.items()]


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
    ran = sweep.summary[sweep.summary["ips_geomean"].notna() & sweep.claims]
    cites: dict[str, str] = {}
    for _, record in ran.iterrows():
        had = budget(record)
        if had is None or max(had[1], had[2]) <= had[0]:
            continue
        line = processes_line(sweep, record, had) if had[1] > had[0] else threads_line(had)
        label = claim_label(record, sweep.axes, sweep.inactive)
        cites.setdefault(label, f"{label} ({line})")
    return list(cites.values())


def worker_room(sweep: Tables, record: pd.Series) -> int | None:
    """The most loader workers per rank whose processes fit the cores with the config's ranks, each rank one
    training process: cores // ranks - 1 (negative: the ranks alone need more cores); None when the cores
    are unknown."""
    return sweep.cores // _ranks(sweep, record) - 1 if sweep.cores else None


def _threads(count: int) -> str:
    return f"{count} intra-op thread{'s' * (count != 1)}"


def _budget_sentence(sweep: Tables, cites: list[str], focus: pd.Series) -> str:
    """The CPU budget in the fastest config's terms: its ranks, each a training process with its threads."""
    cores = _cores(sweep.cores) if sweep.cores else "the machine's cores"
    ranks, room = _ranks(sweep, focus), worker_room(sweep, focus)
    threads = f"its {_threads(sweep.threads)}" if sweep.threads else "its intra-op threads"
    trainers = "the training process" if ranks == 1 else f"{ranks} training processes (train.ranks={ranks})"
    each = "" if ranks == 1 else " each"
    if room is None:
        spare = ""
    elif room < 0:
        spare = f"train.ranks={ranks} alone needs more than {cores}, "
    else:
        per_rank = "" if ranks == 1 else " per rank"
        bound = "=0" if room == 0 else f" <= {room}"
        spare = f"num_workers{bound}{per_rank} with one training thread{each}, "
    return (
        f"CPU contention, not too few workers, limits this machine: {'; '.join(cites)}. The budget is {cores} "
        f"shared by num_workers worker processes{' per rank' * (ranks > 1)} and {trainers}{each} with {threads} "
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


def _broken_toward(sweep: Tables, focus: pd.Series, axis: str, wanted: Callable[[str], bool]) -> list[str]:
    """The configs that differ from the focus only in `axis`, at a level `wanted` accepts, and failed or
    diverged: the change they make cannot be advised on their evidence, nor swept past."""
    if axis not in sweep.axes:
        return []
    same = sweep.summary[sweep.summary[axis].map(wanted) & (sweep.summary[axis] != focus[axis])]
    for other in sweep.axes:
        if other != axis:
            same = same[same[other] == focus[other]]
    unsound = same[_broken(same) | same["ips_geomean"].isna()]
    return [config_label(r, sweep.axes) for _, r in unsound.iterrows()]


def most_workers(sweep: Tables, focus: pd.Series, contended: bool) -> int | None:
    """The most loader workers a next sweep may propose around the fastest config, the bound the advice's
    sentences state: no more than it ran where CPU contention limits the machine, where more workers were
    measured as no faster, or where more failed; never more than fit the cores with its ranks (worker_room);
    None: no bound known."""
    workers, room = _workers(sweep, focus), worker_room(sweep, focus)
    more = lambda level: _number(level) is not None and float(level) > workers  # noqa: E731
    if contended or _ruled_out(sweep, focus, NUM_WORKERS, more) or _broken_toward(sweep, focus, NUM_WORKERS, more):
        return workers if room is None else min(workers, room)
    return room


def _focus_advice(sweep: Tables, focus: pd.Series, contended: bool) -> list[str]:
    """What could lift the fastest config past its limit, each change checked against the sweep."""
    verdict = focus.get("verdict")
    workers = _workers(sweep, focus)
    candidates: list[tuple[str, str, Callable[[str], bool]]] = []  # (change, axis, levels it means)
    if verdict == "loader-bound":
        more = lambda level: _number(level) is not None and float(level) > workers  # noqa: E731
        candidates.append(("more loader.num_workers", NUM_WORKERS, more))
    for change, axis, target in verdict_changes(sweep, focus):
        candidates.append((change, axis, lambda level, target=target: level == target))
    sentences, open_changes = [], []
    room, ranks = worker_room(sweep, focus), _ranks(sweep, focus)
    for change, axis, wanted in candidates:
        cites = _ruled_out(sweep, focus, axis, wanted)
        broken = _broken_toward(sweep, focus, axis, wanted)
        if broken:
            sentences.append(
                f"Not {change} yet: {'; '.join(broken)} failed or diverged here (see the failed jobs); fix that "
                "before a sweep goes past it"
            )
        elif cites:
            sentences.append(f"Not {change}: the sweep measured it as no faster ({'; '.join(cites)})")
        elif axis == NUM_WORKERS and room is not None and workers + 1 > room:
            trainers = "the training process" if ranks == 1 else f"the {ranks} training processes"
            per_rank = "" if ranks == 1 else " per rank"
            sentences.append(
                f"Not {change}: {workers + 1} workers{per_rank} and {trainers} would exceed {_cores(sweep.cores)}"
            )
        elif axis == NUM_WORKERS and contended:
            sentences.append(f"Not {change}: CPU contention already limits this machine (below)")
        else:
            open_changes.append(change)
    if open_changes:
        together = " with ".join(open_changes) if verdict == "copy-bound" else " or ".join(open_changes)
        which = (
            "For the fastest config"
            if focus.name == getattr(sweep.fastest, "name", None)
            else ("For the fastest config whose jobs all ran cleanly")
        )
        which, cited = (
            ("For this config", cite_config(focus, sweep).split(": ", 1)[1])
            if not sweep.axes
            else (
                which,
                cite_config(focus, sweep),
            )
        )
        sentences.insert(0, f"{which} ({cited}), {together} could help: not yet measured here")
    return sentences


def recommend(sweep: Tables) -> Recommendation | None:
    """The config significantly faster than the baseline, among those that may be the fastest first."""
    summary = sweep.summary
    sound = sweep.sound  # never a config with a failed job or a diverged loss; one row per config (claims)
    better = sound[sound["significant"].eq(True) & sound["speedup"].gt(1) & ~_column(sound, "inactive").eq(True)]
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
        label=row_label(pick, summary, sweep.axes, sweep.inactive),
        overrides=tuple(f"{a}={pick[a]}" for a in active),
        dataloader=dataloader,
        speedup=f"{ratio(pick['speedup'])}{interval(pick['speedup_ci_low'], pick['speedup_ci_high'])}",
    )


def _broken(summary: pd.DataFrame) -> pd.Series:
    """Configs with a failed job or a diverged loss."""
    flags = pd.Series(False, index=summary.index)
    for column in ("n_failed", "n_loss_not_finite"):
        if column in summary:
            flags |= summary[column].fillna(0).astype(float).gt(0)
    return flags


def _rule_label(rule: dict[str, str], sweep: Tables) -> str:
    return ", ".join(f"{short_name(a, sweep.axes)}={level}" for a, level in rule.items())


def _defaults_hold(sweep: Tables) -> str:
    """Nothing beats the baseline significantly: say so, and what would have to change."""
    summary = sweep.summary
    base = summary[summary["baseline"].astype(bool)]
    if base.empty or summary["significant"].isna().all():
        return ""
    record = base.iloc[0]
    changes = []
    ahead = summary[summary["significant"].eq(False) & summary["speedup"].gt(1) & sweep.claims]
    ahead = ahead[_column(ahead, "repeats_needed").le(MAX_USEFUL_REPEATS)]
    if len(ahead):
        lead = ahead.sort_values("ips_geomean", ascending=False).iloc[0]
        changes.append(
            f"about {int(lead['repeats_needed'])} repeats showing "
            f"{row_label(lead, summary, sweep.axes, sweep.inactive)}'s "
            f"{ratio(lead['speedup'])}{interval(lead['speedup_ci_low'], lead['speedup_ci_high'])} is real"
        )
    if record.get("verdict") in ("compute-bound", "contended"):
        changes.append("a slower input pipeline per sample (heavier decoding; data.sample_delay_ms mimics one)")
    elif record.get("verdict") == "loader-bound":
        changes.append("cores to spare for loader workers")
    if sweep.accelerator is False:
        changes.append("an accelerator, where pin_memory and non_blocking can act")
    what = f"; that would change with {' or '.join(changes)}" if changes else ""
    label = row_label(record, summary, sweep.axes, sweep.inactive)
    origin, rule = baseline_origin(summary)
    # a config that beats it significantly but failed or diverged: no config to keep, yet said as what it is
    beat = summary["significant"].eq(True) & summary["speedup"].gt(1) & ~_column(summary, "inactive").eq(True)
    broken = summary[beat & _broken(summary) & sweep.claims]
    which = "no config" if broken.empty else "no config whose jobs all ran cleanly"
    if len(broken):
        cites = "; ".join(
            f"{row_label(r, summary, sweep.axes, sweep.inactive)} at "
            f"{ratio(r['speedup'])}{interval(r['speedup_ci_low'], r['speedup_ci_high'])}"
            for _, r in broken.iterrows()
        )
        what = f" ({cites} did, in jobs that failed or diverged){what}"
    if origin == "defaults":
        return f"The defaults are fine here: {which} beats the baseline ({label}) significantly{what}"
    why = {
        "lowest": "each swept setting at its default, else its lowest level",
        "chosen": f"chosen with --baseline, not the default one, {_rule_label(rule, sweep)}",
        "fallback": f"the first config that ran, since {_rule_label(rule, sweep)} did not",
    }.get(origin, "")
    return f"Keep the baseline ({label}{'; ' + why if why else ''}): {which} beats it significantly{what}"


# ---------------------------------------------------------------------------------------- next sweep
# A next sweep is a command a user pastes: it must compose as they composed theirs (their --config-dir, their
# experiment= and group choices, their own spelling of every override), change only the swept axes, and run
# only jobs that pass validation. Each grid is therefore checked job by job (`_runnable`) before it is printed.

SEARCH_EXPERIMENTS = ("autotune",)  # experiments that swap in another sweeper: a grid cannot repeat them


def _node_fields() -> tuple[str, ...]:
    """Settings that hold a node (a dict, or a node or a path: Any): a value below one (`data.train_kwargs.split`,
    `data.collate_fn._target_`) exists only once the node does, so it is set as the whole node."""
    return tuple(
        f"{group}.{f.name}"
        for group, schema in GROUP_SCHEMAS.items()
        for f in dataclass_fields(schema)
        if str(f.type).startswith(("Dict", "Any"))
    )


NODE_FIELDS = _node_fields()
HYDRA_PLAIN = re.compile(r"[\w./:+-]+")  # characters that may stand unquoted; Hydra's parser has the last word
NUMBER_TEXT = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def typed(text: str) -> object:
    """A level as spelt on the command line (`null`, `true`, `2`, `0.001`, `pil`, a JSON dict) as its value."""
    if text == "null":
        return None
    if text in ("true", "false"):
        return text == "true"
    if NUMBER_TEXT.fullmatch(text):
        return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
    if text.startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def hydra_value(value: object) -> str:
    """A value in Hydra's override grammar, read back as the same value: `{split:train,size:64}`, `[1,2]`,
    `null`, `true`, `2`, `0.001`, `pil`, `'a text'` (a dict is never Python's `{'split': 'train'}`)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{hydra_value(str(k))}:{hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if value is None or isinstance(value, (bool, int, float)):
        return _number_text(value) if isinstance(value, float) else norm(value)
    text = str(value)
    if _reads_back(text):
        return text
    # Hydra's quoted string: a quote escaped, and the backslashes right before a quote or the closing one doubled
    escaped = re.sub(r"(\\+)(?='|$)", lambda run: run.group(1) * 2, text).replace("'", "\\'")
    return f"'{escaped}'"


@lru_cache(maxsize=4096)
def _reads_back(text: str) -> bool:
    """Whether Hydra's override grammar reads `text`, unquoted, back as this very string."""
    from hydra.core.override_parser.overrides_parser import OverridesParser  # lazy: only to print a command

    if not HYDRA_PLAIN.fullmatch(text):
        return False
    try:
        parser = OverridesParser.create()
        alone = parser.parse_override(f"key={text}").value()
        inside = parser.parse_override(f"key={{k:{text}}}").value()  # a value inside a node
        return alone == text and inside == {"k": text}
    except Exception:  # the grammar refuses it unquoted
        return False


def _number_text(value: float) -> str:
    """`0.001`, `3.16e+13`, `2`: a float as a short literal, never 1e30 as its 31 integer digits."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _token(key: str, values: list[object]) -> str:
    """`key=a,b` (a sweep) or `key=a`, each value in Hydra's grammar, quoted for the shell where it must be."""
    return shlex.quote(f"{key}={','.join(hydra_value(v) for v in values)}")


def _node_of(column: str) -> str | None:
    return next((node for node in NODE_FIELDS if column == node or column.startswith(f"{node}.")), None)


def _node_value(ok: pd.DataFrame, node: str) -> object:
    """A node setting as the jobs ran it, rebuilt from its row columns (a `.kwargs` column is JSON)."""
    value: dict = {}
    for column in (c for c in ok.columns if c == node or c.startswith(f"{node}.")):
        cell = ok[column].iloc[0]
        item = typed(norm(cell)) if not isinstance(cell, str) or column.endswith(".kwargs") else typed(cell)
        if column == node:
            if not isinstance(item, dict):
                return item  # a path (data.collate_fn=pkg.collate) or null
            value.update(item)
            continue
        target = value
        *parents, leaf = column[len(node) + 1 :].split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = item
    return value


def _default_node(node: str) -> object:
    group, name = node.split(".", 1)
    default = OmegaConf.structured(GROUP_SCHEMAS[group])[name]
    return OmegaConf.to_container(default) if OmegaConf.is_config(default) else default


def job_overrides(rows: pd.DataFrame | None, exclude: set[str]) -> list[str]:
    """The overrides that make a new sweep run the same job, from what the rows hold (a sweep whose rows do
    not say how it was started, or a search): the model and data choices, then every fixed setting that
    differs from the schema's default (sizes, epochs, batch always), a node (data.train_kwargs, a
    data.collate_fn node) as one whole value."""
    if rows is None:
        return []
    ok, defaults, overrides, nodes = _ok(rows), schema_defaults(), [], []
    for group in ("model", "data"):
        names = ok[f"{group}.name"].dropna().map(norm).unique() if f"{group}.name" in ok else []
        overrides += [f"{group}={names[0]}"] if len(names) == 1 else []
    for column in ok.columns:
        group = column.split(".", 1)[0]
        if group not in CONFIG_GROUPS or column in exclude or column in REPLICATE_KEYS or column in NEVER_KEPT:
            continue
        if column in ("model.name", "data.name"):
            continue
        node = _node_of(column)
        if node is not None:
            if node not in nodes and not any(c in exclude for c in ok.columns if _node_of(c) == node):
                nodes.append(node)
            continue
        values = ok[column].map(norm).unique()
        if len(values) == 1 and (values[0] != defaults.get(column) or column in ALWAYS_KEPT):
            overrides.append(_token(column, [typed(values[0])]))
    for node in nodes:
        columns = [c for c in ok.columns if _node_of(c) == node]
        if any(ok[c].map(norm).nunique() > 1 for c in columns):
            continue  # it varies: an axis, set by the grid
        value = _node_value(ok, node)
        if value != _default_node(node):  # `++`: Hydra sets a node only so, whether or not the config has it
            overrides.append(_token(f"++{node}", [value]))
    return overrides


def _split_overrides(line: str) -> list[str]:
    """A job's overrides as the row records them (joined by spaces) back into one override each: a space
    inside quotes or brackets belongs to its override."""
    tokens, current, depth, quote = [], "", 0, ""
    for char in line:
        if quote:
            quote = "" if char == quote and not current.endswith("\\") else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char.isspace() and depth == 0:
            if current:
                tokens.append(current)
            current = ""
            continue
        current += char
    return [*tokens, current] if current else tokens


def _key(token: str) -> str:
    return token.split("=", 1)[0].lstrip("+~")


@dataclass
class _Typed:
    """The user's own command line, read from the rows' job.overrides: what every job shared, as typed
    (experiment=quick, +data.train_kwargs.size=64), and per swept key its prefix as typed (`+`, `++`)."""

    fixed: list[str]
    swept: dict[str, str]  # key -> the key as typed
    per_row: pd.Series  # each row's {key: token}


def typed_overrides(rows: pd.DataFrame | None) -> _Typed | None:
    """None where the rows do not record their overrides or record a search (SEARCH_EXPERIMENTS)."""
    if rows is None or "job.overrides" not in rows:
        return None
    lines = rows["job.overrides"].dropna().astype(str)
    if lines.empty:
        return None
    per_row = lines.map(lambda line: {_key(t): t for t in _split_overrides(line)})
    keys = list(dict.fromkeys(key for tokens in per_row for key in tokens))
    fixed, swept = [], {}
    for key in keys:
        tokens = {tokens.get(key) for tokens in per_row}
        if len(tokens) == 1:
            fixed.append(next(iter(tokens)))
        else:  # as typed, `+` and all: the first job that set it
            swept[key] = next(t for t in tokens if t is not None).split("=", 1)[0]
    if any(t.startswith("experiment=") and t.split("=", 1)[1] in SEARCH_EXPERIMENTS for t in fixed):
        return None
    return _Typed(fixed, swept, per_row)


def _rows_of(sweep: Tables, record: pd.Series) -> pd.DataFrame:
    rows = sweep.rows
    if rows is None:
        return pd.DataFrame()
    match = pd.Series(True, index=rows.index)
    for axis in sweep.axes:
        match &= rows[axis].map(norm) == record[axis] if axis in rows else False
    return rows[match]


# ---------------------------------------------------------------------------------------- checking a grid


@lru_cache(maxsize=1)
def _schema() -> object:
    return OmegaConf.structured(Config)


def _config_of(row: pd.Series) -> object | None:
    """The config a row's job ran, rebuilt from its columns on the schema (None: the row is of another
    schema, and no job of it can be checked here)."""
    columns = tuple((str(c), norm(v)) for c, v in row.items() if str(c).split(".", 1)[0] in CONFIG_GROUPS)
    return _built(columns)


@lru_cache(maxsize=64)
def _built(columns: tuple[tuple[str, str], ...]) -> object | None:
    row = pd.Series(dict(columns), dtype=object)
    nested: dict = {}
    for column, cell in row.items():
        group = str(column).split(".", 1)[0]
        if group not in CONFIG_GROUPS or _node_of(str(column)) is not None:
            continue
        target = nested
        *parents, leaf = str(column).split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = typed(cell)
    for node in NODE_FIELDS:  # nodes whole, from their columns
        group, name = node.split(".", 1)
        if any(c == node or str(c).startswith(f"{node}.") for c in row.index):
            nested.setdefault(group, {})[name] = _node_value(pd.DataFrame([row]), node)
    try:
        return OmegaConf.merge(_schema(), nested)
    except Exception:  # a column of an older schema, a value of another type
        return None


def _runnable(config: object, levels: dict[str, str], cores: int | None) -> bool:
    """Whether the job with these levels passes validate() and fits the CPU budget (ranks x (1 + workers)
    processes within the cores). `config` is changed for the check and given its values back."""
    before = {key: OmegaConf.select(config, key, default=_ABSENT) for key in levels}
    try:
        for key, level in levels.items():
            OmegaConf.update(config, key, typed(level), force_add=True)
        validate(config)
        fits = not cores or config.train.ranks * (1 + config.loader.num_workers) <= cores
    except Exception:  # a ConfigError, or a value the schema's type refuses
        fits = False
    finally:
        for key, value in before.items():
            if value is _ABSENT:
                parent, _, leaf = key.rpartition(".")
                node = OmegaConf.select(config, parent) if parent else config
                if node is not None and leaf in node:
                    del node[leaf]
            else:
                OmegaConf.update(config, key, value, force_add=True)
    return fits


_ABSENT = object()


def _checked(
    sweep: Tables, grid: dict[str, list[str]], base: pd.Series, keep: dict[str, str], budget: bool = True
) -> dict | None:
    """The grid without the levels that make jobs invalid or over the CPU budget, the levels in `keep` (the
    config the grid is built around) never removed: the level in the most bad jobs goes first. None when
    no such grid runs."""
    rows = _rows_of(sweep, base)
    config = _config_of(rows.iloc[0]) if len(rows) else None
    if config is None or not _runnable(config, dict(keep), None):
        return grid  # the job as its row holds it does not check here (a row of hand-made or older columns)
    # the budget binds a grid whose own config fits it (one over it already is its own bound)
    allowed = budget and _runnable(config, dict(keep), sweep.cores)
    grid = {axis: list(levels) for axis, levels in grid.items()}
    judged: dict[frozenset, bool] = {}
    while True:
        jobs = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
        for job in jobs:
            if frozenset(job.items()) not in judged:
                judged[frozenset(job.items())] = _runnable(config, job, sweep.cores if allowed else None)
        bad = [job for job in jobs if not judged[frozenset(job.items())]]
        if not bad:
            return grid
        counts = Counter(
            (axis, level)
            for job in bad
            for axis, level in job.items()
            if level != keep.get(axis) and len(grid[axis]) > 1
        )
        if not counts:
            return None
        (axis, level), _ = counts.most_common(1)[0]
        grid[axis].remove(level)


# ---------------------------------------------------------------------------------------- levels


def _between(low: float, high: float, whole: bool) -> float | None:
    """A level between two measured ones: geometric for spans of 4x and more (batch sizes, rates), else
    halfway; a whole number on an axis of whole numbers (`whole`); None when there is none between them."""
    middle = math.sqrt(low * high) if low > 0 and high / low >= 4 else (low + high) / 2
    middle = float(round(middle)) if whole else middle
    return middle if low < middle < high else None


def _spelt(value: float, levels: list[str]) -> str:
    """A new level as the axis's levels are spelt: whole numbers for an integer axis, else a short float."""
    if all(re.fullmatch(r"-?\d+", level) for level in levels):
        return str(round(value))
    return _number_text(float(value))


def _around(levels: list[str], best: str, cap: int | None, blocked: set[str] = frozenset()) -> list[str]:
    """Numeric levels between the best one and its measured neighbours, and beyond it where it is an end;
    nothing toward a neighbour in `blocked` (a level whose config failed or diverged next to the best)."""
    values = sorted({float(level) for level in levels})
    by_value = {float(level): level for level in levels}
    whole = all(re.fullmatch(r"-?\d+", level) for level in levels)
    at, middle = values.index(float(best)), float(best)
    new: set[float] = {middle}
    if at > 0:
        if by_value[values[at - 1]] not in blocked:
            new.add(_between(values[at - 1], middle, whole))
    elif middle >= 1:
        new.add(middle // 2)
    if at < len(values) - 1:
        if by_value[values[at + 1]] not in blocked:
            new.add(_between(middle, values[at + 1], whole))
    else:
        new.add(middle * 2 if middle else 1)
    kept = sorted(v for v in new if v is not None and (cap is None or v <= cap or v == middle))
    return list(dict.fromkeys(best if v == middle else _spelt(v, levels) for v in kept))


def _unsound_next_to(sweep: Tables, focus: pd.Series, axis: str) -> set[str]:
    """Levels of `axis` whose config, the focus's elsewhere, failed, diverged or never ran."""
    same = sweep.summary
    for other in sweep.axes:
        if other != axis:
            same = same[same[other] == focus[other]]
    return {str(level) for level in same.loc[_broken(same) | same["ips_geomean"].isna(), axis]}


def _repeats(count: int, auto: bool = False) -> str:
    """The rounds of a next sweep: as many fixed rounds, or (after a rounds=auto sweep) at most as many."""
    if auto:
        return f"hydra.sweeper.rounds=auto hydra.sweeper.max_rounds={max(count, 2)}"
    return f"train.repeat={','.join(str(r) for r in range(count))}"


def _command(sweep: Tables, grid: dict[str, list[str]], repeats: int, around: pd.Series) -> str:
    """The next sweep as one command line: the user's own command (config folders, their overrides as typed,
    else what the rows hold), the swept axes at the grid's levels, every other axis the sweep varied at the
    level of `around` (the config the grid is built around)."""
    auto = getattr(sweep, "stopping", None) is not None  # a rounds=auto sweep: the next one looks too
    folders = [part for folder in getattr(sweep, "config_dirs", ()) for part in ("--config-dir", shlex.quote(folder))]
    head = ["python", "-m", "pinsweep", *folders, "-m", _repeats(repeats, auto)]
    user = typed_overrides(sweep.rows)
    if user is None:
        fixed = job_overrides(sweep.rows, set(grid))
        swept = [_token(_spelling(axis, sweep), [typed(v) for v in levels]) for axis, levels in grid.items()]
        return " ".join([*head, *fixed, *swept])
    own_tokens = _tokens_of(sweep, around)
    base = baseline_record(sweep.summary)
    base_tokens = _tokens_of(sweep, base) if base is not None else {}
    defaults = schema_defaults()
    for axis in sweep.inactive:  # a setting that cannot act here: at the baseline's level, the cheaper one,
        # left out where that is the default and nothing but the command line swept it
        at_default = base is not None and base[axis] == defaults.get(axis)
        if at_default and axis not in getattr(sweep, "swept_by_config", ()):
            own_tokens.pop(axis, None)
        elif axis in base_tokens:
            own_tokens[axis] = base_tokens[axis]
    words, done = [], set()
    for token in user.fixed:
        key = _key(token)
        if key in grid:
            words.append(_token(token.split("=", 1)[0], [typed(v) for v in grid[key]]))
            done.add(key)
        elif key not in REPLICATE_KEYS:
            words.append(shlex.quote(token))
    for key, spelt in user.swept.items():
        if key in REPLICATE_KEYS:
            continue
        if key in grid:
            words.append(_token(spelt, [typed(v) for v in grid[key]]))
            done.add(key)
        elif key in own_tokens:  # a swept key the grid does not change: the level of the config it is around
            words.append(shlex.quote(own_tokens[key]))
    words += [_token(_spelling(axis, sweep), [typed(v) for v in grid[axis]]) for axis in grid if axis not in done]
    return " ".join([*head, *words])


def _tokens_of(sweep: Tables, record: pd.Series) -> dict[str, str]:
    """A config's overrides as its first job recorded them (job.overrides), by key."""
    mine = _rows_of(sweep, record)
    own = mine["job.overrides"].dropna().astype(str) if "job.overrides" in mine else pd.Series(dtype=str)
    return {_key(t): t for t in _split_overrides(own.iloc[0])} if len(own) else {}


def _spelling(axis: str, sweep: Tables) -> str:
    """How to set an axis on the command line: a node or a key below one (data.train_kwargs.size) as `++key`,
    which adds it or sets it."""
    return axis if _node_of(axis) is None else f"++{axis}"


def next_sweeps(sweep: Tables, focus: pd.Series | None, cap: int | None) -> list[NextSweep]:
    """At most two commands: one that settles the differences this sweep left open (more repeats), one
    that explores around the fastest sound config (levels between and beyond it, an axis its verdict points
    at), never toward a config that failed or diverged, never past `cap` workers (the advice's own bound)."""
    active = [a for a in sweep.axes if a not in sweep.inactive]
    summary, effects = sweep.summary, sweep.effects
    sound = sweep.sound
    # levels some sound config ran at: a level that only failed or diverged is not run again
    levels = {a: sorted(sound[a].unique(), key=level_key) for a in active}
    done = int(summary["n"].max()) if len(summary) else 0
    commands = []
    base = baseline_record(summary)
    overall = effects[effects["held_fixed"] == OVERALL] if not effects.empty else effects
    open_rows = overall[
        overall["axis"].isin(active)
        & (effect_kinds(overall) == Effect.NOT_SIGNIFICANT)
        & _column(overall, "repeats_needed").le(MAX_USEFUL_REPEATS)
    ]
    open_rows = open_rows[
        [r["level"] in levels[r["axis"]] and r["reference"] in levels[r["axis"]] for _, r in open_rows.iterrows()]
    ]
    around = base if base is not None and base.name in sound.index else (focus if focus is not None else None)
    if len(open_rows) and around is not None:
        needed = max(int(open_rows["repeats_needed"].max()), done + 1, DEFAULT_REPEATS)
        what = "; ".join(cite_effect(e, sweep.axes) for _, e in open_rows.iterrows())
        # the levels this sweep ran, again: checked for validity, not against the budget they already ran on
        grid = _checked(sweep, {a: levels[a] for a in active}, around, {a: around[a] for a in active}, budget=False)
        if grid is not None and any(len(v) > 1 for v in grid.values()):
            why = f"settle what this sweep left open ({what})"
            commands.append(NextSweep(_command(sweep, grid, needed, around), why))
    if focus is None:
        return commands
    grid, reasons = {}, []
    for axis in active:
        measured = sorted(summary[axis].unique(), key=level_key)
        numeric = all(_number(level) is not None for level in measured)
        if numeric:
            blocked = _unsound_next_to(sweep, focus, axis)
            new = _around(measured, focus[axis], cap if axis == NUM_WORKERS else None, blocked)
        else:
            new = [focus[axis]]
        if axis in (RANKS, THREADS, WORKER_THREADS):  # at least one rank, one thread (null: torch's default)
            new = [level for level in new if _number(level) is None or _number(level) >= 1] or [focus[axis]]
        if axis == RANKS and sweep.accelerator is False and sweep.cores:  # on a CPU, a core per rank at most
            new = [level for level in new if _number(level) <= sweep.cores] or [focus[axis]]
        grid[axis] = new
    for _, axis, level in _pointed_at(sweep, focus):
        grid[axis] = sorted({sweep.setting(focus, axis) or schema_defaults()[axis], level}, key=level_key)
    checked = _checked(sweep, grid, focus, {a: focus[a] for a in active})
    if checked is None:
        return commands
    for axis in active:
        measured = set(summary[axis].unique())
        if set(checked[axis]) - measured:
            budget = f", within the {sweep.cores}-core budget" if cap is not None and axis == NUM_WORKERS else ""
            reasons.append(f"{short_name(axis, sweep.axes)} {','.join(checked[axis])} around the fastest{budget}")
    for change, axis, level in _pointed_at(sweep, focus):
        if level in checked.get(axis, []):
            reasons.append(f"{change}, which its verdict points at")
    if reasons:
        why = "explore " + "; ".join(reasons)
        commands.append(NextSweep(_command(sweep, checked, max(done, DEFAULT_REPEATS), focus), why))
    return commands


def _pointed_at(sweep: Tables, focus: pd.Series) -> list[tuple[str, str, str]]:
    """Unswept settings the fastest config's verdict points at: the next sweep adds them as axes."""
    return [change for change in verdict_changes(sweep, focus) if change[1] not in sweep.axes]


def advise(sweep: Tables) -> Advice:
    """Advice, recommendation and next sweep for a summarized sweep; see the module docstring."""
    if sweep.fastest is None:
        return Advice()
    sound = sweep.sound
    # the config advice builds on: the fastest whose jobs all ran cleanly (a diverged run's speed is a broken run's)
    focus = sound.loc[sound["ips_geomean"].astype(float).idxmax()] if len(sound) else None
    cites = contention(sweep)
    if focus is None:
        return Advice(
            sentences=[
                "No advice: every config that ran had a failed job or a diverged loss, and none of it is a config "
                "to build on"
            ]
        )
    advice = Advice(sentences=_focus_advice(sweep, focus, bool(cites)))
    if cites:
        advice.sentences.append(_budget_sentence(sweep, cites, focus))
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
    cap = most_workers(sweep, focus, bool(cites))
    advice.commands = next_sweeps(sweep, focus if sweep.axes else None, cap)
    return advice
