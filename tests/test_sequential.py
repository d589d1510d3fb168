"""Sequential rounds (pinsweep/analysis/sequential.py) proven with the stopping rule inside a seeded
simulation (pinsweep/analysis/sequential_sim.py): a reduced version of benchmarks/sequential_check.py
(300 sweeps a cell instead of 1,000), each rate allowed its own binomial error (two standard errors)."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from pinsweep.analysis import sequential
from pinsweep.analysis import sequential_sim as sim
from pinsweep.analysis.summarize import OVERALL, Effect, open_comparisons, summarize

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


# ------------------------------------------------------------------------- through the real summarizer


def _rows(y: np.ndarray, device: str = "cpu", pin_memory: bool = False):
    """Job rows of one simulated sweep y[config, round]: num_workers is the config (x pin_memory)."""
    configs, rounds = y.shape
    config, block = np.meshgrid(np.arange(configs), np.arange(rounds), indexing="ij")
    frame = pd.DataFrame(
        {
            "loader.num_workers": (config // 2 if pin_memory else config).ravel(),
            "train.repeat": block.ravel(),
            "status": "ok",
            "device": device,
            "images_per_s": np.exp(y.ravel()),
            "steady_s": 1.0,
            "data_wait_s": 0.05,
            "copy_s": 0.0,
            "compute_s": 0.95,
        }
    )
    if pin_memory:
        frame["loader.pin_memory"] = np.where(config.ravel() % 2 == 1, "true", "false")
    return frame


def test_the_summarizer_uses_the_look_boundary_the_simulation_proves():
    """A complete one-axis sweep at its 4th round: summary.csv's intervals are the estimate +- the same
    critical value as sequential_sim's (the family there is many-to-one, here with the effects too)."""
    plan = sequential.Plan()
    y = sim.simulate(np.zeros(4), 4, "iid", 1, np.random.default_rng(0))[0]
    stopping = sequential.Stopping(plan=plan.__dict__, rounds=4)
    summary, _ = summarize(_rows(y), stopping=stopping)
    fixed, _ = summarize(_rows(y))
    critical = sim.critical_values(4, plan, "sequential")[0][4 - plan.min_rounds]
    row = summary.iloc[1]
    half = (math.log(row["speedup_ci_high"]) - math.log(row["speedup_ci_low"])) / 2
    se = math.sqrt(((y - y.mean(1, keepdims=True) - y.mean(0) + y.mean()) ** 2).sum() / 9 * 2 / 4)
    assert half == pytest.approx(critical * se, rel=1e-6)
    assert (
        (summary["speedup_ci_high"] - summary["speedup_ci_low"])
        .iloc[1:]
        .gt((fixed["speedup_ci_high"] - fixed["speedup_ci_low"]).iloc[1:])
        .all()
    )  # wider than the fixed analysis: the looks are paid for
    assert summary["speedup_p"].isna().all()


def test_equivalence_reaches_both_tables_and_an_inactive_setting_stays_inactive():
    """On a quiet CPU: num_workers makes no difference (equivalent, resolved); pin_memory, whatever
    it measures, is inactive, never equivalent; on CUDA the same pin_memory numbers are equivalent."""
    y = sim.simulate(np.zeros(4), 6, "iid", 1, np.random.default_rng(2), scale=0.1)[0]
    stopping = sequential.Stopping(plan=sequential.Plan(max_rounds=6).__dict__, rounds=6, state="limit", final=True)
    summary, effects = summarize(_rows(y, pin_memory=True), stopping=stopping)
    overall = effects[effects["held_fixed"] == OVERALL].set_index("axis")
    assert overall.at["loader.num_workers", "effect"] == Effect.EQUIVALENT
    assert overall.at["loader.pin_memory", "effect"] == Effect.INACTIVE
    pinned = summary[summary["inactive"]]
    assert len(pinned) == 1 and pinned["equivalent"].eq(False).all() and pinned["resolved"].isna().all()
    assert summary["equivalent"].eq(True).sum() == 2 and summary["equivalence_margin"].eq(0.05).all()
    assert open_comparisons(summary, effects) == []
    _, on_gpu = summarize(_rows(y, device="cuda:0", pin_memory=True), stopping=stopping)
    on_gpu = on_gpu[on_gpu["held_fixed"] == OVERALL].set_index("axis")
    assert on_gpu.at["loader.pin_memory", "effect"] == Effect.EQUIVALENT


def test_an_open_comparison_is_named():
    y = sim.simulate(np.array([0.0, 0.03]), 3, "iid", 1, np.random.default_rng(3))[0]
    summary, effects = summarize(_rows(y), stopping=sequential.Stopping(plan=sequential.Plan().__dict__, rounds=3))
    assert open_comparisons(summary, effects) == [
        "loader.num_workers=1 vs the baseline",
        "loader.num_workers 0 -> 1 at (none)",
        "loader.num_workers 0 -> 1 at all (geometric mean)",
    ]


def test_the_report_says_no_difference_within_the_margin_and_why_the_sweep_stopped():
    from pinsweep.analysis.summarize import Tables
    from pinsweep.present.advice import advise
    from pinsweep.present.report import conclusion

    y = sim.simulate(np.zeros(4), 6, "iid", 1, np.random.default_rng(2), scale=0.1)[0]
    rows = _rows(y, device="cuda:0", pin_memory=True)
    stopping = sequential.Stopping(plan=sequential.Plan(max_rounds=6).__dict__, rounds=6, state="resolved", final=True)
    summary, effects = summarize(rows, stopping=stopping)
    said = " ".join(conclusion(Tables(summary, effects, rows, stopping)))
    assert "pin_memory makes no difference here (within ±5% at any num_workers" in said
    assert "The sweep stopped after 6 rounds (rounds=auto): every comparison was resolved." in said

    y = sim.simulate(np.array([0.0, 0.03]), 3, "iid", 1, np.random.default_rng(3))[0]
    stopping = sequential.Stopping(plan=sequential.Plan(max_rounds=3).__dict__, rounds=3, state="limit", final=True)
    summary, effects = summarize(_rows(y), stopping=stopping)
    stopping.open = open_comparisons(summary, effects)
    tables = Tables(summary, effects, _rows(y), stopping)
    said = " ".join(conclusion(tables))
    assert "The sweep stopped at its limit of rounds after 3 rounds with loader.num_workers=1 vs the baseline" in said
    # what would resolve it is said in rounds, the knob of this kind of sweep, never in repeats
    assert re.search(r"about (\d+) rounds \(hydra\.sweeper\.max_rounds=\1\) would resolve", said), said
    assert "train.repeat" not in said
    # the next sweep to settle it looks after every round too (train.repeat would be refused with rounds=auto)
    (settle,) = [c for c in advise(tables).commands if c.why.startswith("settle")]
    assert "hydra.sweeper.rounds=auto hydra.sweeper.max_rounds=" in settle.command
    assert "train.repeat" not in settle.command
