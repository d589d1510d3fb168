"""pinsweep.stats against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from pinsweep import stats


def test_iqr_uses_linear_interpolation():
    # sorted 1, 2, 3, 4: the 25th percentile sits at index 0.75 -> 1.75, the 75th at 2.25 -> 3.25
    assert stats.iqr([4, 1, 3, 2]) == pytest.approx(1.5)
    # three values a <= b <= c: (c - a) / 2
    assert stats.iqr([10.0, 30.0, 20.0]) == pytest.approx(10.0)
    assert stats.iqr([5.0]) == 0.0


def test_block_means_drop_the_partial_tail():
    assert stats.block_means([1, 2, 3, 4, 5, 6, 7], 3).tolist() == [2.0, 5.0]
    assert stats.block_means([1, 2, 3], 1).tolist() == [1.0, 2.0, 3.0]
    assert len(stats.block_means([1, 2], 3)) == 0


def test_mean_ci_halfwidth_is_students_t_over_block_means():
    samples = [1, 2, 3, 4, 5, 6]
    # blocks of 2: means 1.5, 3.5, 5.5; their mean 3.5, sample sd 2, so sem = 2 / sqrt(3)
    t = scipy_stats.t.ppf(0.975, df=2)
    expected = t * (2 / math.sqrt(3)) / 3.5
    assert stats.mean_ci_halfwidth(samples, block=2) == pytest.approx(expected, rel=1e-12)
    # block=1: the ordinary t interval of the mean, relative to the mean
    values = np.array([0.9, 1.1, 1.0, 1.2])
    t = scipy_stats.t.ppf(0.975, df=3)
    assert stats.mean_ci_halfwidth(values) == pytest.approx(t * values.std(ddof=1) / 2 / values.mean(), rel=1e-12)


def test_mean_ci_halfwidth_is_infinite_without_two_blocks_or_with_a_zero_mean():
    assert stats.mean_ci_halfwidth([1, 2, 3], block=2) == math.inf
    assert stats.mean_ci_halfwidth([], block=1) == math.inf
    assert stats.mean_ci_halfwidth([-1, 1, -1, 1]) == math.inf


def test_median_ci_degenerate_cases():
    assert all(math.isnan(bound) for bound in stats.median_ci([]))
    assert all(math.isnan(bound) for bound in stats.median_ci([3.0]))
    assert stats.median_ci([2.5, 2.5, 2.5]) == (2.5, 2.5)


def test_median_ci_lies_within_the_data_and_around_the_median():
    values = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0]
    low, high = stats.median_ci(values)
    assert 10.0 <= low <= 13.0 <= high <= 16.0
    assert low < high
    assert stats.median_ci(values) == (low, high)  # seeded: the same rows give the same table


def test_ratio_of_medians_point_value():
    ratio, low, high = stats.ratio_of_medians([2, 4, 6], [1, 2, 3])
    assert ratio == 2.0
    assert low <= 2.0 <= high


def test_ratio_of_medians_has_no_interval_with_one_run_per_arm():
    ratio, low, high = stats.ratio_of_medians([3.0], [2.0, 2.2])
    assert ratio == pytest.approx(3.0 / 2.1)
    assert math.isnan(low) and math.isnan(high)
    assert math.isnan(stats.ratio_of_medians([3.0, 3.1], [2.0])[1])


def test_ratio_of_well_separated_groups_excludes_one():
    ratio, low, high = stats.ratio_of_medians([200, 201, 202], [100, 101, 102])
    assert ratio == pytest.approx(201 / 101)
    # every resampled median lies in the data's range, so the interval lies within these bounds
    assert 200 / 102 <= low <= ratio <= high <= 202 / 100
    assert stats.significant(low, high) is True


def test_ratio_of_overlapping_groups_includes_one():
    ratio, low, high = stats.ratio_of_medians([100, 110, 120], [105, 115, 95])
    assert ratio == pytest.approx(110 / 105)
    assert low < 1 < high
    assert stats.significant(low, high) is False


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (1.1, 1.3, True),
        (0.7, 0.9, True),
        (0.9, 1.1, False),
        (1.0, 1.2, False),  # an interval touching 1 does not exclude it
        (0.8, 1.0, False),
        (math.nan, 1.2, None),
        (1.1, math.nan, None),
    ],
)
def test_significant_means_the_interval_excludes_one(low, high, expected):
    assert stats.significant(low, high) is expected
