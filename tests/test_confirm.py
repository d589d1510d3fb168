"""Auto-tune's confirmation on fixed data: which configs are re-run, and what the rounds decide."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pinsweep.autotune.confirm import Outcome, Trial, judge, plan, read_outcome, sentences, write_outcome
from pinsweep.record import NESTED_SWEEP_MARK, job_dirs, write_row

FIXED = ["experiment=autotune", "model=tiny"]
CONFIGURED = {"loader.num_workers": "0", "loader.pin_memory": "false", "loader.prefetch_factor": "null"}


def _trial(workers: int, pin: bool, ips: float, prefetch: int | None = None) -> Trial:
    drawn = [f"loader.num_workers={workers}", f"loader.pin_memory={pin}"]  # Optuna writes True/False
    drawn += [f"loader.prefetch_factor={prefetch}"] if prefetch else []
    return Trial([*drawn, *FIXED], ips)


TRIALS = [
    _trial(2, False, 300.0, prefetch=2),
    _trial(0, False, 900.0),  # the defaults, drawn by the search: never a candidate against themselves
    _trial(4, True, 500.0, prefetch=4),
    _trial(2, False, 450.0, prefetch=2),  # the same config as the first: one candidate
    _trial(8, False, math.nan, prefetch=2),  # failed: never a candidate
    _trial(1, True, 400.0, prefetch=8),
]


def test_plan_takes_the_best_distinct_configs_and_the_defaults_in_rounds():
    confirmation = plan(TRIALS, FIXED, CONFIGURED, top=2, repeats=3)
    assert confirmation.searched == ["loader.num_workers", "loader.pin_memory", "loader.prefetch_factor"]
    assert confirmation.baseline == CONFIGURED
    assert confirmation.candidates == [
        {"loader.num_workers": "4", "loader.pin_memory": "true", "loader.prefetch_factor": "4"},
        {"loader.num_workers": "2", "loader.pin_memory": "false", "loader.prefetch_factor": "2"},
    ]
    assert len(confirmation.jobs) == 9
    for r in range(3):  # every round runs each config once, the defaults as an untuned job would
        in_round = [job for job in confirmation.jobs if job[-1] == f"train.repeat={r}"]
        assert sorted(map(tuple, in_round)) == sorted(
            [
                (*FIXED, f"train.repeat={r}"),
                (
                    *FIXED,
                    "loader.num_workers=4",
                    "loader.pin_memory=true",
                    "loader.prefetch_factor=4",
                    f"train.repeat={r}",
                ),
                (
                    *FIXED,
                    "loader.num_workers=2",
                    "loader.pin_memory=false",
                    "loader.prefetch_factor=2",
                    f"train.repeat={r}",
                ),
            ]
        )
    assert confirmation.jobs[:3] == [job for job in confirmation.jobs if job[-1] == "train.repeat=0"]


def _row(workers: int, ips: float, repeat: int, status: str = "ok") -> dict:
    row = {
        "loader.num_workers": workers,
        "loader.pin_memory": False,
        "loader.prefetch_factor": None if workers == 0 else 2,
        "train.repeat": repeat,
        "status": status,
        "device": "cpu",
    }
    if status == "ok":
        row.update(images_per_s=ips, steady_s=2.0, data_wait_s=0.1, copy_s=0.0, compute_s=1.9, compute_ceiling_ips=ips)
    return row


def _two_candidates() -> tuple:
    trials = [_trial(2, False, 800.0, prefetch=2), _trial(4, False, 900.0, prefetch=2)]
    configured = dict(CONFIGURED)
    return plan(trials, FIXED, configured, top=2, repeats=3), {
        **CONFIGURED,
        "loader.num_workers": "4",
        "loader.prefetch_factor": "2",
    }


def test_a_config_faster_in_every_round_is_confirmed_over_the_search_pick():
    confirmation, search_pick = _two_candidates()
    # rounds drift (x0.8, x1.2), workers=2 is 2x the defaults in each, workers=4 no faster than them
    rows = pd.DataFrame(
        [
            _row(w, base * f, r)
            for r, f in enumerate([1.0, 0.8, 1.2])
            for w, base in [(0, 100.0), (2, 200.0), (4, 101.0)]
        ]
    )
    outcome = judge(rows, confirmation, search_pick, 900.0)
    assert not outcome.defaults_hold and not outcome.agree
    assert outcome.confirmed_pick["loader.num_workers"] == "2"
    assert outcome.speedup == pytest.approx(2.0) and outcome.speedup_ci_low > 1.5
    assert outcome.confirmed_in_search == pytest.approx(101.0 * (0.8 * 1.2) ** (1 / 3))
    said = " ".join(sentences(outcome))
    assert "Confirmed pick: num_workers=2" in said and "They differ" in said


def test_when_nothing_beats_the_defaults_they_hold():
    confirmation, search_pick = _two_candidates()
    noise = {
        (0, 0): 1.0,
        (2, 0): 1.02,
        (4, 0): 0.97,
        (0, 1): 0.99,
        (2, 1): 0.98,
        (4, 1): 1.03,
        (0, 2): 1.01,
        (2, 2): 1.0,
        (4, 2): 1.0,
    }
    rows = pd.DataFrame([_row(w, 100.0 * f, r) for (w, r), f in noise.items()])
    outcome = judge(rows, confirmation, search_pick, 900.0)
    assert outcome.defaults_hold and outcome.confirmed_pick == confirmation.baseline
    assert outcome.speedup_ci_low < 1 < outcome.speedup_ci_high
    assert "Defaults hold" in " ".join(sentences(outcome))


def test_defaults_that_never_ran_are_said_not_compared():
    confirmation, search_pick = _two_candidates()
    rows = pd.DataFrame([_row(0, 0.0, r, status="failed") for r in range(3)] + [_row(2, 200.0, r) for r in range(3)])
    outcome = judge(rows, confirmation, search_pick, 900.0)
    assert outcome.defaults_hold and outcome.failed_jobs == 3
    assert outcome.note.startswith("no confirmation")


def test_outcome_file_round_trips(tmp_path):
    outcome = Outcome(
        {"loader.num_workers": "2"},
        500.0,
        {"loader.num_workers": "0"},
        [{"loader.num_workers": "2"}],
        3,
        {"loader.num_workers": "2"},
        False,
        True,
        speedup=1.5,
        speedup_ci_low=1.2,
        speedup_ci_high=1.9,
    )
    write_outcome(tmp_path, outcome)
    back = read_outcome(tmp_path)
    assert math.isnan(back.speedup_p) and math.isnan(back.images_per_s)  # nan is written as null, read as nan
    back.speedup_p = back.images_per_s = back.confirmed_in_search = outcome.speedup_p = outcome.images_per_s = 0.0
    outcome.confirmed_in_search = 0.0
    assert back == outcome
    assert read_outcome(tmp_path / "none") is None


def test_a_nested_sweep_is_not_jobs_of_the_sweep_around_it(tmp_path):
    write_row(tmp_path / "0", {"status": "ok"})
    write_row(tmp_path / "confirm" / "0", {"status": "ok"})
    assert job_dirs(tmp_path) == [tmp_path / "0", tmp_path / "confirm" / "0"]
    (tmp_path / "confirm" / NESTED_SWEEP_MARK).write_text("")
    assert job_dirs(tmp_path) == [tmp_path / "0"]
    assert job_dirs(tmp_path / "confirm") == [tmp_path / "confirm" / "0"]


def test_the_confirmation_speaks_the_rows_unit(tmp_path):
    confirmation, search_pick = _two_candidates()
    rows = pd.DataFrame(
        [
            {**_row(w, base * f, r), "unit": "tokens", "throughput": base * f}
            for r, f in enumerate([1.0, 0.8, 1.2])
            for w, base in [(0, 100.0), (2, 200.0), (4, 101.0)]
        ]
    ).drop(columns="images_per_s")  # a token pipeline's row has no images_per_s
    outcome = judge(rows, confirmation, search_pick, 900.0)
    said = " ".join(sentences(outcome))
    assert outcome.unit == "tokens" and "images" not in said
    assert "prefetch_factor=2 at 900 tokens/s." in said and "one draw of 900 tokens/s in the search" in said
    assert "Confirmed pick: num_workers=2, pin_memory=false, prefetch_factor=2 at 197 tokens/s" in said
    assert "ran at 100 tokens/s over the rounds" in said  # geometric means over the drifting rounds
    write_outcome(tmp_path, outcome)
    assert read_outcome(tmp_path).unit == "tokens"
    older = (tmp_path / "autotune.yaml").read_text().replace("unit: tokens\n", "")  # written before the unit
    (tmp_path / "autotune.yaml").write_text(older)
    assert read_outcome(tmp_path).unit == "images"
