"""Sequential rounds: look after every round, stop as soon as every comparison is resolved, stay valid.

`hydra.sweeper.rounds=auto` runs a sweep one round (every config once) at a time and refits the block
design (pinsweep/analysis/design.py) after each. Looking after every round and stopping when the
intervals look good would spend the 5% error rate again at every look: a null sweep watched for 8
rounds and stopped at the first `significant` calls something significant far more often than 5%
(benchmarks/sequential_check.py measures it). This module makes the looks part of the method.

**The method: a group-sequential design with Lan-DeMets alpha spending over the max-t statistic.**
A look is made after each round from `min_rounds` on; its *information fraction* is the rounds run
over the most the sweep may run, t = rounds / max_rounds (1 at the last look). Of the family-wise 5%,
at most alpha(t) = 2 - 2 Phi(z_0.975 / sqrt t) is spent by the time t is reached: the O'Brien-Fleming
shaped spending function of Lan & DeMets (1983). The look's critical value c_k for max|T| over the
family's t statistics (each comparison's estimate over its pooled-variance standard error, the
statistic of the fixed analysis) is set so that, for the design as it really ran (configs, rounds so
far, missing jobs), P(max|T| crosses c_j at some look j <= k) = alpha(t_k) under no difference. That
probability has no closed form (the statistics of one look are correlated with each other and with
the earlier looks', and the pooled variance is re-estimated at each), so it is computed by a seeded
simulation of the design itself: normal noise through the same least-squares fit, every look, the
draws that crossed an earlier boundary removed (Jennison & Turnbull 2000, ch. 7). Where a look may
cross in too few simulated draws to place a quantile (the earliest looks spend ~1e-4), c_k is the
Bonferroni bound on t, which is conservative and, that far out in the tail, nearly exact; what such a
look leaves unspent is carried to the next. The interval at a look is estimate +- c_k * SE: a
*repeated confidence interval*, and all of them, over every comparison and every look, cover their
true ratios at once with 95% confidence. So whichever round the sweep stops at, for whatever reason,
the intervals it reports are simultaneous 95% intervals; a budget or the limit can end the sweep
early, and that last look spends all the alpha left (t = 1): the decision to stop there does not
depend on the data.

**Claims follow from the intervals, so they share one family-wise 5%.** A comparison is
- a difference (`significant`) when its interval excludes 1;
- `equivalent` when its interval lies inside +-margin (default 5%; between 1/1.05 and 1.05 on the
  ratio, symmetric on the log scale so that a -> b and b -> a say the same). This is two one-sided
  tests against the margin, each at 2.5% and adjusted with the rest of the family;
- settled for the choice when neither of the configs it compares can be the fastest (every config it
  weighs is beaten by another beyond its interval, for all pairwise differences at the look's own
  boundary): the difference then does not change which config to pick.
A comparison is *resolved* when any of the three holds; the sweep stops once all are resolved.

**Why this and not the alternatives.** The sweep's looks are few, discrete and bounded (rounds,
at most `max_rounds`), the setting group-sequential designs are built for; O'Brien-Fleming spending
keeps the last look's critical value within a few percent of the fixed-sample one (power is kept when
the sweep runs to the limit) while still stopping early on a clear answer. Pocock-like spending stops
earlier on large effects but widens the last look's interval by ~20%; and the earliest looks, with
2-3 residual degrees of freedom per comparison, need a huge t anyway, so alpha spent there buys little.
Anytime-valid confidence sequences allow unbounded, continuous monitoring and pay for it in width at
every look (a mixture boundary is ~1.5-2x wider at a fixed horizon) and need a known or bounded
variance, where here the pooled variance is estimated from few degrees of freedom. Proven with the
stopping rule inside a seeded simulation (pinsweep/analysis/sequential_sim.py; figures in
benchmarks/README.md): family-wise errors, coverage at the stopping round, equivalence claimed for
true differences at the margin, mean rounds, and the naive rule failing the same check.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from pinsweep.analysis import design
from pinsweep.outputs import replacing

ALPHA = 1.0 - design.CONFIDENCE
MARGIN = 0.05  # equivalent: the ratio lies within +-5% (between 1/1.05 and 1.05)
MIN_ROUNDS = 2  # the first look: a round alone has no residual degrees of freedom
MAX_ROUNDS = 8  # the planned limit; the information fraction of a look is rounds / max_rounds
SIM_DRAWS = 40_000  # simulated null sweeps per boundary: the final look's rate is known to ~0.1%
SIM_SEED = 0
MIN_CROSSINGS = 100  # fewer simulated draws than this beyond a look's quantile: the Bonferroni bound instead
STOPPING_FILE = "rounds.json"  # <sweep>/rounds.json: the stopping decision of a rounds=auto sweep


# --------------------------------------------------------------------------------------- spending


SPENDING = ("obrien-fleming", "pocock")  # the first is pinsweep's; the second is kept for the comparison


def spent(fraction: float, alpha: float = ALPHA, spending: str = SPENDING[0]) -> float:
    """The family-wise error spent by information fraction t: Lan-DeMets O'Brien-Fleming shaped,
    2 - 2 Phi(z_{1-alpha/2} / sqrt t); or (spending="pocock") Lan-DeMets Pocock shaped, alpha log(1 + (e-1) t)."""
    from scipy import stats as scipy_stats

    fraction = min(max(float(fraction), 0.0), 1.0)
    if fraction <= 0.0:
        return 0.0
    if spending == "pocock":
        return float(alpha * math.log1p((math.e - 1.0) * fraction))
    return float(2.0 * scipy_stats.norm.sf(scipy_stats.norm.isf(alpha / 2.0) / math.sqrt(fraction)))


@dataclass(frozen=True)
class Plan:
    """What a rounds=auto sweep plans: its looks and the margin of equivalence."""

    min_rounds: int = MIN_ROUNDS
    max_rounds: int = MAX_ROUNDS
    margin: float = MARGIN
    spending: str = SPENDING[0]

    def check(self) -> Plan:
        if self.min_rounds < 2:
            raise ValueError(f"min_rounds={self.min_rounds}: must be >= 2 (one round has no residual to judge by)")
        if self.max_rounds < self.min_rounds:
            raise ValueError(f"max_rounds={self.max_rounds}: must be >= min_rounds ({self.min_rounds})")
        if not 0 < self.margin < 1:
            raise ValueError(f"margin={self.margin}: the equivalence margin is a fraction, e.g. 0.05 for +-5%")
        if self.spending not in SPENDING:
            raise ValueError(f"spending={self.spending}: one of {', '.join(SPENDING)}")
        return self

    def fractions(self, rounds: list[int], final: bool) -> list[float]:
        """Information fraction of each look (rounds run at that look); the final look is 1."""
        fractions = [min(r / self.max_rounds, 1.0) for r in rounds]
        if final and fractions:
            fractions[-1] = 1.0
        return fractions


# ------------------------------------------------------------------------------ the null simulation


def _null_max_t(
    noise: np.ndarray, config: np.ndarray, block: np.ndarray, n_configs: int, contrasts: np.ndarray
) -> tuple[np.ndarray, int, int]:
    """max|T| over the family, per simulated draw (noise: observations x draws), for one look's design;
    with the look's residual df and the number of comparisons that have an interval."""
    draws = noise.shape[1]
    matrix = design.design_matrix(config, block, n_configs)
    pinv = np.linalg.pinv(matrix)
    left, singular, _ = np.linalg.svd(matrix, full_matrices=False)
    rank = int((singular > singular.max(initial=0.0) * 1e-10).sum())
    df = len(config) - rank
    nothing = np.full(draws, -np.inf)
    if df <= 0:
        return nothing, 0, 0
    # the fit's own estimability test and variance factors (design.BlockFit.contrast)
    null_part = (np.eye(matrix.shape[1]) - pinv @ matrix)[:, :n_configs]
    estimable = np.abs(null_part @ contrasts.T).max(axis=0, initial=0.0) <= design.ESTIMABLE_TOL
    unscaled = (pinv @ pinv.T)[:n_configs, :n_configs]
    variance = np.einsum("kc,cd,kd->k", contrasts, unscaled, contrasts)
    members = estimable & (variance > 1e-12)
    if not members.any():
        return nothing, df, 0
    effects = pinv[:n_configs] @ noise  # configs x draws
    basis = left[:, :rank]
    residual = (noise**2).sum(axis=0) - ((basis.T @ noise) ** 2).sum(axis=0)
    sigma = np.sqrt(np.clip(residual, 0.0, None) / df)
    t = (contrasts[members] @ effects) / (np.sqrt(variance[members])[:, None] * sigma[None, :])
    return np.abs(t).max(axis=0), df, int(members.sum())


def _bonferroni(increment: float, size: int, df: int) -> float:
    from scipy import stats as scipy_stats

    return float(scipy_stats.t.isf(max(increment, 1e-15) / (2 * size), df))


@lru_cache(maxsize=128)
def _boundaries(
    key: bytes, shapes: tuple, fractions: tuple, alpha: float, draws: int, spending: str
) -> tuple[float, ...]:
    n, n_configs, k = shapes
    data = np.frombuffer(key, dtype=float)
    config = data[:n].astype(int)
    block = data[n : 2 * n].astype(int)
    contrasts = data[2 * n : 2 * n + k * n_configs].reshape(k, n_configs)
    rounds = data[2 * n + k * n_configs :].astype(int)
    # observations ordered by round, each drawn as a column of `draws` values in that order: a look's
    # noise is the same whatever rounds come after it, so a later look never changes an earlier boundary
    order = np.lexsort((config, block))
    noise = np.random.default_rng(SIM_SEED).standard_normal((n, draws))[np.argsort(order)]
    crossed = np.zeros(draws, dtype=bool)
    critical: list[float] = []
    before = 0.0
    for look_rounds, fraction in zip(rounds, fractions):
        target = spent(fraction, alpha, spending)
        seen = block < look_rounds
        statistic, df, size = _null_max_t(noise[seen], config[seen], block[seen], n_configs, contrasts)
        if size == 0:  # no interval at this look: nothing spent, all of it carried on
            critical.append(math.inf)
            continue
        allowed = math.floor(target * draws - float(crossed.sum()))
        if allowed < MIN_CROSSINGS:
            value = _bonferroni(target - before, size, df)
        else:
            alive = np.sort(statistic[~crossed])[::-1]
            value = float(alive[allowed]) if allowed < len(alive) else 0.0
        crossed |= statistic > value
        before = target
        critical.append(value)
    return tuple(critical)


def boundaries(
    config,
    block,
    n_configs: int,
    contrasts,
    rounds: list[int],
    fractions: list[float],
    alpha: float = ALPHA,
    draws: int = SIM_DRAWS,
    spending: str = SPENDING[0],
) -> np.ndarray:
    """The critical value of max|T| at each look (rounds run at that look: round labels < rounds),
    for observations (config index, round label 0, 1, ...) and a family of contrasts over the configs.
    Seeded: the same design always gets the same boundaries (cached)."""
    config = np.asarray(config, dtype=int)
    block = np.asarray(block, dtype=int)
    contrasts = np.atleast_2d(np.asarray(contrasts, dtype=float))
    # a comparison stated twice (a one-axis sweep's speedup and its effect, a -> b and b -> a) is one
    # member of the family: |T| is the same, and the Bonferroni bound counts members
    leading = np.take_along_axis(contrasts, np.argmax(np.abs(contrasts) > 1e-12, axis=1)[:, None], axis=1)
    contrasts = np.unique(np.round(contrasts * np.where(leading < 0, -1.0, 1.0), 12) + 0.0, axis=0)
    key = np.concatenate([config, block, contrasts.ravel(), np.asarray(rounds, dtype=float)]).astype(float)
    shapes = (len(config), int(n_configs), len(contrasts))
    fractions_key = tuple(float(f) for f in fractions)
    return np.array(_boundaries(key.tobytes(), shapes, fractions_key, alpha, int(draws), spending))


def pairwise(configs: list[int], n_configs: int) -> np.ndarray:
    """Every difference j - i between the given configs: the family that rules configs out of fastest."""
    rows = []
    for a, i in enumerate(configs):
        for j in configs[a + 1 :]:
            weights = np.zeros(n_configs)
            weights[j], weights[i] = 1.0, -1.0
            rows.append(weights)
    return np.array(rows).reshape(len(rows), n_configs)


# ------------------------------------------------------------------------------------ one analysis


@dataclass(frozen=True)
class Looks:
    """The looks a rounds=auto sweep made at its rows: after each round from min_rounds on."""

    rounds: list[int]  # rounds run at each look (the last: every round in the rows)
    fractions: list[float]

    @classmethod
    def of(cls, block, plan: Plan, final: bool) -> Looks:
        block = np.asarray(block, dtype=int)
        ran = int(block.max()) + 1 if len(block) else 0
        rounds = list(range(min(plan.min_rounds, ran), ran + 1)) if ran else []
        return cls(rounds, plan.fractions(rounds, final))


def critical_now(config, block, n_configs: int, contrasts, plan: Plan, final: bool) -> float:
    """The current (last) look's critical value for this family; NaN when there is no look yet."""
    if not len(contrasts):
        return math.nan
    looks = Looks.of(block, plan, final)
    if not looks.rounds:
        return math.nan
    critical = boundaries(config, block, n_configs, contrasts, looks.rounds, looks.fractions, spending=plan.spending)
    return float(critical[-1])


def ruled_out(fit: design.BlockFit, configs: list[int], critical: float) -> list[bool | None]:
    """Per config: beaten by another beyond its interval (so it cannot be the fastest), at the pairwise
    family's critical value; None where nothing can be said."""
    answer: list[bool | None] = []
    for i in configs:
        beaten, judged = False, False
        for j in configs:
            if j == i:
                continue
            weights = np.zeros(len(fit.estimates))
            weights[j], weights[i] = 1.0, -1.0
            estimate, se = fit.contrast(weights)
            if math.isnan(se) or se <= 0 or not math.isfinite(critical):
                continue
            judged = True
            beaten |= estimate - critical * se > 0
        answer.append(beaten if judged else None)
    return answer


# ---------------------------------------------------------------------------- the stopping record


@dataclass
class Stopping:
    """<sweep>/rounds.json: how a rounds=auto sweep went and why it stopped."""

    plan: dict = field(default_factory=dict)  # min_rounds, max_rounds, margin (Plan as a dict)
    budget_s: float | None = None  # the wall-time budget, None without one
    rounds: int = 0  # rounds run
    state: str = "running"  # running | resolved | limit | budget
    final: bool = False  # the last look was planned as the last (the limit or the budget): it spent all alpha left
    reason: str = ""  # why it stopped, in words
    open: list[str] = field(default_factory=list)  # comparisons still open at the last look
    seconds: float = 0.0  # the jobs' own wall time so far (the budget's clock)
    history: list[dict] = field(default_factory=list)  # per look: round, open count, seconds

    @property
    def stopped(self) -> bool:
        return self.state != "running"

    def the_plan(self) -> Plan:
        return Plan(**self.plan) if self.plan else Plan()

    def write(self, sweep_dir: str | Path) -> Path:
        path = Path(sweep_dir) / STOPPING_FILE
        with replacing(path) as temporary:  # atomic: a reader never sees half a file; the user's umask
            temporary.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")
        return path


def read_stopping(sweep_dir: str | Path) -> Stopping | None:
    """The stopping record of a rounds=auto sweep; None for any other sweep."""
    path = Path(sweep_dir) / STOPPING_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    known = set(Stopping.__dataclass_fields__)
    return Stopping(**{key: value for key, value in data.items() if key in known})
