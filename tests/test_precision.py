"""One job's precision: the CI of the mean step time keeps its coverage on autocorrelated steps when
adaptive mode stops on it (seeded simulation, a few seconds), and its exact values on small data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.signal import lfilter

from pinsweep.analysis import stats
from pinsweep.config import TrainConfig
from pinsweep.job.timing import StopRule

RUNS = 400
MAX_STEPS = 20000


def ar1_steps(rng: np.random.Generator, n: int, phi: float, cv: float) -> np.ndarray:
    """Step times with mean 1 and coefficient of variation `cv`, each correlated with the one before
    (phi): slow steps come in runs, as when workers hand over batches in bursts. Starts stationary."""
    noise = lfilter([math.sqrt(1 - phi * phi)], [1, -phi], rng.standard_normal(n))
    noise += phi ** np.arange(1, n + 1) * rng.standard_normal()
    return 1.0 + cv * noise


def stop_like_the_trainer(steps: np.ndarray, rule: StopRule) -> tuple[float, float]:
    """Feed steps one at a time to the trainer's rule; (mean, relative CI half-width) where it stops."""
    for n in range(1, len(steps) + 1):
        if rule.due(n) and rule.precise(steps[:n]):
            return float(steps[:n].mean()), rule.ci_rel
    raise AssertionError(f"never reached the target in {len(steps)} steps")


def coverage(phi: float, cv: float, runs: int = RUNS) -> float:
    """Share of runs whose final 95% interval holds the true mean (1), under the shipped defaults.
    The time budget is left out: it caps the cost, it is not part of the interval."""
    defaults = TrainConfig()
    rng = np.random.default_rng(2026)
    covered = 0
    for _ in range(runs):
        rule = StopRule(defaults.target_ci, defaults.min_steps, math.inf)
        mean, half = stop_like_the_trainer(ar1_steps(rng, MAX_STEPS, phi, cv), rule)
        covered += abs(mean - 1.0) <= half * mean
    return covered / runs


def test_adaptive_stopping_keeps_coverage_on_autocorrelated_steps():
    # phi 0.8 means an integrated autocorrelation time of 9 steps: the target is met after ~1000 steps
    assert coverage(phi=0.8, cv=0.10) >= 0.90  # 1000 runs while choosing the estimator: 95.2%


def five_step_blocks(steps) -> float:
    """The estimator pinsweep used before: Student's t over the means of blocks of 5 steps."""
    steps = np.asarray(steps, dtype=float)
    means = steps[: len(steps) // 5 * 5].reshape(-1, 5).mean(axis=1)
    if len(means) < 2:
        return math.inf
    return float(scipy_stats.t.ppf(0.975, len(means) - 1) * means.std(ddof=1) / math.sqrt(len(means)) / means.mean())


def test_the_former_five_step_blocks_fail_the_same_simulation(monkeypatch):
    # the power of the test above: the estimator it replaced, through the same rule, covers ~75%
    monkeypatch.setattr(stats, "mean_ci_rel", five_step_blocks)
    assert coverage(phi=0.8, cv=0.10, runs=200) < 0.85


def test_mean_ci_rel_on_small_fixed_data():
    samples = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    # n 9: batches of b = 3, every start position: means 2, 3, ..., 8 around the overall mean 5
    # OBM(3) = 9 * 3 / (6 * 7) * (9 + 4 + 1 + 0 + 1 + 4 + 9) = 18; OBM(1) = 9 / (8 * 9) * 60 = 7.5
    # lugsail: 2 * 18 - 7.5 = 28.5; t with 1.5 * (9 / 3 - 1) = 3 degrees of freedom
    expected = scipy_stats.t.ppf(0.975, 3) * math.sqrt(28.5 / 9) / 5
    assert stats.mean_ci_rel(samples) == pytest.approx(expected, rel=1e-12)


def test_mean_ci_rel_never_goes_below_its_overlapping_batch_means():
    # alternating steps: short batches vary more than long ones, and the lugsail term would shrink the
    # variance below zero; it is floored at OBM(b). n 9, mean 17/9, b 3: window means 5/3 and 7/3,
    # OBM(3) = 27 / 42 * 64 / 81 = 32 / 63; OBM(1) = 1 / 8 * 720 / 81 = 10 / 9 > 2 * OBM(3)
    samples = np.array([1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 1.0])
    expected = scipy_stats.t.ppf(0.975, 3) * math.sqrt(32 / 63 / 9) / (17 / 9)
    assert stats.mean_ci_rel(samples) == pytest.approx(expected, rel=1e-12)


def test_mean_ci_rel_is_infinite_without_enough_steps_or_a_positive_mean():
    assert stats.mean_ci_rel([1.0, 2.0, 3.0]) == math.inf
    assert stats.mean_ci_rel([]) == math.inf
    assert stats.mean_ci_rel([-1.0, -2.0, -1.0, -2.0]) == math.inf


def test_checks_are_spaced_so_their_total_cost_is_linear():
    rule = StopRule(target=1e-9, min_steps=100, budget_s=math.inf)
    checked = []
    for n in range(1, 100_001):
        if rule.due(n):
            rule.precise(np.ones(3))  # too few steps: never precise, the schedule just moves on
            checked.append(n)
    assert checked[0] == 100
    assert len(checked) < 100  # a check every 10 steps would be 10,000
    assert sum(checked) < 12 * 100_000  # the steps all checks read together: ~11x the last count


def test_the_rule_stops_only_after_min_steps_and_at_the_budget():
    rule = StopRule(target=0.5, min_steps=100, budget_s=60.0)
    assert not rule.due(99) and rule.due(100)
    assert not rule.precise(np.ones(50))  # within the target, but fewer than min_steps steps
    assert rule.ci_rel == 0.0
    assert rule.precise(np.ones(100))
    assert not rule.out_of_time(59.9) and rule.out_of_time(60.0)
