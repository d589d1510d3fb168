"""experiment=autotune: Optuna searches the loader settings, every trial is a recorded row, the best
config is written, and a trial that cannot run is a failed trial, not the end of the search.

Each sweep runs in this process, as `python -m pinsweep -m experiment=autotune ...` runs it
(pinsweep.__main__.main with that command line, jobs in process with isolate=false): a process of its
own would cost seconds of imports for nothing these tests look at; the command line's own process, its
exit status and signals are tested in test_sweep.py and test_interruptions.py."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from pinsweep.__main__ import main as pinsweep_main
from pinsweep.analysis.sequential import read_stopping
from pinsweep.analysis.summarize import norm
from pinsweep.record import read_row
from pinsweep.sweep import lock

pytest.importorskip(
    "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper",
    reason="hydra-optuna-sweeper is not installed (pip install -e '.[optuna]')",
)
import optuna  # only once the sweeper, which needs it, is known to be there

pytestmark = pytest.mark.slow

# a trial trains for a fraction of a second: tiny CNN, 256 synthetic images, one epoch, whole epochs not
# adaptive; no ceilings (no test here reads them: what is searched and confirmed is throughput), and no
# test pass (experiment=autotune sets train.evaluate=false)
TINY_TRIAL = (
    "model=tiny",
    "data=synthetic",
    "data.train_size=256",
    "data.test_size=64",
    "train.mode=epochs",
    "train.epochs=1",
    "train.ceiling_steps=0",
    "train.threads=1",  # two threads on two shared cores wait for each other at every op (tests/conftest.py)
    "isolate=false",  # one process per trial costs seconds of imports; isolation is tested elsewhere
)


class CyclingSampler(optuna.samplers.BaseSampler):
    """Trial n takes choice n (mod the number of choices) of every categorical parameter, so a test
    knows which trial gets what; every finished trial's state is appended to $CYCLING_SAMPLER_LOG."""

    def __init__(self, **tpe_settings):  # the preset's TPE settings arrive too; they do not apply
        pass

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        choices = param_distribution.choices
        return choices[trial.number % len(choices)]

    def after_trial(self, study, trial, state, values):
        with open(os.environ["CYCLING_SAMPLER_LOG"], "a") as log:
            log.write(json.dumps({"number": trial.number, "state": state.name, "values": values}) + "\n")


@dataclass(frozen=True)
class Sweep:
    """What `python -m pinsweep -m experiment=autotune ...` ended with: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def autotune(tmp_path, monkeypatch, capsys):
    """autotune(*overrides) -> Sweep: the command run in this process, from tmp_path, into tmp_path/sweep.
    Trials are drawn by test_optuna.CyclingSampler where a test names it (its log: tmp_path/trials.jsonl)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CYCLING_SAMPLER_LOG", str(tmp_path / "trials.jsonl"))

    def _run(*overrides: str) -> Sweep:
        argv = [
            "pinsweep",
            "-m",
            "experiment=autotune",
            *TINY_TRIAL,
            *overrides,
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ]
        monkeypatch.setattr(sys, "argv", argv)
        monkeypatch.setattr(lock, "_HELD", {})  # the sweep folder's hold, dropped as the process would at exit
        # Hydra configures logging for the sweep and each job: the next test gets pytest's handlers back
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        capsys.readouterr()
        try:
            pinsweep_main()
            returncode = 0
        except SystemExit as exit:  # what the process would have exited with
            returncode = 0 if exit.code is None else exit.code if isinstance(exit.code, int) else 1
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
            for held in lock._HELD.values():
                held.release(force=True)
        printed = capsys.readouterr()
        return Sweep(returncode, printed.out, printed.err)

    return _run


def _rows(sweep_dir: Path) -> list[dict]:
    job_dirs = sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return [read_row(job_dir) for job_dir in job_dirs]


def test_autotune_finds_a_config_and_records_every_trial(autotune, tmp_path):
    """The preset's sampler (TPE, seed 0) over a small space: its 3 trials draw num_workers 1, 0, 0 (the
    conditional space is drawn both ways), then the best distinct config is confirmed in one round."""
    result = autotune(
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.confirm_top=1",
        "hydra.sweeper.confirm_repeats=1",
        "loader.num_workers=choice(0,1,2)",
        "loader.batch_size=choice(64,128)",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = tmp_path / "sweep"
    rows = _rows(sweep_dir)
    assert len(rows) == 3
    assert all(row["status"] == "ok" and row["images_per_s"] > 0 for row in rows), rows

    # the conditional space: prefetch_factor and persistent_workers only for trials with workers
    with_workers = [row["loader.num_workers"] > 0 for row in rows]
    assert any(with_workers) and not all(with_workers), rows  # both kinds of trial, or this proves nothing
    for row, workers in zip(rows, with_workers):
        if workers:
            assert not pd.isna(row["loader.prefetch_factor"]), row
        else:
            assert pd.isna(row["loader.prefetch_factor"]) and not row["loader.persistent_workers"], row

    best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    fastest = max(rows, key=lambda row: row["images_per_s"])
    assert best.best_value == pytest.approx(fastest["images_per_s"], rel=1e-9)
    for key, value in best.best_params.items():
        assert fastest[key] == value, (key, fastest[key], value)

    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert summary["n"].sum() == 3  # every trial counted once, whatever the configs; confirm/ is its own sweep
    outcome = OmegaConf.load(sweep_dir / "autotune.yaml")  # pinsweep's result: Optuna's pick, then confirmed
    # Optuna's pick, with what its trial did not draw (no workers: no prefetch_factor) as that trial ran it
    drawn = {key: norm(value) for key, value in best.best_params.items()}
    assert outcome.search_pick == {**outcome.baseline, **drawn}
    assert outcome.search_images_per_s == best.best_value and outcome.repeats == 1
    assert len(outcome.candidates) == 1 and outcome.agree == (outcome.confirmed_pick == outcome.search_pick)
    # multirun.yaml (which Optuna's sweeper does not write) lets pinsweep.sweep.resume re-run the search
    saved = OmegaConf.load(sweep_dir / "multirun.yaml")
    assert "experiment=autotune" in saved.hydra.overrides.task


def test_a_trial_that_cannot_run_is_recorded_and_failed_for_optuna(autotune, tmp_path):
    """num_workers=0 with prefetch_factor=2 is invalid: trial 0 gets it (CyclingSampler), trial 1 gets
    num_workers=1. The invalid trial leaves an `invalid` row, Optuna marks it FAIL, the search goes on."""
    result = autotune(
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.confirm_top=0",  # the search alone
        "hydra.sweeper.sampler._target_=test_optuna.CyclingSampler",
        "loader.num_workers=choice(0,1)",
        "loader.prefetch_factor=choice(2)",
        "loader.batch_size=choice(64)",
        "loader.pin_memory=choice(false)",
    )
    assert result.returncode == 1, result.stderr[-3000:]  # a job failed: the sweep says so
    sweep_dir = tmp_path / "sweep"
    invalid, ok = _rows(sweep_dir)
    assert invalid["status"] == "invalid" and invalid["loader.num_workers"] == 0
    assert "loader.prefetch_factor=2 needs worker processes" in invalid["error"]
    assert ok["status"] == "ok" and ok["loader.num_workers"] == 1

    trials = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert [(t["number"], t["state"]) for t in trials] == [(0, "FAIL"), (1, "COMPLETE")]
    assert trials[1]["values"] == [pytest.approx(ok["images_per_s"], rel=1e-9)]
    best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert best.best_params["loader.num_workers"] == 1

    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert sorted(summary["n_failed"].tolist()) == [0, 1]
    assert not (sweep_dir / "confirm").exists() and not (sweep_dir / "autotune.yaml").exists()


def _confirmation_rows(sweep_dir: Path) -> pd.DataFrame:
    from pinsweep.record import read_rows

    return read_rows(sweep_dir / "confirm")


@pytest.mark.alone
def test_a_planted_input_delay_that_workers_hide_is_confirmed(autotune, tmp_path):
    """Every sample sleeps 4 ms, which 2 worker processes overlap: trial 0 (num_workers=0, the
    defaults) and trial 1 (num_workers=2) are searched, and the rounds confirm workers significantly."""
    result = autotune(
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.confirm_top=2",  # only one candidate differs from the defaults: one is re-run
        "hydra.sweeper.confirm_repeats=3",
        "hydra.sweeper.sampler._target_=test_optuna.CyclingSampler",
        "loader.num_workers=choice(0,2)",
        "loader.batch_size=32",
        "loader.pin_memory=false",
        "data.sample_delay_ms=4",
        # one epoch of 8 steps (256 images): its first 3 are the warm-up, in which the workers start, so
        # worker start-up is not what is timed (a second epoch would double the cost and prove no more)
        "data.train_size=256",
        "train.epochs=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = tmp_path / "sweep"
    assert len(_rows(sweep_dir)) == 2  # the search's rows stay the search's
    rows = _confirmation_rows(sweep_dir)
    # confirmed under the rounds=auto rule (pinsweep/sweep/rounds.py): a look after rounds 2 and 3, at
    # most confirm_repeats=3; with one residual degree of freedom at round 2 the boundary is far out,
    # and a 2x difference measured twice alike can still cross it, so the pair stops at round 2 or 3
    stopping = read_stopping(sweep_dir / "confirm")
    assert stopping.rounds in (2, 3) and (stopping.state, stopping.open) == ("resolved", [])
    assert len(rows) == 2 * stopping.rounds and (rows["status"] == "ok").all()
    pairs = rows.groupby("train.repeat")["loader.num_workers"].apply(sorted).tolist()
    assert pairs == [[0, 2]] * stopping.rounds  # every round holds both configs once
    outcome = OmegaConf.load(sweep_dir / "autotune.yaml")
    assert not outcome.defaults_hold and outcome.confirmed_pick["loader.num_workers"] == "2"
    assert outcome.speedup_ci_low > 1.0, outcome
    summary = pd.read_csv(sweep_dir / "confirm" / "summary.csv")
    workers = summary[summary["loader.num_workers"] == 2].iloc[0]
    assert bool(workers["significant"]) and workers["speedup"] == pytest.approx(outcome.speedup)
    # Optuna's file is Optuna's: its single best trial, whatever the confirmation found
    assert set(OmegaConf.load(sweep_dir / "optimization_results.yaml")) == {"name", "best_params", "best_value"}
    agreement = "agree" if outcome.agree else "differ"
    assert "Confirmed pick: num_workers=2" in result.stdout and agreement in result.stdout
    assert "## Auto-tune: search pick and confirmed pick" in (sweep_dir / "report.md").read_text()


def test_when_nothing_differs_the_defaults_hold(autotune, tmp_path):
    """pin_memory cannot act on a CPU: the search draws true and false, the confirmation finds no
    difference and keeps the defaults."""
    result = autotune(
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.confirm_repeats=2",
        "hydra.sweeper.sampler._target_=test_optuna.CyclingSampler",
        "loader.num_workers=0",
        "loader.batch_size=64",
        "loader.pin_memory=choice(true,false)",
        "train.device=cpu",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = tmp_path / "sweep"
    outcome = OmegaConf.load(sweep_dir / "autotune.yaml")
    assert outcome.defaults_hold and outcome.confirmed_pick == outcome.baseline
    assert list(outcome.candidates) == [{"loader.pin_memory": "true"}]
    assert len(_confirmation_rows(sweep_dir)) == 4
    assert "Defaults hold" in result.stdout


def test_the_confirmation_runs_through_the_sweeps_own_launcher(autotune, tmp_path):
    """hydra/launcher=local (submitit, as the SLURM preset): trials and confirmation jobs alike are
    submitit jobs, each in its own process, and the confirmation's land in confirm/<n>/. One trial
    (num_workers=1, CyclingSampler's first choice) and one round of it against the defaults: 3 jobs."""
    result = autotune(
        "hydra/launcher=local",
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.confirm_top=1",
        "hydra.sweeper.confirm_repeats=1",
        "hydra.sweeper.sampler._target_=test_optuna.CyclingSampler",
        "loader.num_workers=choice(1,0)",
        "loader.batch_size=64",
        "loader.pin_memory=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = tmp_path / "sweep"
    rows = _confirmation_rows(sweep_dir)
    assert len(rows) == 2 and (rows["status"] == "ok").all()
    assert sorted(rows["loader.num_workers"]) == [0, 1]  # the trial's config and the defaults
    assert sorted(Path(d).name for d in rows["job.dir"]) == ["0", "1"]
    submitted = list((sweep_dir / ".submitit").rglob("*_submitted.pkl"))
    assert len(submitted) == 3  # 1 trial + 2 confirmation jobs, every one a submitit job
    assert OmegaConf.load(sweep_dir / "autotune.yaml").repeats == 1
