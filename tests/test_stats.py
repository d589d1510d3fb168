"""pinsweep.analysis.stats against values computed by hand (the step-time precision: tests/test_precision.py)."""

from __future__ import annotations

import pytest

from pinsweep.analysis import stats


def test_iqr_uses_linear_interpolation():
    # sorted 1, 2, 3, 4: the 25th percentile sits at index 0.75 -> 1.75, the 75th at 2.25 -> 3.25
    assert stats.iqr([4, 1, 3, 2]) == pytest.approx(1.5)
    # three values a <= b <= c: (c - a) / 2
    assert stats.iqr([10.0, 30.0, 20.0]) == pytest.approx(10.0)
    assert stats.iqr([5.0]) == 0.0
