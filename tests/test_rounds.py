"""hydra.sweeper.rounds=auto (pinsweep/sweep/rounds.py): the fixed sweep's jobs, one round at a time,
stopped once every comparison is resolved; interrupted and resumed, it ends where a sweep that ran
through ends."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from pinsweep.analysis import sequential
from pinsweep.analysis.summarize import read_summary
from pinsweep.app import CONFIG_DIR, register_configs
from pinsweep.record import read_row, write_row
from pinsweep.sweep.progress import count_jobs
from pinsweep.sweep.resume import resume_command
from pinsweep.sweep.rounds import RoundsError, decide, plan_of, round_jobs
from tests.in_process import Ran, pinsweep_here

register_configs()

from hydra_plugins.pinsweep_sweeper import sweep_jobs  # noqa: E402

AXES = ["loader.pin_memory=true,false", "loader.num_workers=0,1"]


def _parse(arguments: list[str]):
    return OverridesParser.create().parse_overrides(arguments)


def test_the_rounds_are_the_fixed_sweeps_jobs_under_the_same_numbers():
    for seed in (0, 3):
        rounds = round_jobs(_parse(AXES), 5, seed=seed)
        fixed = sweep_jobs([*AXES, "train.repeat=0,1,2,3,4"], seed=seed)
        assert [job for batch in rounds for job in batch] == fixed
        assert all(len(batch) == 4 for batch in rounds)
        assert all({job[-1] for job in batch} == {f"train.repeat={r}"} for r, batch in enumerate(rounds))
        # a later limit keeps every earlier job at its number (a resume with another max_rounds)
        assert round_jobs(_parse(AXES), 8, seed=seed)[:5] == rounds


def test_train_repeat_with_auto_rounds_is_refused_in_one_line():
    with pytest.raises(RoundsError, match=r"drop train.repeat=0,1,2 from the sweep, or set hydra.sweeper.rounds=fixed"):
        round_jobs(_parse([*AXES, "train.repeat=0,1,2"]), 4)
    with pytest.raises(RoundsError, match=r"hydra.sweeper.min_rounds=1: must be >= 2"):
        plan_of(1, 4, 0.05, None)
    with pytest.raises(RoundsError, match=r"hydra.sweeper.budget_s=0"):
        plan_of(2, 4, 0.05, 0)


def test_the_job_count_of_an_auto_sweep_is_the_most_it_may_run():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        overrides = ["hydra.sweeper.rounds=auto", "hydra.sweeper.max_rounds=5"]
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    cfg.hydra.overrides.task = AXES  # a multirun's config holds the command line as typed
    assert count_jobs(cfg) == 20


def _write_rounds(sweep_dir: Path, images_per_s: dict[tuple[int, int], float]) -> None:
    """Rows of an auto sweep of num_workers=0,1 x pin_memory (CPU), as its jobs would have written them."""
    jobs = round_jobs(_parse(AXES), 3)
    num = 0
    for r, batch in enumerate(jobs[: 1 + max(r for r, _ in images_per_s)]):
        for overrides in batch:
            settings = dict(o.split("=") for o in overrides)
            config = int(settings["loader.num_workers"]) * 2 + (settings["loader.pin_memory"].lower() == "true")
            row = {"job.num": num, "job.overrides": " ".join(overrides), "status": "ok", "device": "cpu"}
            row.update({key: value for key, value in settings.items()})
            if images_per_s[(r, config)] is None:  # a job that failed
                row.update(status="failed", error="RuntimeError: planted")
            else:
                row.update(images_per_s=images_per_s[(r, config)], steady_s=1.0, data_wait_s=0.0, compute_s=1.0)
            write_row(sweep_dir / str(num), row)
            num += 1


def test_a_look_stops_when_every_claim_is_resolved_and_says_what_is_open_otherwise(tmp_path):
    """num_workers=1 twice as fast in both rounds, pin_memory (inactive here) noise: resolved at the
    first look; the same sweep with num_workers within 1% of the baseline and 3% noise is still open."""
    plan = plan_of(2, 3, 0.05, None)
    clear = {
        (r, c): 1000.0 * (2.0 if c >= 2 else 1.0) * (1 + 0.002 * ((r + c) % 3)) for r in range(2) for c in range(4)
    }
    _write_rounds(tmp_path / "clear", clear)
    stopping = sequential.Stopping(plan=plan.__dict__, rounds=2)
    decide(stopping, plan, 10.0, tmp_path / "clear", 8)
    assert (stopping.state, stopping.open, stopping.final) == ("resolved", [], False)
    assert stopping.reason == "every comparison resolved after 2 rounds"

    unclear = {
        (r, c): 1000.0 * (1.01 if c >= 2 else 1.0) * (1 + 0.03 * ((r + c) % 3)) for r in range(2) for c in range(4)
    }
    _write_rounds(tmp_path / "unclear", unclear)
    stopping = sequential.Stopping(plan=plan.__dict__, rounds=2, budget_s=15.0, seconds=10.0)
    decide(stopping, plan, 10.0, tmp_path / "unclear", 8)
    assert stopping.state == "budget" and stopping.final  # 10 s run, another 10 s would pass 15 s
    assert "loader.num_workers 0 -> 1 at all (geometric mean)" in stopping.open
    assert not any("pin_memory 0" in text or "pin_memory false" in text for text in stopping.open)

    # a config that fails in every round does not keep the sweep going; the reason names it
    failing = {**clear, (0, 3): None, (1, 3): None}
    _write_rounds(tmp_path / "failing", failing)
    stopping = sequential.Stopping(plan=plan.__dict__, rounds=2)
    decide(stopping, plan, 10.0, tmp_path / "failing", 8)
    assert stopping.state == "resolved"
    assert stopping.reason == (
        "every comparison resolved after 2 rounds; 1 config(s) failed in every round (see summary.csv's failures)"
    )


# ------------------------------------------------------------------------------------ real sweeps

# two configs whose difference an A/B sweep can rarely settle in 3 rounds (its first looks have 1 and 2
# residual degrees of freedom, so their boundaries lie far out): an interruption lands mid-round, and the
# sweep usually runs to its limit; measured alike twice, the 5x difference can resolve at round 2 or 3
PLANTED = ["data.sample_delay_ms=0,1"]
AUTO = ["hydra.sweeper.rounds=auto", "hydra.sweeper.max_rounds=3"]


def _auto_sweep(tiny_job: tuple[str, ...], sweep_dir: Path) -> list[str]:
    quick = [*tiny_job, "isolate=false", "train.epochs=1", "train.ceiling_steps=0", "train.evaluate=false"]
    return [sys.executable, "-m", "pinsweep", "-m", *quick, *PLANTED, *AUTO, f"hydra.sweep.dir={sweep_dir}"]


def _state(sweep_dir: Path) -> dict:
    """What a finished auto sweep decided: its record (less the clock), its jobs and its claims."""
    record = json.loads((sweep_dir / "rounds.json").read_text())
    jobs = sorted(int(p.name) for p in sweep_dir.iterdir() if p.name.isdigit())
    rows = [read_row(sweep_dir / str(num)) for num in jobs]
    summary = read_summary(sweep_dir / "summary.csv")
    return {
        "decision": {key: record[key] for key in ("rounds", "state", "final", "open", "plan")},
        "looks": [entry["open"] for entry in record["history"]],
        "jobs": [(row["job.overrides"], row["status"], row["images_per_s"]) for row in rows],
        "claims": summary[["speedup_ci_low", "significant", "equivalent", "resolved"]].astype(str).values.tolist(),
    }


def _resume(sweep_dir: Path, monkeypatch) -> Ran:
    """What `python -m pinsweep.resume <sweep_dir>` runs, run in this process (tests/in_process.py): the
    resumed sweep's jobs, looks and record are the point here, not its process (pinsweep.resume's own
    process: test_interruptions.py, test_install.py)."""
    argv, cwd = resume_command(sweep_dir)
    assert argv[1:3] == ["-m", "pinsweep"]
    monkeypatch.chdir(cwd)
    return pinsweep_here(*argv[3:])


@pytest.mark.slow
def test_an_auto_sweep_interrupted_and_resumed_ends_as_one_that_ran_through(tiny_job, tmp_path, monkeypatch):
    """Stopped by SIGTERM in job 3 (the second round's second job) and resumed, the sweep ends in the
    state that looking after every round of the same rows, straight through, gives: the same record in
    rounds.json, the same jobs, the same intervals. The jobs are the fixed sweep's, number for number."""
    stopped = tmp_path / "stopped"
    with open(tmp_path / "stopped.err", "w") as stderr:
        sweep = subprocess.Popen(_auto_sweep(tiny_job, stopped), cwd=tmp_path, stderr=stderr)
        deadline = time.monotonic() + 300
        log = stopped / "3" / "app.log"
        while not (log.is_file() and "data: synthetic" in log.read_text()):  # inside the job
            assert sweep.poll() is None and time.monotonic() < deadline, "job 3 never started"
            time.sleep(0.05)
        sweep.send_signal(signal.SIGTERM)
        assert sweep.wait(timeout=120) == 143
    assert read_row(stopped / "3")["status"] == "interrupted"
    record = json.loads((stopped / "rounds.json").read_text())
    assert (record["state"], record["rounds"]) == ("running", 1)
    assert "job #1 (2 of up to 6)" in (tmp_path / "stopped.err").read_text()

    resumed = _resume(stopped, monkeypatch)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("already has an ok row, skipped") == 3  # jobs 0-2; 3 runs again
    state = _state(stopped)
    rounds = state["decision"]["rounds"]
    if state["decision"]["state"] == "limit":
        assert rounds == 3 and "pinsweep: rounds=auto: max_rounds=3 reached with" in resumed.stderr
    else:
        assert state["decision"]["state"] == "resolved" and rounds in (2, 3)
        assert f"pinsweep: rounds=auto: every comparison resolved after {rounds} rounds" in resumed.stderr
    assert len(state["jobs"]) == 2 * rounds
    fixed = sweep_jobs([*_auto_sweep(tiny_job, stopped)[4:-3], "train.repeat=0,1,2"])[: 2 * rounds]
    assert [overrides for overrides, _, _ in state["jobs"]] == [" ".join(job) for job in fixed]

    # straight through on the same measurements: a copy without its record, every job skipped, every look made
    through = Path(shutil.copytree(stopped, tmp_path / "through"))
    (through / "rounds.json").unlink()
    replayed = _resume(through, monkeypatch)
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    assert replayed.stderr.count("already has an ok row, skipped") == 2 * rounds
    assert _state(through) == state
