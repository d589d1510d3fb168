"""Auto-tune's confirmation: the search's best few configs and the defaults, re-run and compared fairly.

    python -m pinsweep -m experiment=autotune     # search, then confirm; read <sweep>/autotune.yaml

Optuna measures every trial once, on a machine whose speed drifts, and declares the highest single
measurement the best: the winner's curse. The best of N noisy values is biased upwards, so the pick
may be a lucky draw and its value is too high. After the search, hydra/sweeper=autotune
(hydra_plugins/pinsweep_sweeper/autotune.py) launches a second, ordinary sweep into `<sweep>/confirm/`:
the `top` best distinct trial configs plus the baseline (the searched keys at their configured values,
the config a user gets without tuning), `repeats` interleaved rounds of `train.repeat` (pinsweep.sweep.order).
This module plans that sweep and reads it back with the same statistics as any grid sweep
(pinsweep.analysis.summarize): the confirmed pick is the fastest config that beats the baseline significantly
(simultaneous 95% intervals), else the defaults hold. The outcome lands in `<sweep>/autotune.yaml`
beside Optuna's own `optimization_results.yaml`, which stays as Optuna wrote it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pinsweep.analysis.summarize import SummaryError, find_axes, summarize
from pinsweep.outputs import replacing
from pinsweep.present.wording import ips, ratio_interval
from pinsweep.record import with_throughput
from pinsweep.spelling import norm
from pinsweep.sweep.order import REPEAT_KEY, pinsweep_order

CONFIRM_DIR = "confirm"  # the confirmation sweep's folder, inside the search's
OUTCOME_FILE = "autotune.yaml"  # pinsweep's result of the whole auto-tune, beside optimization_results.yaml

Settings = dict[str, str]  # searched key -> value as typed on the command line (norm): one config


# --------------------------------------------------------------------------------------- the plan


@dataclass
class Trial:
    """One search trial as the sweeper launched it, with the throughput it returned in the sweep's unit
    (images/s, tokens/s, ...; the name is older than the unit) (nan: it failed)."""

    overrides: list[str]
    images_per_s: float


def split_override(override: str) -> tuple[str, str]:
    """`loader.pin_memory=True` -> (`loader.pin_memory`, `true`): one spelling per value (Optuna writes True)."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), norm(yaml.safe_load(value) if value else None)


def settings_of(overrides: list[str], searched: list[str], configured: Settings) -> Settings:
    """The searched keys of one trial: drawn by the search, or (not drawn, e.g. prefetch_factor with
    num_workers=0) the configured value that the job then ran with."""
    drawn = dict(split_override(o) for o in overrides)
    return {key: drawn.get(key, configured[key]) for key in searched}


def searched_keys(trials: list[Trial], fixed: list[str]) -> list[str]:
    """Keys a trial set that the command line did not fix: those Optuna drew, in first-seen order."""
    fixed_keys = {split_override(o)[0] for o in fixed}
    keys = [split_override(o)[0] for trial in trials for o in trial.overrides]
    return [key for key in dict.fromkeys(keys) if key not in fixed_keys]


@dataclass
class Plan:
    searched: list[str]
    baseline: Settings
    candidates: list[Settings]  # best first, distinct, the baseline never among them
    jobs: list[list[str]]  # the confirmation sweep's job overrides, in run order


def plan(trials: list[Trial], fixed: list[str], configured: Settings, top: int, repeats: int, seed: int = 0) -> Plan:
    """The `top` best distinct finished trial configs and the baseline, each once per round of
    `repeats` rounds, configs shuffled within a round (the order a grid sweep runs in)."""
    searched = searched_keys(trials, fixed)
    baseline = {key: configured[key] for key in searched}
    finished = sorted((t for t in trials if math.isfinite(t.images_per_s)), key=lambda t: -t.images_per_s)
    candidates: list[Settings] = []
    for trial in finished:
        config = settings_of(trial.overrides, searched, configured)
        if config != baseline and config not in candidates and len(candidates) < top:
            candidates.append(config)
    configs = [{}, *candidates]  # the baseline sets no searched key: exactly what an untuned job runs
    jobs = [
        [*fixed, *(f"{key}={value}" for key, value in config.items()), f"{REPEAT_KEY}={r}"]
        for r in range(repeats)
        for config in configs
    ]
    return Plan(searched, baseline, candidates, pinsweep_order(jobs, seed=seed))


# ------------------------------------------------------------------------------------ the outcome


@dataclass
class Outcome:
    """What the auto-tune found: the search's pick, the confirmed pick, and the evidence. The `*images_per_s`
    fields hold throughput in `unit` (tokens/s, ...): their names are autotune.yaml's, older than the unit."""

    search_pick: Settings
    search_images_per_s: float  # the pick's single measurement in the search
    baseline: Settings
    candidates: list[Settings]
    repeats: int
    confirmed_pick: Settings  # the baseline when defaults hold
    defaults_hold: bool  # no candidate beat the baseline significantly
    agree: bool  # the confirmed pick is the search's pick
    # the confirmed pick's speedup over the baseline, else the fastest candidate's: ratio, 95% interval
    speedup: float = math.nan
    speedup_ci_low: float = math.nan
    speedup_ci_high: float = math.nan
    speedup_p: float = math.nan
    images_per_s: float = math.nan  # geometric mean over the rounds
    confirmed_in_search: float = math.nan  # the search pick's images/s in the confirmation
    failed_jobs: int = 0
    note: str = ""
    compared: Settings = field(default_factory=dict)  # the config the speedup is of
    unit: str = "images"  # what the throughput counts (train.unit); images in autotune.yaml files from before


def _row_of(summary: pd.DataFrame, config: Settings, axes: list[str]) -> pd.Series | None:
    match = np.logical_and.reduce([summary[a] == config[a] for a in axes]) if axes else np.ones(len(summary), bool)
    found = summary[match & summary["n"].gt(0)]
    return found.iloc[0] if len(found) else None


def baseline_text(rows: pd.DataFrame, plan_: Plan) -> str:
    """The baseline as `summarize --baseline` takes it: its values of the axes the rows vary in."""
    return ",".join(f"{a}={plan_.baseline[a]}" for a in find_axes(rows) if a in plan_.baseline)


def judge(
    rows: pd.DataFrame, plan_: Plan, search_pick: Settings, search_value: float, summary: pd.DataFrame | None = None
) -> Outcome:
    """Decide the confirmed pick from the confirmation's summary against the baseline: `summary`, when the
    caller summarized the rows already (the sweeper, which writes and reports it), else summarized here."""
    outcome = Outcome(
        search_pick=search_pick,
        search_images_per_s=search_value,
        baseline=plan_.baseline,
        candidates=plan_.candidates,
        repeats=int(rows[REPEAT_KEY].nunique()) if REPEAT_KEY in rows else 0,
        confirmed_pick=plan_.baseline,
        defaults_hold=True,
        agree=search_pick == plan_.baseline,
        failed_jobs=int((rows["status"] != "ok").sum()) if "status" in rows else len(rows),
        unit=str(with_throughput(rows)["unit"].iloc[0]) if len(rows) else "images",
    )
    axes = [a for a in find_axes(rows) if a in plan_.baseline]
    try:
        if summary is None:
            summary, _ = summarize(rows, baseline_text(rows, plan_))
    except SummaryError as error:  # the baseline failed in every round: nothing to compare against
        outcome.note = f"no confirmation: {error}"
        return outcome
    ranked = [(c, _row_of(summary, c, axes)) for c in plan_.candidates]
    ranked = [(c, r) for c, r in ranked if r is not None and not math.isnan(r["speedup"])]
    ranked.sort(key=lambda cr: -cr[1]["ips_geomean"])
    winners = [(c, r) for c, r in ranked if bool(r["significant"]) and r["speedup"] > 1]
    if not ranked:  # no candidate finished a round: nothing to compare, and no figure of another config to quote
        outcome.note = "no candidate finished a round of the confirmation" if plan_.candidates else ""
        pick = _row_of(summary, search_pick, axes)
        outcome.confirmed_in_search = float(pick["ips_geomean"]) if pick is not None else math.nan
        outcome.agree = outcome.confirmed_pick == search_pick
        return outcome
    compared, record = (winners or ranked)[0]
    if winners:
        outcome.confirmed_pick, outcome.defaults_hold = compared, False
    outcome.compared = compared
    if record is not None:
        outcome.speedup, outcome.speedup_p = float(record["speedup"]), float(record.get("speedup_p", math.nan))
        outcome.speedup_ci_low, outcome.speedup_ci_high = (
            float(record["speedup_ci_low"]),
            float(record["speedup_ci_high"]),
        )
        outcome.images_per_s = float(record["ips_geomean"])
    pick = _row_of(summary, search_pick, axes)
    outcome.confirmed_in_search = float(pick["ips_geomean"]) if pick is not None else math.nan
    outcome.agree = outcome.confirmed_pick == search_pick
    return outcome


def write_outcome(sweep_dir: str | Path, outcome: Outcome) -> Path:
    path = Path(sweep_dir) / OUTCOME_FILE
    data = {key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in asdict(outcome).items()}
    with replacing(path) as temporary:  # whole or not at all, with the user's umask
        temporary.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def read_outcome(sweep_dir: str | Path) -> Outcome | None:
    """The auto-tune outcome in a sweep folder, None for any other sweep."""
    path = Path(sweep_dir) / OUTCOME_FILE
    if not path.is_file():
        return None
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Outcome(**{key: (math.nan if value is None else value) for key, value in data.items()})


# ------------------------------------------------------------------------------------- in words


def _label(config: Settings) -> str:
    return ", ".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in config.items()) or "the defaults"


def sentences(outcome: Outcome) -> list[str]:
    """The auto-tune's result in plain words, for the report and the terminal."""
    rate = f"{outcome.unit}/s"  # images/s, tokens/s, ...
    found = "" if math.isnan(outcome.search_images_per_s) else f" at {ips(outcome.search_images_per_s)} {rate}"
    count = len(outcome.candidates)
    which = (
        "the defaults alone (the search found no other config that finished)"
        if not count
        else f"the {'best config' if count == 1 else f'{count} best distinct configs'} and the defaults"
    )
    said = [
        f"Search pick (Optuna, one measurement per trial): {_label(outcome.search_pick)}{found}.",
        f"Confirmation ({CONFIRM_DIR}/): {which} ({_label(outcome.baseline)}), {outcome.repeats} interleaved "
        f"round{'s' * (outcome.repeats != 1)} each.",
    ]
    speedup = ratio_interval(outcome.speedup, outcome.speedup_ci_low, outcome.speedup_ci_high)
    if outcome.note:
        said.append(f"{outcome.note[0].upper()}{outcome.note[1:]}; keep the defaults.")
    elif outcome.defaults_hold:
        best = f" (the fastest candidate, {_label(outcome.compared)}: {speedup})" if outcome.compared else ""
        said.append(f"Defaults hold: no candidate is significantly faster than the defaults{best}; keep them.")
    else:
        said.append(
            f"Confirmed pick: {_label(outcome.confirmed_pick)} at {ips(outcome.images_per_s)} {rate}, "
            f"{speedup} the defaults' (significant, 95% simultaneous interval)."
        )
    if outcome.agree:
        said.append("The search pick and the confirmed pick agree.")
    else:
        repeated = (
            "did not finish a round of the confirmation"
            if math.isnan(outcome.confirmed_in_search)
            else f"ran at {ips(outcome.confirmed_in_search)} {rate} over the rounds"
        )
        drawn = outcome.search_images_per_s
        draw = "" if math.isnan(drawn) else f", one draw of {ips(drawn)} {rate} in the search"
        said.append(f"They differ: the search pick{draw}, {repeated}.")
    if outcome.failed_jobs:
        said.append(f"{outcome.failed_jobs} confirmation job(s) failed: see {CONFIRM_DIR}/summary.csv.")
    return said
