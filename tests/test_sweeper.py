"""hydra/sweeper=pinsweep: repeats run in rounds (each config once per round, in a seeded random order
that differs between rounds) whatever order the axes are typed in; the same overrides and seed give
the same job numbers, so a resumed sweep finds its finished jobs; job counts match."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf

from pinsweep.app import register_configs
from pinsweep.record import ROW_FILE, read_row
from pinsweep.sweep.order import REPEAT_KEY, override_key, pinsweep_order
from pinsweep.sweep.progress import count_jobs
from tests.in_process import pinsweep_here

register_configs()  # exposes hydra_plugins/ of this checkout (editable installs) before the import below
from hydra_plugins.pinsweep_sweeper import ordered_batches, sweep_jobs  # noqa: E402

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
REPEATS = "train.repeat=0,1,2"
PIN = "loader.pin_memory=true,false"
WORKERS = "loader.num_workers=0,2"
# Hydra writes the swept values back as it parsed them: true -> True
CONFIGS = {(pin, workers) for pin in ("True", "False") for workers in ("0", "2")}


def _value(job: list[str], key: str) -> str:
    return next(override.split("=", 1)[1] for override in job if override_key(override) == key)


def _config(job: list[str]) -> tuple[str, ...]:
    """A job's config: its overrides other than train.repeat, in a fixed key order."""
    return tuple(sorted(override for override in job if override_key(override) != REPEAT_KEY))


def _rounds(jobs: list[list[str]], size: int) -> list[list[list[str]]]:
    return [jobs[start : start + size] for start in range(0, len(jobs), size)]


def _compose(*overrides: str) -> DictConfig:
    """The config with its hydra node, as a multirun hands it to the sweeper and the callbacks."""
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def _basic_product(arguments: list[str]) -> list[list[str]]:
    """Hydra's own basic sweeper's jobs, in its order."""
    (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(arguments), None)
    return jobs


# ------------------------------------------------------------------------------------- the job order


@pytest.mark.parametrize("axes", list(itertools.permutations([REPEATS, PIN, WORKERS])), ids=" ".join)
@pytest.mark.parametrize("shuffle", [True, False])
def test_every_round_runs_each_config_once_whatever_order_the_axes_are_typed_in(axes, shuffle):
    jobs = sweep_jobs(list(axes), shuffle=shuffle)
    assert sorted(jobs) == sorted(_basic_product(list(axes)))  # the same jobs as Hydra's, only reordered
    rounds = _rounds(jobs, len(CONFIGS))
    assert [{_value(job, REPEAT_KEY) for job in jobs} for jobs in rounds] == [{"0"}, {"1"}, {"2"}]
    for jobs in rounds:
        configs = [(_value(job, "loader.pin_memory"), _value(job, "loader.num_workers")) for job in jobs]
        assert len(configs) == len(set(configs)) and set(configs) == CONFIGS


def test_hydra_basic_sweeper_alone_runs_repeats_back_to_back_when_repeat_is_not_typed_first():
    # what this sweeper exists for: Hydra varies the first axis typed slowest
    jobs = _basic_product([PIN, REPEATS])
    assert [_value(job, REPEAT_KEY) for job in jobs[:3]] == ["0", "1", "2"]
    assert {_value(job, "loader.pin_memory") for job in jobs[:3]} == {"True"}


def test_rounds_run_in_different_orders_reproducibly_from_the_seed():
    axes = ["train.repeat=0,1,2,3,4", PIN, WORKERS]
    jobs = sweep_jobs(axes, seed=0)
    orders = [tuple(_config(job) for job in jobs) for jobs in _rounds(jobs, len(CONFIGS))]
    assert len(set(orders)) == 5  # a different permutation in every round
    assert sweep_jobs(axes, seed=0) == jobs  # the same seed, the same job numbers (resume relies on it)
    assert sweep_jobs(axes, seed=1) != jobs
    assert [sorted(r) for r in _rounds(sweep_jobs(axes, seed=1), 4)] == [sorted(r) for r in _rounds(jobs, 4)]


def test_two_configs_in_two_rounds_swap_their_order_in_the_second_round():
    # only two permutations exist: the second round takes the one the first did not
    for seed in range(20):
        first, second = _rounds(sweep_jobs(["train.repeat=0,1", PIN], seed=seed), 2)
        assert [_config(job) for job in first] == [_config(job) for job in reversed(second)]


def test_no_config_is_favoured_by_its_position_in_a_round():
    # over many seeds each config is first in a round a quarter of the time, in the first round and
    # in later rounds, whose permutation avoids those already drawn
    jobs = _basic_product([REPEATS, PIN, WORKERS])
    first_in_round: list[Counter] = [Counter(), Counter(), Counter()]
    seeds = 4000
    for seed in range(seeds):
        for index, jobs_of_round in enumerate(_rounds(pinsweep_order(jobs, seed=seed), 4)):
            first_in_round[index][_config(jobs_of_round[0])] += 1
    for counts in first_in_round:
        assert len(counts) == 4
        assert all(abs(count / seeds - 0.25) < 0.03 for count in counts.values()), counts


def test_shuffle_false_is_the_product_order_with_repeat_outermost():
    jobs = sweep_jobs([PIN, "train.repeat=0,1", WORKERS], shuffle=False)
    assert jobs == [
        ["loader.pin_memory=True", "train.repeat=0", "loader.num_workers=0"],
        ["loader.pin_memory=True", "train.repeat=0", "loader.num_workers=2"],
        ["loader.pin_memory=False", "train.repeat=0", "loader.num_workers=0"],
        ["loader.pin_memory=False", "train.repeat=0", "loader.num_workers=2"],
        ["loader.pin_memory=True", "train.repeat=1", "loader.num_workers=0"],
        ["loader.pin_memory=True", "train.repeat=1", "loader.num_workers=2"],
        ["loader.pin_memory=False", "train.repeat=1", "loader.num_workers=0"],
        ["loader.pin_memory=False", "train.repeat=1", "loader.num_workers=2"],
    ]


def test_without_a_repeat_axis_the_basic_sweepers_jobs_run_shuffled():
    axes = ["loader.num_workers=0,1,2,4", "loader.batch_size=64,128"]
    product = _basic_product(axes)
    assert sweep_jobs(axes, shuffle=False) == product
    shuffled = [sweep_jobs(axes, seed=seed) for seed in range(5)]
    assert all(sorted(jobs) == sorted(product) for jobs in shuffled)
    assert all(jobs != product for jobs in shuffled)
    assert len({tuple(map(tuple, jobs)) for jobs in shuffled}) == 5
    # a single repeat value is one round too, and a sweep of one job is that job
    assert sweep_jobs(["train.repeat=3", "loader.num_workers=0,1"], shuffle=False) == [
        ["train.repeat=3", "loader.num_workers=0"],
        ["train.repeat=3", "loader.num_workers=1"],
    ]
    assert sweep_jobs(["train.epochs=1"]) == [["train.epochs=1"]]


def test_batches_of_max_batch_size_keep_the_order():
    overrides = OverridesParser.create().parse_overrides([PIN, REPEATS, WORKERS])
    whole = ordered_batches(overrides, None, seed=5)
    batches = ordered_batches(overrides, 5, seed=5)
    assert [len(batch) for batch in batches] == [5, 5, 2]
    assert [job for batch in batches for job in batch] == whole[0] == sweep_jobs([PIN, REPEATS, WORKERS], seed=5)


# -------------------------------------------------------------------------- configuration and counting


def test_pinsweep_is_the_default_sweeper_and_experiments_can_replace_it():
    sweeper = _compose("hydra.sweeper.seed=7", "hydra.sweeper.shuffle=false")
    assert OmegaConf.to_container(sweeper.hydra.sweeper, enum_to_str=True) == {
        "_target_": "hydra_plugins.pinsweep_sweeper.PinsweepSweeper",
        "max_batch_size": None,
        "params": None,
        "seed": 7,
        "shuffle": False,
        "rounds": "fixed",  # train.repeat as typed; auto: rounds until resolved (pinsweep/sweep/rounds.py)
        "min_rounds": 2,
        "max_rounds": 8,
        "budget_s": None,
        "margin": 0.05,
    }
    quick = _compose("experiment=quick").hydra.sweeper
    assert quick._target_.endswith("PinsweepSweeper") and quick.rounds.value == "auto"  # rounds until resolved
    # an experiment's `override /hydra/sweeper` wins over pinsweep's default (conf/hydra/pinsweep.yaml)
    optuna = _compose("experiment=autotune").hydra.sweeper
    # Optuna's sweeper, then the confirmation (hydra_plugins/pinsweep_sweeper/autotune.py)
    assert optuna._target_ == "hydra_plugins.pinsweep_sweeper.autotune.AutotuneSweeper"
    assert (optuna.n_trials, optuna.confirm_top, optuna.confirm_repeats) == (12, 3, 3)
    basic = _compose("hydra/sweeper=basic").hydra.sweeper
    assert basic._target_ == "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def test_a_seed_that_is_no_integer_is_refused():
    with pytest.raises(ConfigCompositionException, match=r"hydra\.sweeper\.seed=abc"):
        _compose("hydra.sweeper.seed=abc")


@pytest.mark.parametrize("sweeper", ["pinsweep", "basic"])
def test_count_jobs_counts_params_and_command_line_as_the_sweeper_runs_them(sweeper):
    # fixed rounds: the command line's train.repeat runs them (quick's own rounds=auto refuses it)
    cfg = _compose("experiment=quick", "hydra.sweeper.rounds=fixed")
    if sweeper == "basic":  # quick sets pinsweep's keys, which the basic sweeper's schema lacks
        cfg.hydra.sweeper._target_ = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
    # a multirun's config holds the command line as typed, sweeps included
    cfg.hydra.overrides.task = ["experiment=quick", "loader.batch_size=64,128", "train.repeat=0,1,2,3"]
    assert count_jobs(cfg) == 4 * 2 * 2 * 2  # the command line's train.repeat replaces the file's
    arguments = [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    assert count_jobs(cfg) == len(sweep_jobs([*arguments, *cfg.hydra.overrides.task]))


def test_count_jobs_reads_trials_and_gives_up_on_sweepers_it_does_not_know():
    assert count_jobs(_compose("experiment=autotune")) == 12  # the search's; confirm/ counts its own
    cfg = _compose()
    cfg.hydra.sweeper._target_ = "somewhere.else.Sweeper"
    assert count_jobs(cfg) is None


# --------------------------------------------------------------------------- a real sweep, resumed


@pytest.mark.slow
def test_a_real_sweep_runs_in_rounds_and_a_resume_reruns_only_the_missing_jobs(tiny_job, tmp_path):
    sweep_dir = tmp_path / "sweep"
    # train.repeat typed last: Hydra's basic sweeper would run both repeats of pin_memory=true first
    axes = ["loader.pin_memory=true,false", "train.repeat=0,1"]
    fixed = [*tiny_job, "isolate=false", "train.epochs=1", "train.ceiling_steps=0", "train.evaluate=false"]
    # the sweep's command line in this process (tests/in_process.py); the resume below is the user's command
    first = pinsweep_here("-m", *fixed, *axes, f"hydra.sweep.dir={sweep_dir}")
    assert first.returncode == 0, first.stderr[-3000:]

    expected = sweep_jobs([*fixed, *axes])
    rows = [read_row(sweep_dir / str(num)) for num in range(len(expected))]
    assert [row["job.overrides"] for row in rows] == [" ".join(job) for job in expected]
    assert [row["train.repeat"] for row in rows] == [0, 0, 1, 1]
    assert (
        {row["loader.pin_memory"] for row in rows[:2]}
        == {row["loader.pin_memory"] for row in rows[2:]}
        == {
            True,
            False,
        }
    )
    assert (sweep_dir / ".pinsweep-jobs").read_text() == "4"
    assert not (sweep_dir / "4").exists()

    # a sweep killed during job 1 and before job 2: their rows are missing, 0 and 3 finished
    for num in (1, 2):
        (sweep_dir / str(num) / ROW_FILE).unlink()
    finished = {num: (sweep_dir / str(num) / ROW_FILE).stat().st_mtime_ns for num in (0, 3)}
    again = subprocess.run(
        [sys.executable, "-m", "pinsweep.resume", str(sweep_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    for num in (0, 3):
        assert f"resume: job #{num} already has an ok row, skipped" in again.stderr
        assert (sweep_dir / str(num) / ROW_FILE).stat().st_mtime_ns == finished[num]
    for num in (1, 2):
        assert f"resume: job #{num} already" not in again.stderr
    resumed = [read_row(sweep_dir / str(num)) for num in range(4)]
    assert [row["status"] for row in resumed] == ["ok"] * 4
    assert [row["job.overrides"] for row in resumed] == [row["job.overrides"] for row in rows]
    assert not list(Path(sweep_dir).rglob("row-replaced-*.csv"))  # no finished row was set aside
