"""Efficiency and the verdict say how sure their ceiling is: a compute-only ceiling whose 95% interval is not
finite or wider than +-10%, or that a config beats by over 10%, is imprecise, and what rests on it is shown
as no finding in summary.csv, the terminal table and the report, with how to make it precise. Small fixed
rows, one config each, no stall unless asked."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pinsweep.analysis.summarize import Tables, ceiling_imprecise, read_summary, summarize, write_tables
from pinsweep.present import terminal
from pinsweep.present.advice import compute_share
from pinsweep.present.report import conclusion
from pinsweep.present.wording import table_cells


def _rows(ips: float, ceiling: float, ci_rel: float, wait_s: float = 0.02) -> pd.DataFrame:
    """Two repeats of one config at `ips` items/s, its compute-only ceiling timed to +-`ci_rel`."""
    return pd.DataFrame(
        [
            {
                "loader.num_workers": 0,
                "train.repeat": repeat,
                "status": "ok",
                "device": "cpu",
                "unit": "images",
                "throughput": ips,
                "steady_s": 1.0,
                "data_wait_s": wait_s,
                "copy_s": 0.0,
                "compute_s": 1.0 - wait_s,
                "compute_ceiling_ips": ceiling,
                "compute_ceiling_ci_rel": ci_rel,
                "loader_ceiling_ips": 5000.0,
                "loader_ceiling_ci_rel": 0.01,
            }
            for repeat in range(2)
        ]
    )


def _tables(ips: float, ceiling: float, ci_rel: float, wait_s: float = 0.02) -> Tables:
    rows = _rows(ips, ceiling, ci_rel, wait_s)
    return Tables(*summarize(rows), rows)


@pytest.mark.parametrize(
    ("ci_rel", "efficiency", "imprecise"),
    [
        (0.02, 0.95, False),  # the ceiling's default target: a finding
        (0.10, 1.10, False),  # at both bounds, still precise
        (math.inf, 0.95, True),  # timed over 2 steps: no interval at all
        (0.23, 0.5, True),  # wider than +-10%: cannot place a config on either side of the 90% line
        (0.01, 3.23, True),  # beaten by over 10%: the ceiling itself was mismeasured
        (math.nan, 0.5, False),  # rows from before the interval was recorded: judged by the second test only
        (math.nan, 1.5, True),
        (math.inf, math.nan, False),  # no efficiency: nothing rests on the ceiling
    ],
)
def test_the_rule(ci_rel, efficiency, imprecise):
    assert ceiling_imprecise(ci_rel, efficiency) is imprecise


def test_an_infinite_interval_and_323_percent_are_no_compute_bound_finding(capsys):
    tables = _tables(ips=323.0, ceiling=100.0, ci_rel=math.inf)
    record = tables.summary.iloc[0]
    assert record["efficiency"] == pytest.approx(3.23)  # the number is kept
    assert record["compute_ceiling_ci_rel"] == math.inf and record["loader_ceiling_ci_rel"] == 0.01
    assert bool(record["ceiling_imprecise"]) and record["verdict"] == "ceiling imprecise"  # never compute-bound

    cells = table_cells(tables.summary, tables.rows).iloc[0]
    assert (cells["efficiency"], cells["verdict"]) == ("323% (imprecise)", "ceiling imprecise")

    terminal.print_tables(tables)
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "323% (imprecise)" in printed
    assert "compute-only ceiling imprecise for the single config (its 95% interval is not finite and the config " in (
        printed
    )
    assert "runs at 323% of it)" in printed and "raise train.ceiling_steps or train.ceiling_budget_s" in printed

    said = " ".join(conclusion(tables))
    assert "compute-bound" not in said and "It reaches" not in said
    assert (
        "It hardly waits for data or copies, but its compute-only ceiling is imprecise (its 95% interval is not "
        "finite and the config runs at 323% of it), so neither its efficiency (323%) nor whether compute or "
        "contention for the CPU limits it is a finding: raise train.ceiling_steps or train.ceiling_budget_s for "
        "a precise ceiling."
    ) in said


def test_a_wide_interval_keeps_a_stall_verdict_but_not_its_efficiency():
    tables = _tables(ips=50.0, ceiling=100.0, ci_rel=0.23, wait_s=0.3)
    record = tables.summary.iloc[0]
    assert bool(record["ceiling_imprecise"]) and record["verdict"] == "loader-bound"  # measured in training itself
    assert table_cells(tables.summary).iloc[0]["efficiency"] == "50% (imprecise)"
    assert (
        "It is loader-bound: 30% of its step time goes to waiting for the next batch, so the input pipeline is "
        "the limit; its compute-only ceiling is imprecise (its 95% interval is ±23%), so its efficiency (50%) is "
        "not a finding"
    ) in " ".join(conclusion(tables))
    assert math.isnan(compute_share(record))  # advice cites no contention from it


def test_a_precise_ceiling_is_a_finding():
    tables = _tables(ips=95.0, ceiling=100.0, ci_rel=0.02)
    record = tables.summary.iloc[0]
    assert not record["ceiling_imprecise"] and record["verdict"] == "compute-bound"
    assert table_cells(tables.summary).iloc[0]["efficiency"] == "95%"
    assert "It reaches 95% of the compute-only ceiling and is compute-bound" in " ".join(conclusion(tables))


def test_the_column_reads_back_and_an_older_summary_is_judged_by_the_same_rule(tmp_path):
    tables = _tables(ips=323.0, ceiling=100.0, ci_rel=math.inf)
    write_tables(tables, tmp_path)
    summary = read_summary(tmp_path / "summary.csv")
    assert summary["ceiling_imprecise"].tolist() == [True] and summary["compute_ceiling_ci_rel"].tolist() == [math.inf]
    # summary.csv from before the column: compute-bound at 323% of its ceiling, as 0.1.0 would have said
    older = summary.drop(columns=["ceiling_imprecise"]).assign(verdict="compute-bound")
    judged = Tables(older, tables.effects).summary.iloc[0]
    assert bool(judged["ceiling_imprecise"]) and judged["verdict"] == "ceiling imprecise"
