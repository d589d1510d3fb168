"""The summarizer on small hand-built rows, with values computed by hand; and its command line."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from omegaconf import OmegaConf

from pinsweep import summarize as summarize_command
from pinsweep.analysis.summarize import OVERALL, SummaryError, find_axes, summarize, verdict
from pinsweep.record import CONFIG_GROUPS, flatten_config, write_row
from pinsweep.sweep.results import summarize_folder

# images/s of three repeats (rounds) per (pin_memory, num_workers); medians 102, 200, 101, 202
GRID_IPS = {
    (False, 0): [100.0, 104.0, 102.0],
    (False, 2): [200.0, 210.0, 190.0],
    (True, 0): [101.0, 99.0, 103.0],
    (True, 2): [198.0, 202.0, 206.0],
}


def _row(pin=False, workers=0, ips=100.0, repeat=0, status="ok", **extra) -> dict:
    """One job row with the columns summarize() reads; constant config columns are not axes."""
    row = {
        "job.num": extra.pop("job_num", 0),
        "model.name": "tiny",
        "data.name": "synthetic",
        "loader.batch_size": 256,
        "loader.pin_memory": pin,
        "loader.num_workers": workers,
        "loader.prefetch_factor": None,
        "train.repeat": repeat,
        "status": status,
        "error": "",
        "env.hostname": f"host-{repeat}",  # varies, but is not a config column
        "device": "cpu",
    }
    if status == "ok":
        row.update(
            images_per_s=ips,
            epoch_times_s=json.dumps([9.0, 1.0, 1.2]),
            steady_s=2.0,
            data_wait_s=0.1,
            copy_s=0.0,
            compute_s=1.8,
            compute_ceiling_ips=ips * 1.05,
            loader_ceiling_ips=5000.0,
            test_accuracy=50.0,
        )
    row.update(extra)
    return row


def _grid(**extra) -> pd.DataFrame:
    rows, job = [], 0
    for repeat in range(3):  # repeats interleaved across configs, as a sweep runs them
        for (pin, workers), values in GRID_IPS.items():
            rows.append(_row(pin, workers, values[repeat], repeat, job_num=job, **extra))
            job += 1
    return pd.DataFrame(rows)


def paired(treatment: tuple, control: tuple) -> float:
    """The block design's ratio of two configs of the grid: the geometric mean of their per-round ratios."""
    ratios = [t / c for t, c in zip(GRID_IPS[treatment], GRID_IPS[control])]
    return math.prod(ratios) ** (1 / len(ratios))


def _group(summary: pd.DataFrame, pin: str, workers: str) -> pd.Series:
    match = summary[(summary["loader.pin_memory"] == pin) & (summary["loader.num_workers"] == workers)]
    assert len(match) == 1
    return match.iloc[0]


# ------------------------------------------------------------------------------------------------ axes


def test_axes_are_the_config_columns_that_vary():
    assert find_axes(_grid()) == ["loader.pin_memory", "loader.num_workers"]


def test_a_new_axis_is_found_with_no_code_change():
    rows = pd.DataFrame([_row(workers=2, ips=v, **{"loader.prefetch_factor": p}) for p, v in [(2, 100.0), (4, 120.0)]])
    assert find_axes(rows) == ["loader.prefetch_factor"]
    summary, _ = summarize(rows)
    assert summary["loader.prefetch_factor"].tolist() == ["2", "4"]
    # the schema's default (null) was not swept, so the lowest level is the baseline
    assert summary["baseline"].tolist() == [True, False]
    assert summary["speedup"].tolist() == pytest.approx([1.0, 1.2])


def test_replicate_index_and_environment_are_not_axes():
    rows = pd.DataFrame([_row(repeat=r, ips=100.0 + r) for r in range(3)])
    assert find_axes(rows) == []
    summary, effects = summarize(rows)
    assert len(summary) == 1
    assert summary.loc[0, "n"] == 3
    assert summary.loc[0, "ips_median"] == 101.0
    assert effects.empty


def test_values_spelled_differently_are_one_level():
    # a CSV round trip turns ints into floats once a column holds a NaN; 2 and 2.0 are one group
    rows = pd.DataFrame([_row(workers=2, ips=100.0), _row(workers=2.0, ips=110.0), _row(workers=0, ips=50.0)])
    summary, _ = summarize(rows)
    assert summary["loader.num_workers"].tolist() == ["0", "2"]
    assert summary["n"].tolist() == [1, 2]


# ------------------------------------------------------------------------------------------ statistics


def test_grid_gives_one_group_per_config_in_axis_order():
    summary, _ = summarize(_grid())
    assert len(summary) == 4
    assert list(zip(summary["loader.pin_memory"], summary["loader.num_workers"])) == [
        ("false", "0"),
        ("false", "2"),
        ("true", "0"),
        ("true", "2"),
    ]
    assert summary["n"].tolist() == [3, 3, 3, 3]
    assert summary["n_failed"].tolist() == [0, 0, 0, 0]


def test_group_medians_spread_and_moments():
    summary, _ = summarize(_grid())
    group = _group(summary, "false", "2")  # 200, 210, 190
    assert group["ips_median"] == 200.0
    assert group["ips_iqr"] == pytest.approx(10.0)  # (210 - 190) / 2 with linear interpolation
    assert group["ips_mean"] == pytest.approx(200.0)
    assert group["ips_std"] == pytest.approx(10.0)
    assert (group["ips_min"], group["ips_max"]) == (190.0, 210.0)
    # Student's t on log images/s: the geometric mean and an interval that is not just [min, max]
    logs = [math.log(v) for v in (200.0, 210.0, 190.0)]
    centre, spread = sum(logs) / 3, pd.Series(logs).std()
    assert group["ips_geomean"] == pytest.approx(math.exp(centre))
    assert group["ips_ci_low"] == pytest.approx(math.exp(centre - 4.302653 * spread / math.sqrt(3)), rel=1e-5)
    assert group["ips_ci_high"] == pytest.approx(math.exp(centre + 4.302653 * spread / math.sqrt(3)), rel=1e-5)
    assert group["ips_ci_low"] < 190.0 and group["ips_ci_high"] > 210.0  # 3 values: wider than their range
    assert group["test_accuracy"] == 50.0
    assert group["loader_ceiling_ips"] == 5000.0


def test_epoch_statistics_leave_out_each_runs_first_epoch():
    rows = pd.DataFrame(
        [
            _row(ips=100.0, epoch_times_s=json.dumps([9.0, 1.0, 1.2])),
            _row(ips=100.0, epoch_times_s=json.dumps([8.0, 1.1, 1.3]), repeat=1),
            _row(ips=100.0, epoch_times_s=json.dumps([7.0, 0.9, 1.0]), repeat=2),
        ]
    )
    group = summarize(rows)[0].iloc[0]
    # pooled steady epochs: 1.0, 1.2, 1.1, 1.3, 0.9, 1.0
    assert group["epoch_s_median"] == pytest.approx(1.05)
    assert group["epoch_s_mean"] == pytest.approx(6.5 / 6)
    assert (group["epoch_s_min"], group["epoch_s_max"]) == (0.9, 1.3)
    assert group["epoch_s_std"] == pytest.approx(pd.Series([1.0, 1.2, 1.1, 1.3, 0.9, 1.0]).std())


def test_a_single_epoch_run_keeps_its_epoch():
    group = summarize(pd.DataFrame([_row(epoch_times_s=json.dumps([2.5]))]))[0].iloc[0]
    assert group["epoch_s_median"] == 2.5


def test_speedup_against_the_default_baseline():
    summary, _ = summarize(_grid())
    # the schema's defaults: pin_memory=false, num_workers=0
    assert summary["baseline"].tolist() == [True, False, False, False]
    # each config against the baseline within each repeat round, averaged on the log scale
    base = (False, 0)
    expected = [1.0, paired((False, 2), base), paired((True, 0), base), paired((True, 2), base)]
    assert summary["speedup"].tolist() == pytest.approx(expected)
    assert pd.isna(summary.loc[0, "significant"])  # the baseline is not compared with itself
    workers = _group(summary, "false", "2")
    assert workers["significant"] is True
    assert 1.7 < workers["speedup_ci_low"] < workers["speedup"] < workers["speedup_ci_high"] < 2.3
    assert workers["speedup_p"] < 0.001
    pinned = _group(summary, "true", "0")  # 99..103 against 100..104: no real difference (and inactive)
    assert pinned["significant"] is False and pinned["inactive"]
    assert pinned["speedup_ci_low"] < 1 < pinned["speedup_ci_high"]


def test_speedup_against_a_chosen_baseline():
    summary, _ = summarize(_grid(), baseline="loader.num_workers=2")
    assert _group(summary, "false", "2")["baseline"]
    assert summary["baseline"].sum() == 1
    assert _group(summary, "false", "0")["speedup"] == pytest.approx(paired((False, 0), (False, 2)))
    summary, _ = summarize(_grid(), baseline="loader.pin_memory=true,loader.num_workers=2")
    assert _group(summary, "true", "2")["baseline"]
    assert _group(summary, "false", "2")["speedup"] == pytest.approx(paired((False, 2), (True, 2)))


@pytest.mark.parametrize(
    ("baseline", "words"),
    [("loader.batch_size=64", ["loader.batch_size", "not a swept axis"]), ("loader.num_workers=8", ["0, 2"])],
)
def test_a_baseline_outside_the_sweep_is_refused(baseline, words):
    with pytest.raises(SummaryError) as raised:
        summarize(_grid(), baseline=baseline)
    for word in words:
        assert word in str(raised.value)


def test_one_run_per_config_has_no_significance():
    rows = pd.DataFrame([_row(workers=0, ips=100.0), _row(workers=2, ips=150.0, job_num=1)])
    summary, effects = summarize(rows)
    assert summary["speedup"].tolist() == pytest.approx([1.0, 1.5])
    assert summary["significant"].isna().all()
    assert summary["speedup_ci_low"].isna().all()
    overall = effects[effects["held_fixed"] == OVERALL].iloc[0]
    assert overall["effect"] == "unknown: needs train.repeat >= 2"


def test_failed_rows_are_listed_but_left_out_of_the_statistics():
    rows = _grid()
    failed = _row(True, 2, status="failed", error="RuntimeError: boom", job_num=12)
    missing = _row(True, 2, status="missing", error="job folder has no row.csv", job_num=None, **{"job.dir": "/s/13"})
    rows = pd.concat([rows, pd.DataFrame([failed, missing])], ignore_index=True)
    summary, _ = summarize(rows)
    assert len(summary) == 4
    group = _group(summary, "true", "2")
    assert (group["n"], group["n_failed"]) == (3, 2)
    assert group["ips_median"] == 202.0  # as without the failures
    assert "job 12 failed: RuntimeError: boom" in group["failures"]
    assert "job 13 missing: job folder has no row.csv" in group["failures"]
    assert _group(summary, "false", "0")["failures"] == ""


def test_a_config_whose_every_run_failed_still_has_a_row():
    rows = pd.concat(
        [_grid(), pd.DataFrame([_row(False, 4, status="oom", error="OutOfMemoryError: x", job_num=20)])],
        ignore_index=True,
    )
    summary, _ = summarize(rows)
    group = _group(summary, "false", "4")
    assert (group["n"], group["n_failed"]) == (0, 1)
    assert math.isnan(group["ips_median"]) and math.isnan(group["speedup"])
    assert group["verdict"] == ""
    assert "job 20 oom" in group["failures"]


def test_a_sweep_where_every_job_failed_is_still_summarized():
    rows = pd.DataFrame([_row(workers=w, status="invalid", error="DatasetUnavailable: x", job_num=w) for w in (0, 2)])
    summary, _ = summarize(rows)
    assert summary["n"].tolist() == [0, 0]
    assert summary["n_failed"].tolist() == [1, 1]


# --------------------------------------------------------------------------------------------- verdicts


def test_time_fractions_and_efficiency():
    rows = pd.DataFrame(
        [
            _row(ips=100.0, steady_s=2.0, data_wait_s=0.5, copy_s=0.1, compute_s=1.2, compute_ceiling_ips=200.0),
            _row(ips=120.0, steady_s=4.0, data_wait_s=0.4, copy_s=0.0, compute_s=3.0, compute_ceiling_ips=300.0),
            _row(ips=80.0, steady_s=1.0, data_wait_s=0.3, copy_s=0.2, compute_s=0.5, compute_ceiling_ips=250.0),
        ]
    )
    group = summarize(rows)[0].iloc[0]
    assert group["data_wait_frac"] == pytest.approx(0.25)  # median of 0.25, 0.1, 0.3
    assert group["copy_frac"] == pytest.approx(0.05)  # median of 0.05, 0, 0.2
    assert group["compute_frac"] == pytest.approx(0.6)  # median of 0.6, 0.75, 0.5
    assert group["compute_ceiling_ips"] == 250.0
    assert group["efficiency"] == pytest.approx(100 / 250)
    assert group["verdict"] == "loader-bound"


@pytest.mark.parametrize(
    ("ceiling", "wait", "copy", "expected"),
    [
        (105.0, 0.05, 0.0, "compute-bound"),  # efficiency 0.95: nothing in the input path to gain
        (105.0, 0.5, 0.0, "loader-bound"),  # near its ceiling, yet half the step waits: never compute-bound
        (200.0, 0.3, 0.05, "loader-bound"),
        (200.0, 0.02, 0.3, "copy-bound"),
        (200.0, 0.05, 0.05, "contended"),  # slower than its ceiling, yet no stall: competing for cores
    ],
)
def test_verdict_of_a_group(ceiling, wait, copy, expected):
    row = _row(ips=100.0, steady_s=1.0, data_wait_s=wait, copy_s=copy, compute_ceiling_ips=ceiling)
    assert summarize(pd.DataFrame([row]))[0].loc[0, "verdict"] == expected


@pytest.mark.parametrize(
    ("efficiency", "wait", "copy", "expected"),
    [
        (0.9, 0.05, 0.05, "compute-bound"),
        (0.95, 0.18, 0.0, "loader-bound"),  # the verdict cannot contradict the breakdown
        (0.89, 0.1, 0.05, "loader-bound"),
        (0.89, 0.1, 0.1, "loader-bound"),
        (0.5, 0.09, 0.1, "copy-bound"),
        (0.5, 0.09, 0.09, "contended"),
        (math.nan, 0.05, 0.0, "compute-bound"),  # no ceiling measured and no stall
        (math.nan, 0.2, 0.0, "loader-bound"),
        (math.nan, math.nan, math.nan, ""),
    ],
)
def test_verdict_thresholds(efficiency, wait, copy, expected):
    assert verdict(efficiency, wait, copy) == expected


# ------------------------------------------------------------------------------------ notes and effects


def test_pin_memory_on_a_cpu_is_noted_as_inactive():
    summary, _ = summarize(_grid())
    assert (summary["note"] == summary.loc[0, "note"]).all()
    assert "loader.pin_memory" in summary.loc[0, "note"]
    assert "inactive" in summary.loc[0, "note"]
    summary, _ = summarize(_grid(device="cuda:0"))
    assert (summary["note"] == "").all()
    rows = _grid()
    rows = rows[rows["loader.pin_memory"] == False]  # noqa: E712
    assert (summarize(rows)[0]["note"] == "").all()  # pin_memory not swept: nothing to say


def test_effects_hold_the_other_axes_fixed():
    _, effects = summarize(_grid())
    workers = effects[effects["axis"] == "loader.num_workers"]
    assert set(workers["level"]) == {"2"} and set(workers["reference"]) == {"0"}
    per_stratum = workers.set_index("held_fixed")
    at_false, at_true = paired((False, 2), (False, 0)), paired((True, 2), (True, 0))
    assert per_stratum.loc["loader.pin_memory=false", "ratio"] == pytest.approx(at_false)
    assert per_stratum.loc["loader.pin_memory=true", "ratio"] == pytest.approx(at_true)
    overall = per_stratum.loc[OVERALL]
    assert overall["ratio"] == pytest.approx(math.sqrt(at_false * at_true))
    # averaging two strata halves the variance: the overall interval is narrower than either stratum's
    assert per_stratum.iloc[:2]["ci_low"].min() < overall["ci_low"] < overall["ratio"] < overall["ci_high"]
    assert overall["ci_high"] < per_stratum.iloc[:2]["ci_high"].max()
    assert overall["effect"] == "faster"

    pinned = effects[effects["axis"] == "loader.pin_memory"].set_index("held_fixed")
    assert pinned.loc["loader.num_workers=0", "ratio"] == pytest.approx(paired((True, 0), (False, 0)))
    assert pinned.loc["loader.num_workers=2", "ratio"] == pytest.approx(paired((True, 2), (False, 2)))
    assert (pinned["effect"] == "none: inactive without an accelerator").all()
    assert len(effects) == 6  # per axis: two strata and the overall average


def test_effects_on_an_accelerator_judge_significance():
    _, effects = summarize(_grid(device="cuda:0"))
    pinned = effects[(effects["axis"] == "loader.pin_memory") & (effects["held_fixed"] == OVERALL)]
    assert pinned["effect"].tolist() == ["none: not significant"]
    slower = _grid(device="cuda:0")
    slower.loc[slower["loader.num_workers"] == 2, "images_per_s"] /= 4  # workers now cost a lot
    _, effects = summarize(slower)
    workers = effects[(effects["axis"] == "loader.num_workers") & (effects["held_fixed"] == OVERALL)]
    assert workers["effect"].tolist() == ["slower"]


def test_no_rows_is_an_error():
    with pytest.raises(SummaryError, match="no job rows"):
        summarize(pd.DataFrame())


# ------------------------------------------------------------------------------------ files and the CLI


@pytest.fixture
def full_config(compose_cfg):
    return compose_cfg("data=synthetic", "model=tiny")


def _write_sweep(sweep_dir, full_config, statuses=("ok", "ok", "ok", "ok")):
    """Job folders as a sweep leaves them: .hydra/config.yaml and row.csv, every config key a column."""
    configs = [(pin, workers) for pin in (False, True) for workers in (0, 2)]
    for job, ((pin, workers), status) in enumerate(zip(configs, statuses)):
        cfg = full_config.copy()
        cfg.loader.pin_memory, cfg.loader.num_workers = pin, workers
        job_dir = sweep_dir / str(job)
        (job_dir / ".hydra").mkdir(parents=True)
        OmegaConf.save(cfg, job_dir / ".hydra" / "config.yaml")
        if status == "missing":
            continue
        row = {"job.num": job, "status": status, "error": "" if status == "ok" else "RuntimeError: boom"}
        row.update(flatten_config(OmegaConf.masked_copy(cfg, list(CONFIG_GROUPS))))
        if status == "ok":
            metrics = _row(ips=GRID_IPS[(pin, workers)][0])
            row.update({k: v for k, v in metrics.items() if k not in row and "." not in k})
        write_row(job_dir, row)


def _read_summary(sweep_dir) -> pd.DataFrame:
    """summary.csv indexed by (pin_memory, num_workers), as pandas reads the values back."""
    summary = pd.read_csv(sweep_dir / "summary.csv")
    return summary.set_index(["loader.pin_memory", "loader.num_workers"]).sort_index()


def test_cli_writes_the_summary_and_the_effects(tmp_path, full_config, capsys):
    _write_sweep(tmp_path, full_config)
    assert summarize_command.main([str(tmp_path)]) == 0
    summary = _read_summary(tmp_path)
    assert summary.index.tolist() == [(False, 0), (False, 2), (True, 0), (True, 2)]
    assert summary["speedup"].tolist() == pytest.approx([1.0, 200 / 100, 101 / 100, 198 / 100])
    effects = pd.read_csv(tmp_path / "effects.csv")
    assert set(effects["axis"]) == {"loader.pin_memory", "loader.num_workers"}
    printed = capsys.readouterr().out
    assert "pinsweep summary" in printed and "summary.csv" in printed


def test_cli_takes_a_baseline(tmp_path, full_config):
    _write_sweep(tmp_path, full_config)
    assert summarize_command.main([str(tmp_path), "--baseline", "loader.num_workers=2"]) == 0
    assert _read_summary(tmp_path)["baseline"].tolist() == [False, True, False, False]


def test_cli_exits_1_after_writing_when_a_job_failed(tmp_path, full_config, capsys):
    _write_sweep(tmp_path, full_config, statuses=("ok", "failed", "ok", "missing"))
    assert summarize_command.main([str(tmp_path)]) == 1
    summary = _read_summary(tmp_path)
    assert summary["n"].tolist() == [1, 0, 1, 0]
    assert summary["n_failed"].tolist() == [0, 1, 0, 1]
    assert "job 1 failed: RuntimeError: boom" in summary.loc[(False, 2), "failures"]
    assert "job 3 missing" in summary.loc[(True, 2), "failures"]
    printed = capsys.readouterr().out
    assert "job 1 failed" in printed and "RuntimeError: boom" in printed


def test_summarize_folder_counts_failed_and_missing_jobs(tmp_path, full_config):
    _write_sweep(tmp_path, full_config, statuses=("ok", "failed", "ok", "missing"))
    assert summarize_folder(tmp_path).failed == 2


@pytest.mark.parametrize("make", ["empty", "absent"])
def test_cli_exits_2_on_a_folder_without_rows(tmp_path, capsys, make):
    folder = tmp_path / "sweep"
    if make == "empty":
        folder.mkdir()
    assert summarize_command.main([str(folder)]) == 2
    assert "pinsweep.summarize:" in capsys.readouterr().err
    assert not (folder / "summary.csv").exists()


def test_cli_exits_2_on_a_baseline_that_matches_no_axis(tmp_path, full_config, capsys):
    _write_sweep(tmp_path, full_config)
    assert summarize_command.main([str(tmp_path), "--baseline", "loader.batch_size=64"]) == 2
    assert "loader.batch_size" in capsys.readouterr().err


def test_without_the_default_combination_the_first_config_that_ran_is_the_baseline():
    # a search (Optuna) or a partial grid may never run pin_memory=false with num_workers=0
    rows = pd.DataFrame(
        [
            _row(workers=0, pin=True, ips=100.0, job_num=0),
            _row(workers=2, pin=False, ips=150.0, job_num=1),
        ]
    )
    summary, _ = summarize(rows)
    # configs sort by axis values in column order (pin_memory, then num_workers): false/2 comes first
    assert summary[["loader.pin_memory", "loader.num_workers"]].values.tolist() == [["false", "2"], ["true", "0"]]
    assert summary["baseline"].tolist() == [True, False]
    assert summary["speedup"].tolist() == pytest.approx([1.0, 100.0 / 150.0])
    with pytest.raises(SummaryError, match="no job ran"):
        summarize(rows, baseline="loader.num_workers=0,loader.pin_memory=false")


def test_when_the_default_config_fails_in_every_repeat_the_first_config_that_ran_is_the_baseline():
    rows = _grid()
    default = (rows["loader.pin_memory"] == False) & (rows["loader.num_workers"] == 0)  # noqa: E712
    rows.loc[default, "status"] = "oom"
    rows.loc[default, "images_per_s"] = math.nan
    summary, effects = summarize(rows)
    assert _group(summary, "false", "0")["n"] == 0 and not _group(summary, "false", "0")["baseline"]
    base = _group(summary, "false", "2")  # the first config, in axis order, with ok rows
    assert base["baseline"] and base["speedup"] == 1.0
    assert _group(summary, "true", "2")["speedup"] == pytest.approx(paired((True, 2), (False, 2)))
    assert _group(summary, "true", "0")["significant"] is True  # 0 workers: half as fast, every round
    assert "baseline loader.pin_memory=false,loader.num_workers=0 failed in every repeat" in summary.loc[0, "note"]
    # effects rest on the strata that ran: num_workers only where pin_memory=true has both levels
    workers = effects[effects["axis"] == "loader.num_workers"].set_index("held_fixed")
    assert workers.loc["loader.pin_memory=true", "ratio"] == pytest.approx(paired((True, 0), (True, 2)))
    assert math.isnan(workers.loc["loader.pin_memory=false", "ratio"])
    assert workers.loc[OVERALL, "effect"] == "slower"


def test_an_axis_level_with_no_stratum_that_ran_says_why():
    rows = _grid(device="cuda:0")
    rows.loc[rows["loader.num_workers"] == 2, "status"] = "failed"
    _, effects = summarize(rows)
    overall = effects[(effects["axis"] == "loader.num_workers") & (effects["held_fixed"] == OVERALL)].iloc[0]
    assert overall["effect"] == "unknown: no stratum ran both levels"
    one_round = summarize(_grid(device="cuda:0").query("`train.repeat` == 0"))[1]
    assert set(one_round["effect"]) == {"unknown: needs train.repeat >= 2"}


def test_configs_of_the_same_data_whose_epochs_hold_other_item_counts_are_flagged():
    """Issue 26: items per epoch must not grow with num_workers (workers that each read a whole stream);
    a swept batch size or data setting may change them and is not flagged."""
    rows = _grid()
    rows["unit"] = "images"
    rows["items_per_epoch"] = [
        192.0 if workers == 2 and not pin else 96.0
        for pin, workers in zip(rows["loader.pin_memory"], rows["loader.num_workers"])
    ]
    summary, _ = summarize(rows)
    flagged = summary[summary["epoch_items_differ"]]
    assert [(f["loader.pin_memory"], f["loader.num_workers"]) for _, f in flagged.iterrows()] == [("false", "2")]
    assert (
        "loader.pin_memory=false, loader.num_workers=2 yielded 192 images an epoch, the others 96"
        in summary["note"].iloc[0]
    )
    rows["loader.batch_size"] = [64 if workers == 2 else 256 for workers in rows["loader.num_workers"]]
    rows["items_per_epoch"] = [192.0 if workers == 2 else 96.0 for workers in rows["loader.num_workers"]]
    summary, _ = summarize(
        rows.assign(**{"loader.pin_memory": False}).drop_duplicates(["loader.batch_size", "train.repeat"])
    )
    assert not summary["epoch_items_differ"].any() and "epochs differ" not in summary["note"].iloc[0]
