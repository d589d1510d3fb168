"""The sequential method (pinsweep/analysis/sequential.py) proven by seeded simulation, the stopping rule
in the loop.

    run_cell("iid", configs=6, truth=..., sweeps=1000, rule="sequential") -> CellResult

Each simulated sweep runs as `hydra.sweeper.rounds=auto` runs one: a round is every config once in a
shuffled order (pinsweep.sweep.order), a look after each round from min_rounds on, a stop as soon as
every comparison (each config against config 0, as a one-axis sweep compares with its baseline) is
resolved: its interval excludes 1, lies inside +-margin, or both its configs are ruled out of being
the fastest; else a stop at max_rounds. What is recorded is what the sweep reports at its stopping
round. Two machines, as in tests/test_design.py:
- iid: every job's throughput varies by 5% (log scale), independently;
- switching: the machine flips between two speed states 25% apart, a state lasting 5 jobs on average
  (across round boundaries too), plus 2% job-to-job noise: this VM's behaviour.

Vectorized over sweeps: a complete round-by-config table has the block fit in closed form (config
means, round means, the two-way residual), so 1,000 sweeps of 20 configs and 8 looks take a moment;
the critical values come from `sequential.boundaries`, the function the summarizer itself calls, on
the same complete design. `rule="naive"` applies the fixed single-look analysis at every look with the
same stopping rule: the method the issue warns about, which must fail the same check.
benchmarks/sequential_check.py runs the full table; tests/test_sequential.py a reduced one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from pinsweep.analysis import design, sequential

MACHINES = ("iid", "switching")
# sequential: pinsweep's method. naive: the fixed single-look intervals at every look, stopping as soon as
# anything is significant (or all is resolved). fixed: no looks, the fixed analysis at max_rounds only
RULES = ("sequential", "naive", "fixed")


def machine_noise(machine: str, shape: tuple[int, int], rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Log-throughput disturbance of each job, in run order: (sweeps, jobs); `scale` shrinks or grows it."""
    if machine == "iid":
        return rng.normal(0.0, 0.05 * scale, shape)
    switches = rng.random(shape) < 0.2  # a state lasts 5 jobs on average
    slow = (np.cumsum(switches, axis=1) + rng.integers(2, size=(shape[0], 1))) % 2 == 1
    return scale * (np.where(slow, math.log(1 / 1.25), 0.0) + rng.normal(0.0, 0.02, shape))


def simulate(
    truth: np.ndarray, rounds: int, machine: str, sweeps: int, rng: np.random.Generator, scale: float = 1.0
) -> np.ndarray:
    """log images/s of each (sweep, config, round); config c is exp(truth[c]) times config 0. Jobs run
    round after round, the configs of a round in a random order of their own."""
    configs = len(truth)
    order = rng.permuted(np.broadcast_to(np.arange(configs), (sweeps, rounds, configs)), axis=2)
    position = np.argsort(order, axis=2) + configs * np.arange(rounds)[None, :, None]  # run slot of (r, c)
    noise = machine_noise(machine, (sweeps, rounds * configs), rng, scale)
    per_job = np.take_along_axis(noise, position.reshape(sweeps, -1), axis=1).reshape(sweeps, rounds, configs)
    return math.log(1000.0) + truth[None, :, None] + per_job.transpose(0, 2, 1)


def many_to_one(configs: int) -> np.ndarray:
    return np.eye(configs)[1:] - np.eye(configs)[0]


def complete_design(configs: int, rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """(config, round) of every job of a sweep in which every job ran."""
    return np.tile(np.arange(configs), rounds), np.repeat(np.arange(rounds), configs)


@lru_cache(maxsize=32)
def critical_values(configs: int, plan: sequential.Plan, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(many-to-one, pairwise) critical value at each look min_rounds..max_rounds of a complete design."""
    rounds = list(range(plan.min_rounds, plan.max_rounds + 1))
    config, block = complete_design(configs, plan.max_rounds)
    families = (many_to_one(configs), sequential.pairwise(list(range(configs)), configs))
    if rule == "sequential":
        fractions = plan.fractions(rounds, final=True)
        return tuple(
            sequential.boundaries(config, block, configs, f, rounds, fractions, spending=plan.spending)
            for f in families
        )
    fixed = []
    for family in families:  # the fixed analysis at each look: single-step max-t at that look's df
        correlation = family @ family.T  # equal variances in a complete design
        fixed.append(np.array([design.critical_value(correlation, (configs - 1) * (n - 1)) for n in rounds]))
    return tuple(fixed)


@dataclass
class CellResult:
    sweeps: int
    comparisons: int
    mean_rounds: float
    coverage: float  # share of comparisons whose interval at the stopping round covers the true ratio
    any_false_significant: float  # share of sweeps calling a truly null comparison significant
    false_significant: float  # share of truly null comparisons called significant
    wrong_sign: float  # share of true differences called significant the wrong way
    equivalent_beyond_margin: float  # share of comparisons with |true ratio| >= margin called equivalent
    equivalent_within: float  # share of comparisons with |true ratio| < margin called equivalent
    found: float  # share of true differences (>= margin) called significant
    resolved: float  # share of sweeps that stopped with every comparison resolved

    def as_dict(self) -> dict:
        return asdict(self)


def run_cell(
    machine: str,
    truth: np.ndarray,
    sweeps: int,
    rng: np.random.Generator,
    plan: sequential.Plan | None = None,
    rule: str = "sequential",
    scale: float = 1.0,
) -> CellResult:
    """`sweeps` rounds=auto sweeps of these true log ratios (truth[0] = 0: the baseline), each stopped by
    the rule, judged at its stopping round; `scale` multiplies the machine's noise."""
    plan = plan or sequential.Plan()
    truth = np.asarray(truth, dtype=float)
    configs = len(truth)
    y = simulate(truth, plan.max_rounds, machine, sweeps, rng, scale)
    c_claims, c_pairs = critical_values(configs, plan, rule)
    bound = math.log1p(plan.margin)
    effect = truth[1:] - truth[0]
    stopped = np.zeros(sweeps, dtype=bool)
    stop_round = np.full(sweeps, plan.max_rounds)
    at_stop = {name: np.zeros((sweeps, configs - 1)) for name in ("low", "high", "significant", "equivalent")}
    at_stop["resolved"] = np.zeros(sweeps, dtype=bool)
    for look, n in enumerate(range(plan.min_rounds, plan.max_rounds + 1)):
        table = y[:, :, :n]
        means = table.mean(axis=2)
        residual = table - means[:, :, None] - table.mean(axis=1)[:, None, :] + table.mean(axis=(1, 2))[:, None, None]
        sigma2 = (residual**2).sum(axis=(1, 2)) / ((configs - 1) * (n - 1))
        se = np.sqrt(sigma2 * 2.0 / n)[:, None]  # any difference of two configs in a complete design
        estimate = means[:, 1:] - means[:, :1]
        low, high = estimate - c_claims[look] * se, estimate + c_claims[look] * se
        significant = (low > 0) | (high < 0)
        equivalent = (low > -bound) & (high < bound)
        beaten = means.max(axis=1, keepdims=True) - means > c_pairs[look] * se  # ruled out of fastest
        settled = beaten[:, 1:] & beaten[:, :1]
        resolved = (significant | equivalent | settled).all(axis=1)
        last = n == plan.max_rounds
        if rule == "naive":
            stop = resolved | significant.any(axis=1)
        elif rule == "fixed":
            stop = np.zeros(sweeps, dtype=bool)
        else:
            stop = resolved
        now = ~stopped & (stop | last)
        for name, value in (("low", low), ("high", high), ("significant", significant), ("equivalent", equivalent)):
            at_stop[name][now] = value[now]
        at_stop["resolved"][now] = resolved[now]
        stop_round[now] = n
        stopped |= now
    covered = (at_stop["low"] <= effect) & (effect <= at_stop["high"])
    significant = at_stop["significant"].astype(bool)
    equivalent = at_stop["equivalent"].astype(bool)
    null, beyond = effect == 0, np.abs(effect) >= bound - 1e-12
    within = ~beyond
    estimate_sign = np.sign(at_stop["low"] + at_stop["high"])
    return CellResult(
        sweeps=sweeps,
        comparisons=sweeps * (configs - 1),
        mean_rounds=float(stop_round.mean()),
        coverage=float(covered.mean()),
        any_false_significant=float(significant[:, null].any(axis=1).mean()) if null.any() else math.nan,
        false_significant=float(significant[:, null].mean()) if null.any() else math.nan,
        wrong_sign=float((significant & (estimate_sign != np.sign(effect)))[:, ~null].mean())
        if (~null).any()
        else math.nan,
        equivalent_beyond_margin=float(equivalent[:, beyond].mean()) if beyond.any() else math.nan,
        equivalent_within=float(equivalent[:, within].mean()) if within.any() else math.nan,
        found=float(significant[:, beyond].mean()) if beyond.any() else math.nan,
        resolved=float(at_stop["resolved"].mean()),
    )


# the scenarios of the acceptance check, by name: true log ratios of configs 1.. over config 0
def scenario(name: str, configs: int, margin: float = sequential.MARGIN) -> np.ndarray:
    """null: no config differs. margin: every config differs by exactly the margin, half faster, half
    slower (the hardest case for a false `equivalent`). mixed: every other config differs by up to 20%,
    the rest not at all (as tests/test_design.py). clear: config c is 1.3^c times config 0, an answer
    that should come early."""
    others = np.arange(1, configs)
    if name == "null":
        return np.zeros(configs)
    if name == "margin":
        return np.concatenate([[0.0], math.log1p(margin) * np.where(others % 2 == 1, 1.0, -1.0)])
    if name == "mixed":
        return np.concatenate([[0.0], math.log(1.2) * (1 - others % 2) * others / configs])
    if name == "clear":
        return np.concatenate([[0.0], math.log(1.3) * others])
    raise ValueError(f"scenario {name!r}: one of {', '.join(SCENARIOS)}")


SCENARIOS = ("null", "margin", "mixed", "clear")
