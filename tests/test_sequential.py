"""Sequential rounds (pinsweep/analysis/sequential.py) proven with the stopping rule inside a seeded
simulation (pinsweep/analysis/sequential_sim.py): a reduced version of benchmarks/sequential_check.py
(300 sweeps a cell instead of 1,000), each rate allowed its own binomial error (two standard errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pinsweep.analysis import sequential
from pinsweep.analysis import sequential_sim as sim

SWEEPS = 300


def allowance(rate: float, count: int) -> float:
    return 2 * math.sqrt(rate * (1 - rate) / count)


@pytest.mark.parametrize("machine", sim.MACHINES)
@pytest.mark.parametrize("configs", [2, 6, 20])
def test_null_sweeps_stopped_by_the_rule_rarely_call_anything_significant(machine, configs):
    result = sim.run_cell(machine, sim.scenario("null", configs), SWEEPS, np.random.default_rng(configs))
    assert result.any_false_significant <= 0.05 + allowance(0.05, SWEEPS)
    assert result.coverage >= 0.93
    assert sequential.MIN_ROUNDS <= result.mean_rounds <= sequential.MAX_ROUNDS


@pytest.mark.parametrize("machine", sim.MACHINES)
@pytest.mark.parametrize("configs", [2, 6])
def test_a_difference_of_the_margin_is_rarely_called_equivalent_and_is_covered(machine, configs):
    result = sim.run_cell(machine, sim.scenario("margin", configs), SWEEPS, np.random.default_rng(10 + configs))
    assert result.equivalent_beyond_margin <= 0.05 + allowance(0.05, result.comparisons)
    assert result.coverage >= 0.93
    assert result.wrong_sign <= 0.025  # a wrong-way claim is a type III error: within the 5%


def test_a_clear_answer_stops_early_and_every_comparison_is_resolved():
    result = sim.run_cell("iid", sim.scenario("clear", 6), SWEEPS, np.random.default_rng(3))
    assert result.resolved == 1.0 and result.mean_rounds < 3.5
    assert result.coverage >= 0.93


def test_a_null_comparison_becomes_equivalent_when_the_noise_allows_it():
    """Equivalence is a finding, not a lack of one: on a 1% machine a null A/B sweep ends `equivalent`,
    before the limit; a true 10% difference there is found, never called equivalent."""
    null = sim.run_cell("iid", np.zeros(2), SWEEPS, np.random.default_rng(4), scale=0.2)
    assert null.equivalent_within >= 0.9 and null.mean_rounds < sequential.MAX_ROUNDS
    real = sim.run_cell("iid", np.array([0.0, math.log(1.1)]), SWEEPS, np.random.default_rng(5), scale=0.2)
    assert real.found >= 0.95 and real.equivalent_beyond_margin == 0.0


@pytest.mark.parametrize("machine", sim.MACHINES)
def test_the_naive_stop_when_significant_fails_the_same_check(machine):
    """The fixed intervals read after every round, stopped at the first `significant`."""
    result = sim.run_cell(machine, sim.scenario("null", 6), SWEEPS, np.random.default_rng(6), rule="naive")
    assert result.any_false_significant > 0.05 + allowance(0.05, SWEEPS)


@pytest.mark.parametrize("configs", [2, 6])
def test_the_boundaries_spend_exactly_the_planned_error_at_each_look(configs):
    """An independent simulation (fresh seed, the block fit in closed form) crosses the boundaries with
    the cumulative probability that the spending function allows, look by look."""
    plan = sequential.Plan()
    critical, _ = sim.critical_values(configs, plan, "sequential")
    rounds = list(range(plan.min_rounds, plan.max_rounds + 1))
    y = np.random.default_rng(99).normal(size=(40_000, configs, plan.max_rounds))
    crossed = np.zeros(len(y), dtype=bool)
    for look, n in enumerate(rounds):
        table = y[:, :, :n]
        means = table.mean(axis=2)
        residual = table - means[:, :, None] - table.mean(axis=1)[:, None, :] + table.mean(axis=(1, 2))[:, None, None]
        se = np.sqrt((residual**2).sum(axis=(1, 2)) / ((configs - 1) * (n - 1)) * 2 / n)
        crossed |= np.abs((means[:, 1:] - means[:, :1]) / se[:, None]).max(axis=1) > critical[look]
        planned = sequential.spent(n / plan.max_rounds)
        assert crossed.mean() <= planned + 3 * math.sqrt(planned * (1 - planned) / len(y)) + 1e-4
    assert crossed.mean() == pytest.approx(0.05, abs=0.004)


def test_a_final_look_spends_all_that_is_left_and_later_boundaries_never_change_earlier_ones():
    config, block = sim.complete_design(4, 5)
    family = sim.many_to_one(4)
    plan = sequential.Plan(max_rounds=8)
    early = sequential.boundaries(config[block < 3], block[block < 3], 4, family, [2, 3], plan.fractions([2, 3], False))
    later = sequential.boundaries(config, block, 4, family, [2, 3, 4, 5], plan.fractions([2, 3, 4, 5], False))
    assert early == pytest.approx(later[:2])
    final = sequential.boundaries(config, block, 4, family, [2, 3, 4, 5], plan.fractions([2, 3, 4, 5], True))
    assert final[-1] < later[-1]  # stopping early at a budget: the last look gets the rest of the 5%


def test_the_plan_refuses_what_cannot_work():
    with pytest.raises(ValueError, match="min_rounds"):
        sequential.Plan(min_rounds=1).check()
    with pytest.raises(ValueError, match="max_rounds"):
        sequential.Plan(min_rounds=3, max_rounds=2).check()
    with pytest.raises(ValueError, match="margin"):
        sequential.Plan(margin=5).check()
