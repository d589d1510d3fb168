"""`hydra.sweeper.rounds=auto`: a sweep that runs one round at a time and stops once its answer is known.

    python -m pinsweep -m loader.num_workers=0,2 loader.pin_memory=true,false hydra.sweeper.rounds=auto

The pinsweep sweeper (hydra_plugins/pinsweep_sweeper/) hands its sweep here. The jobs are exactly those
of the fixed sweep `train.repeat=0,...,max_rounds-1` with the same seed, in the same order and under the
same job numbers: round r is jobs r*C ... r*C+C-1 (C configs), every config once, shuffled as
pinsweep.sweep.order shuffles them. After each round the sweeper reads the rows, refits the block
design with the sequential boundaries (pinsweep/analysis/sequential.py), and stops when every
comparison is resolved (a difference, equivalent within the margin, or settled for the choice), at
max_rounds, or before a round that would end past the wall-time budget. min_rounds always run.
The decision after each look goes to <sweep>/rounds.json (sequential.Stopping), which the summary
reads back to draw its intervals at that look's boundary and the report quotes.

Everything that works for a fixed sweep works here, because nothing else changes: each job's folder,
row and overrides are the fixed sweep's, the folder lock and Ctrl-C are the callbacks', and
`python -m pinsweep.resume` re-runs the same command: the finished jobs are skipped, the looks are
made again from the same rows (so the same rounds are decided the same way), and the sweep goes on
where it stopped. The budget's clock is the rounds' own wall time, each round counted at what it took
when it ran (kept in rounds.json), so a resumed sweep spends what is left of its budget, not all of it again.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import OmegaConf

from pinsweep.analysis import sequential
from pinsweep.analysis.summarize import SummaryError, open_comparisons, summarize
from pinsweep.record import read_rows
from pinsweep.sweep.order import REPEAT_KEY, override_key, pinsweep_order

SWEEP_CONFIG = "multirun.yaml"


class RoundsError(ValueError):
    """A rounds=auto sweep that cannot run as asked; the message says what to change."""


def round_jobs(
    overrides: list[Override], max_rounds: int, seed: int = 0, shuffle: bool = True
) -> list[list[list[str]]]:
    """The jobs of each round, in run order: the fixed sweep of train.repeat=0..max_rounds-1, cut
    into rounds. The order of a round depends only on the seed and the rounds before it, so a later
    max_rounds keeps every earlier job at its number."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    typed = [o for o in overrides if override_key(o.get_key_element()) == REPEAT_KEY]
    if typed:
        raise RoundsError(
            f"hydra.sweeper.rounds=auto runs {REPEAT_KEY} itself (0, 1, ... up to hydra.sweeper.max_rounds): "
            f"drop {typed[0].input_line or REPEAT_KEY} from the sweep, or set hydra.sweeper.rounds=fixed"
        )
    repeat = OverridesParser.create().parse_overrides([f"{REPEAT_KEY}={','.join(map(str, range(max_rounds)))}"])
    (product,) = BasicSweeper.split_arguments([*overrides, *repeat], None)
    ordered = pinsweep_order(product, seed=seed, shuffle=shuffle)
    configs = len(ordered) // max_rounds
    return [ordered[r * configs : (r + 1) * configs] for r in range(max_rounds)]


def plan_of(min_rounds: int, max_rounds: int, margin: float, budget_s: float | None) -> sequential.Plan:
    try:
        plan = sequential.Plan(min_rounds=int(min_rounds), max_rounds=int(max_rounds), margin=float(margin)).check()
    except ValueError as error:
        raise RoundsError(f"hydra.sweeper.{error}") from None
    if budget_s is not None and budget_s <= 0:
        raise RoundsError(f"hydra.sweeper.budget_s={budget_s}: a number of seconds > 0, or null for no budget")
    return plan


def look(sweep_dir: Path, jobs: int, stopping: sequential.Stopping, baseline: str = "") -> tuple[list[str], int]:
    """The comparisons still open after the rounds run so far (the rows of jobs 0..jobs-1), against
    `baseline` (`summarize --baseline`; the schema's defaults when empty), and how many configs have no
    successful job yet: more rounds of a config that fails every time settle nothing, so those do not
    keep the sweep going, but the reason names them."""
    rows = read_rows(sweep_dir)
    if "job.num" in rows:
        rows = rows[rows["job.num"].astype(float) < jobs]
    try:
        summary, effects = summarize(rows, baseline, stopping)
    except SummaryError as error:
        return [f"no comparison yet: {error}"], 0
    return open_comparisons(summary, effects), int(summary["n"].eq(0).sum())


def run_rounds(sweeper: Any, arguments: list[str]) -> list:
    """The sweep of a PinsweepSweeper whose rounds=auto: launch, look, decide, one round at a time."""
    config = sweeper.config
    plan = plan_of(sweeper.min_rounds, sweeper.max_rounds, sweeper.margin, sweeper.budget_s)
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides([*sweeper._parse_config(), *arguments])
    rounds = round_jobs(overrides, plan.max_rounds, sweeper.seed, sweeper.shuffle)

    sweep_dir = Path(config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / SWEEP_CONFIG)  # what Hydra's basic sweeper saves, for resume

    def launch(batch: list[list[str]], job: int) -> list:
        returns = []
        for chunk in _chunks(batch, sweeper.max_batch_size):
            sweeper.validate_batch_is_legal(chunk)
            results = sweeper.launcher.launch(chunk, initial_job_idx=job)
            for result in results:
                _ = result.return_value  # as Hydra's basic sweeper: a job that raised raises here
            job += len(chunk)
            returns.append(results)
        return returns

    return launch_in_rounds(launch, rounds, sweep_dir, plan, sweeper.budget_s)[0]


def launch_in_rounds(
    launch: Callable[[list[list[str]], int], list],
    rounds: list[list[list[str]]],
    sweep_dir: Path,
    plan: sequential.Plan,
    budget_s: float | None = None,
    baseline: Callable[[], str] = str,
) -> tuple[list, sequential.Stopping]:
    """Launch the rounds one at a time (`launch(jobs, first job number)`), look after each, stop as
    decided; returns what the launches returned and the stopping record, written to sweep_dir.
    Also auto-tune's confirmation (pinsweep/autotune/sweeper.py), with its own `baseline()`."""
    earlier = sequential.read_stopping(sweep_dir)  # a resumed sweep: what its rounds took when they ran
    took_before = {entry["round"]: entry["seconds"] for entry in earlier.history} if earlier else {}
    stopping = sequential.Stopping(plan=asdict(plan), budget_s=budget_s)
    returns, job = [], 0
    for number, batch in enumerate(rounds):
        started = time.perf_counter()
        returns += launch(batch, job)
        job += len(batch)
        seconds = max(time.perf_counter() - started, took_before.get(number, 0.0))
        stopping.rounds, stopping.seconds = number + 1, stopping.seconds + seconds
        decide(stopping, plan, seconds, sweep_dir, job, baseline() if number + 1 >= plan.min_rounds else "")
        stopping.write(sweep_dir)
        # printed, not logged: Hydra re-configures logging for every job, which leaves the sweep's own
        # loggers silent afterwards; a line per look on stderr, beside the jobs' lines
        going_on = "" if stopping.stopped or number + 1 == len(rounds) else f"; round {number + 2} next"
        print(f"pinsweep: rounds=auto: {stopping.reason}{going_on}", file=sys.stderr, flush=True)
        if stopping.stopped:
            break
    return returns, stopping


def decide(
    stopping: sequential.Stopping,
    plan: sequential.Plan,
    last_round_s: float,
    sweep_dir: Path,
    jobs: int,
    baseline: str = "",
) -> None:
    """Look at the rounds run so far and set the stopping record: go on, or stop and why."""
    done = stopping.rounds
    if done < plan.min_rounds:
        stopping.reason = f"{done} of at least {plan.min_rounds} rounds run"
        stopping.history.append({"round": done - 1, "seconds": round(last_round_s, 3), "open": None})
        return
    at_limit = done >= plan.max_rounds
    over_budget = stopping.budget_s is not None and stopping.seconds + last_round_s > stopping.budget_s
    stopping.final = at_limit or over_budget  # decided before looking: the last look spends all that is left
    still_open, never_ran = look(sweep_dir, jobs, stopping, baseline)
    stopping.open = still_open
    stopping.history.append({"round": done - 1, "seconds": round(last_round_s, 3), "open": len(still_open)})
    if not still_open:
        stopping.state, stopping.reason = "resolved", f"every comparison resolved after {done} rounds"
    elif at_limit:
        stopping.state = "limit"
        stopping.reason = f"max_rounds={plan.max_rounds} reached with {len(still_open)} comparison(s) still open"
    elif over_budget:
        stopping.state = "budget"
        stopping.reason = (
            f"budget_s={stopping.budget_s:g} reached after {done} rounds ({stopping.seconds:.0f} s; another round "
            f"would take ~{last_round_s:.0f} s) with {len(still_open)} comparison(s) still open"
        )
    else:
        stopping.state = "running"
        stopping.reason = f"{len(still_open)} comparison(s) open after {done} rounds"
    if never_ran:
        stopping.reason += f"; {never_ran} config(s) failed in every round (see summary.csv's failures)"


def _chunks(batch: list[list[str]], size: int | None) -> list[list[list[str]]]:
    size = len(batch) if size is None or size <= 0 else size
    return [batch[i : i + size] for i in range(0, len(batch), size)]
