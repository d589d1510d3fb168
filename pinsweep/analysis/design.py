"""A sweep as a designed experiment: the statistics behind `speedup`, `significant` and every claim.

Configs x interleaved repeat rounds (`train.repeat`) is a randomized block design: each round runs
every config once, in a shuffled order, and the machine's speed drifts between rounds (and between
jobs). The model, on log throughput, is the classical one for such a design:

    log(images/s) of config c in round r  =  mu_c  +  b_r  +  e_cr

Round effects b_r absorb the machine state a round ran in, so configs are compared *within* rounds
(the pairing of interleaved repeats). The residual variance is pooled across all configs, so three
repeats of twenty configs estimate the noise from 38 degrees of freedom instead of 2. Every
comparison is a contrast of the mu's; its interval is Student's t with the pooled variance: exact in
small samples, where a bootstrap of three values can only return those three values.

A sweep makes many comparisons at once (every config against the baseline, every axis in every
stratum). Their intervals are simultaneous: single-step max-t (Hothorn, Bretz & Westfall 2008),
which is Dunnett's test for the many-to-one family of a balanced sweep. With 95% confidence every
interval of the family covers its true ratio at once, so the chance that *anything* in a sweep of
no real differences is called significant stays at 5%, however many configs it holds. The critical
value of max|T| over correlated t statistics comes from scipy's multivariate t, by a seeded Monte
Carlo (the same rows always give the same table). "Could be the fastest" is Hsu's multiple
comparisons with the best, at the same confidence.

tests/test_design.py proves the coverage and error rates by seeded simulation with known truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CONFIDENCE = 0.95
POWER = 0.8  # the power `repeats_needed` plans for
MC_DRAWS = 100_000  # Monte Carlo draws of max|T|: the critical value's error is ~0.1% of coverage
MC_SEED = 0
ESTIMABLE_TOL = 1e-8


@dataclass(frozen=True)
class BlockFit:
    """Least-squares fit of log throughput on config and round effects (any pattern of missing jobs)."""

    estimates: np.ndarray  # config effects mu_c; only their contrasts mean anything
    unscaled_cov: np.ndarray  # (X'X)^+ over the config effects: times sigma2, the covariance
    null_part: np.ndarray  # rows of this matrix are what a contrast must be orthogonal to, to be estimable
    sigma2: float  # pooled residual variance of log throughput (NaN without residual degrees of freedom)
    df: int  # residual degrees of freedom

    def contrast(self, weights: np.ndarray) -> tuple[float, float]:
        """(estimate, standard error) of sum_c w_c mu_c; NaNs when the data cannot estimate it."""
        weights = np.asarray(weights, dtype=float)
        if np.abs(self.null_part @ weights).max(initial=0.0) > ESTIMABLE_TOL:
            return math.nan, math.nan
        estimate = float(weights @ self.estimates)
        se = math.sqrt(self.sigma2 * float(weights @ self.unscaled_cov @ weights)) if self.df > 0 else math.nan
        return estimate, se


def design_matrix(config, block, n_configs: int) -> np.ndarray:
    """The model's design matrix: one indicator column per config, one per round after the first."""
    config = np.asarray(config, dtype=int)
    _, block = np.unique(np.asarray(block), return_inverse=True)
    n_blocks = int(block.max()) + 1 if len(block) else 0
    design = np.zeros((len(config), n_configs + max(n_blocks - 1, 0)))
    design[np.arange(len(config)), config] = 1.0
    later = block > 0  # round 0 is the reference level of the round effects
    design[np.flatnonzero(later), n_configs + block[later] - 1] = 1.0
    return design


def fit_blocks(log_ips, config, block, n_configs: int) -> BlockFit:
    """Fit mu_c + b_r to observations (log images/s, config index, round index)."""
    log_ips = np.asarray(log_ips, dtype=float)
    design = design_matrix(config, block, n_configs)
    pinv = np.linalg.pinv(design)
    coefficients = pinv @ log_ips
    rank = np.linalg.matrix_rank(design) if len(log_ips) else 0
    df = len(log_ips) - rank
    residual = log_ips - design @ coefficients
    sigma2 = float(residual @ residual / df) if df > 0 else math.nan
    # a contrast l is estimable iff it lies in X's row space, i.e. l (I - X^+ X) = 0
    projector = np.eye(design.shape[1]) - pinv @ design
    return BlockFit(
        estimates=coefficients[:n_configs],
        unscaled_cov=(pinv @ pinv.T)[:n_configs, :n_configs],
        null_part=projector[:, :n_configs],
        sigma2=sigma2,
        df=int(df),
    )


@lru_cache(maxsize=256)
def _critical(corr_key: bytes, size: int, df: int, confidence: float, one_sided: bool) -> float:
    from scipy import stats as scipy_stats

    if size == 1:
        tail = confidence if one_sided else 0.5 + confidence / 2
        return float(scipy_stats.t.ppf(tail, df))
    draws = _draws(corr_key, size, df)
    statistic = draws.max(axis=1) if one_sided else np.abs(draws).max(axis=1)
    return float(np.quantile(statistic, confidence))


@lru_cache(maxsize=64)
def _draws(corr_key: bytes, size: int, df: int) -> np.ndarray:
    from scipy import stats as scipy_stats

    corr = np.frombuffer(corr_key).reshape(size, size)
    # contrasts that repeat one another are perfectly correlated: a singular matrix that rounding can
    # push a hair below positive semi-definite; clip those eigenvalues back to zero
    values, vectors = np.linalg.eigh(corr)
    corr = (vectors * np.clip(values, 0.0, None)) @ vectors.T
    distribution = scipy_stats.multivariate_t(shape=corr, df=df, allow_singular=True)
    return distribution.rvs(size=MC_DRAWS, random_state=np.random.default_rng(MC_SEED)).reshape(MC_DRAWS, size)


@lru_cache(maxsize=64)
def _sorted_max(corr_key: bytes, size: int, df: int) -> np.ndarray:
    return np.sort(np.abs(_draws(corr_key, size, df)).max(axis=1))


def _corr_key(cov: np.ndarray) -> bytes:
    scale = np.sqrt(np.diag(cov))
    corr = cov / np.outer(scale, scale)
    # rounded, so that the same design hits the cache despite floating-point noise (+ 0.0: no -0.0)
    return (np.round(corr, 6) + 0.0).tobytes()


def critical_value(cov: np.ndarray, df: int, confidence: float = CONFIDENCE, one_sided: bool = False) -> float:
    """The quantile of max|T| (or max T) over t statistics with this covariance and df."""
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    return _critical(_corr_key(cov), len(cov), int(df), confidence, one_sided)


@dataclass(frozen=True)
class Comparisons:
    """A family of contrasts with simultaneous intervals; all on the log scale."""

    estimate: np.ndarray
    se: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p_adjusted: np.ndarray
    critical: float

    @property
    def significant(self) -> list[bool | None]:
        """Interval excludes 0 (ratio 1); None where there is no interval."""
        return [None if math.isnan(lo) else bool(lo > 0 or hi < 0) for lo, hi in zip(self.low, self.high)]

    def equivalent(self, margin: float) -> list[bool | None]:
        """Interval inside +-margin: the ratio lies between 1/(1+margin) and 1+margin (symmetric on the
        log scale, so a -> b and b -> a make the same claim); None where there is no interval."""
        bound = math.log1p(margin)
        return [None if math.isnan(lo) else bool(-bound < lo and hi < bound) for lo, hi in zip(self.low, self.high)]


def simultaneous(
    fit: BlockFit, contrasts: list[np.ndarray], confidence: float = CONFIDENCE, critical: float | None = None
) -> Comparisons:
    """Estimates and simultaneous intervals (single-step max-t) for a family of contrasts.

    Contrasts the data cannot estimate, or cannot give an interval (no residual df), get NaNs and
    stay out of the family. `critical` replaces the single-look critical value (a sequential look's
    boundary, pinsweep.analysis.sequential); there is then no fixed-sample p-value (NaN)."""
    count = len(contrasts)
    estimate, se = np.full(count, math.nan), np.full(count, math.nan)
    for index, weights in enumerate(contrasts):
        estimate[index], se[index] = fit.contrast(weights)
    low, high, p_adjusted = np.full(count, math.nan), np.full(count, math.nan), np.full(count, math.nan)
    member = np.flatnonzero(~np.isnan(se) & (se > 0))
    sequential = critical is not None
    if len(member):
        matrix = np.array([contrasts[i] for i in member], dtype=float)
        cov = matrix @ fit.unscaled_cov @ matrix.T
        if not sequential:
            critical = critical_value(cov, fit.df, confidence)
        low[member] = estimate[member] - critical * se[member]
        high[member] = estimate[member] + critical * se[member]
        if not sequential:
            p_adjusted[member] = _adjusted_p(cov, fit.df, np.abs(estimate[member] / se[member]))
    return Comparisons(estimate, se, low, high, p_adjusted, math.nan if critical is None else float(critical))


def _adjusted_p(cov: np.ndarray, df: int, statistics: np.ndarray) -> np.ndarray:
    """P(max|T| >= |t_i|) under no difference: each comparison's family-wise adjusted p-value."""
    if len(cov) == 1:
        from scipy import stats as scipy_stats

        return 2 * scipy_stats.t.sf(statistics, df)
    largest = _sorted_max(_corr_key(cov), len(cov), int(df))
    return 1.0 - np.searchsorted(largest, statistics, side="left") / len(largest)


def repeats_needed(estimate: float, se: float, repeats: float, critical: float) -> float:
    """Rounds of repeats at which a difference of this size would be significant with POWER:
    the standard error shrinks as 1/sqrt(repeats). NaN when there is nothing to plan from."""
    if any(map(math.isnan, (estimate, se, critical))) or estimate == 0 or repeats < 1:
        return math.nan
    from scipy import stats as scipy_stats

    needed = repeats * ((critical + scipy_stats.norm.ppf(POWER)) * se / abs(estimate)) ** 2
    return float(max(math.ceil(needed), 2))


def could_be_fastest(fit: BlockFit, configs: list[int], confidence: float = CONFIDENCE) -> list[bool | None]:
    """Hsu's multiple comparisons with the best: config i may be the fastest unless some other config
    beats it by more than the one-sided simultaneous margin. None where nothing can be said."""
    answer: list[bool | None] = []
    for i in configs:
        others = [j for j in configs if j != i]
        if fit.df <= 0 or not others:
            answer.append(None)
            continue
        contrasts = []
        for j in others:
            weights = np.zeros(len(fit.estimates))
            weights[j], weights[i] = 1.0, -1.0
            contrasts.append(weights)
        values = [fit.contrast(w) for w in contrasts]
        usable = [(w, est, se) for w, (est, se) in zip(contrasts, values) if not math.isnan(se) and se > 0]
        if not usable:
            answer.append(None)
            continue
        matrix = np.array([w for w, _, _ in usable])
        critical = critical_value(matrix @ fit.unscaled_cov @ matrix.T, fit.df, confidence, one_sided=True)
        answer.append(all(est <= critical * se for _, est, se in usable))
    return answer


def mean_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Geometric mean of positive values with Student's t interval on the log scale; NaN interval
    for fewer than 2 values."""
    logs = np.log(np.asarray(values, dtype=float))
    if not len(logs):
        return math.nan, math.nan, math.nan
    centre = float(logs.mean())
    if len(logs) < 2:
        return math.exp(centre), math.nan, math.nan
    from scipy import stats as scipy_stats

    half = scipy_stats.t.ppf(0.5 + confidence / 2, len(logs) - 1) * logs.std(ddof=1) / math.sqrt(len(logs))
    return math.exp(centre), math.exp(centre - half), math.exp(centre + half)


def paired_ratio(treatment, control, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Ratio of two arms run in interleaved rounds (treatment[i] and control[i] in round i): the
    geometric mean of the per-round ratios with Student's t interval; NaN interval below 2 rounds."""
    ratios = np.asarray(treatment, dtype=float) / np.asarray(control, dtype=float)
    return mean_interval(ratios, confidence)
