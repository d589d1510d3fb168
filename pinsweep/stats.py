"""Statistics on timing samples: robust summaries, confidence intervals, A/B ratios.

Confidence intervals of a summary across repeats come from scipy's bootstrap (percentile method,
fixed seed, so the same rows give the same table). The precision of one job's mean step time comes
from batch means: consecutive steps are correlated (workers deliver batches in bursts), so the
interval is computed over means of blocks of steps, which are close to independent.
"""

from __future__ import annotations

import math

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def iqr(values) -> float:
    """Interquartile range, numpy's default (linear) interpolation."""
    q1, q3 = np.percentile(np.asarray(values, dtype=float), [25, 75])
    return float(q3 - q1)


def block_means(samples, block: int) -> np.ndarray:
    """Means of consecutive, non-overlapping blocks of `block` samples (a partial tail is dropped)."""
    samples = np.asarray(samples, dtype=float)
    count = len(samples) // block
    return samples[: count * block].reshape(count, block).mean(axis=1)


def mean_ci_halfwidth(samples, block: int = 1) -> float:
    """Relative 95% CI half-width of the mean, by Student's t over block means; inf if < 2 blocks."""
    means = block_means(samples, max(1, block))
    if len(means) < 2 or means.mean() == 0:
        return math.inf
    sem = means.std(ddof=1) / math.sqrt(len(means))
    from scipy import stats as scipy_stats  # lazy: scipy costs ~0.8 s of every job's start-up

    t = scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df=len(means) - 1)
    return float(t * sem / means.mean())


def median_ci(values) -> tuple[float, float]:
    """Bootstrap 95% CI of the median; NaNs when fewer than 2 values (no spread to resample)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    from scipy import stats as scipy_stats

    result = scipy_stats.bootstrap(
        (values,),
        np.median,
        confidence_level=CONFIDENCE,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def ratio_of_medians(treatment, control) -> tuple[float, float, float]:
    """median(treatment) / median(control) with a bootstrap 95% CI (groups resampled independently).

    The CI is NaN when either group has fewer than 2 values: one run per arm cannot tell a real
    difference from run-to-run noise, which is the notebook's mistake this tool exists to avoid.
    """
    treatment = np.asarray(treatment, dtype=float)
    control = np.asarray(control, dtype=float)
    ratio = float(np.median(treatment) / np.median(control))
    if len(treatment) < 2 or len(control) < 2:
        return ratio, math.nan, math.nan
    from scipy import stats as scipy_stats

    result = scipy_stats.bootstrap(
        (treatment, control),
        lambda t, c, axis=-1: np.median(t, axis=axis) / np.median(c, axis=axis),
        confidence_level=CONFIDENCE,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return ratio, float(result.confidence_interval.low), float(result.confidence_interval.high)


def significant(low: float, high: float) -> bool | None:
    """Whether a ratio's CI excludes 1; None when there is no CI."""
    if math.isnan(low) or math.isnan(high):
        return None
    return bool(low > 1.0 or high < 1.0)
