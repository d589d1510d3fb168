"""One job, in process: run_and_record trains a tiny model and writes its row, also when the job fails,
and resume skips only jobs that already succeeded. `isolate=false` runs the job in this process (the
spawned child of the default is exercised by the end-to-end sweeps in test_sweep.py)."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest
from omegaconf import OmegaConf

from pinsweep.app import Previous, run_and_record, what_to_do
from pinsweep.record import CONFIG_GROUPS, ROW_FILE, flatten_config, read_row

ENV_COLUMNS = [
    "env.pinsweep",
    "env.torch",
    "env.torchvision",
    "env.cuda",
    "env.cudnn",
    "env.device_name",
    "env.cpu_model",
    "env.cpu_count",
    "env.hostname",
    "env.python",
    "env.git_commit",
    "env.utc_time",
]
OVERRIDES = "data=synthetic model=tiny"


@pytest.fixture(scope="module")
def tiny_cfg(compose_cfg, tiny_job):
    def _cfg(*overrides: str):
        return compose_cfg(*tiny_job, "isolate=false", *overrides)

    return _cfg


@pytest.fixture(scope="module")
def ok_job(tiny_cfg, tmp_path_factory):
    """One tiny job run to completion: (config, job folder, returned row)."""
    cfg = tiny_cfg("train.device=cpu")
    job_dir = tmp_path_factory.mktemp("job") / "0"
    row = run_and_record(cfg, job_dir, job_num=3, overrides=OVERRIDES)
    return cfg, job_dir, row


def test_an_ok_row_holds_every_config_key_and_the_environment(ok_job):
    cfg, job_dir, returned = ok_job
    assert returned["status"] == "ok", returned["error"]
    frame = pd.read_csv(job_dir / ROW_FILE)
    assert len(frame) == 1
    row = frame.iloc[0]
    config = flatten_config(OmegaConf.masked_copy(cfg, list(CONFIG_GROUPS)))
    assert set(config) <= set(frame.columns)
    assert row["loader.batch_size"] == 64 and row["data.train_size"] == 256 and row["model.name"] == "tiny"
    assert set(ENV_COLUMNS) <= set(frame.columns)
    assert row["env.torch"] and row["env.python"] and row["env.cpu_count"] >= 1
    assert (row["job.num"], row["job.overrides"], row["status"]) == (3, OVERRIDES, "ok")
    assert row["device"] == "cpu"


def test_an_ok_row_holds_the_timings(ok_job):
    _, job_dir, _ = ok_job
    row = read_row(job_dir)
    assert row["images_per_s"] > 0
    epochs = json.loads(row["epoch_times_s"])
    assert len(epochs) == row["epochs_run"] == 2
    assert all(seconds > 0 for seconds in epochs)
    # 256 images in batches of 64: 4 steps an epoch; with 2 epochs the first is the warm-up
    assert (row["steps"], row["warmup_steps"]) == (8, 4)
    assert row["steps_timed"] == row["steps"] - row["warmup_steps"]
    assert row["images_timed"] == 4 * 64
    assert row["images_per_s"] == pytest.approx(row["images_timed"] / row["steady_s"])
    assert row["train_s"] >= row["steady_s"] > 0
    assert 0 <= row["test_accuracy"] <= 100
    assert row["compute_ceiling_ips"] > 0 and row["loader_ceiling_ips"] > 0
    assert not math.isnan(row["final_loss"])


def test_time_breakdown_fits_in_the_steady_window_on_cpu(ok_job):
    row = read_row(ok_job[1])
    parts = row["data_wait_s"] + row["copy_s"] + row["compute_s"]
    assert min(row["data_wait_s"], row["copy_s"], row["compute_s"]) >= 0
    assert row["compute_s"] > 0
    # on the CPU every part is host time inside the window; allow for the clock reads between them
    assert parts <= row["steady_s"] * 1.01 + 1e-3
    assert parts >= 0.5 * row["steady_s"]  # and they account for most of it


def test_a_raising_job_writes_a_failed_row(tiny_cfg, tmp_path):
    row = run_and_record(tiny_cfg("train.inject_fault=raise"), tmp_path, job_num=1, overrides="x=1")
    assert row["status"] == "failed"
    recorded = read_row(tmp_path)
    assert recorded["status"] == "failed"
    assert recorded["error"] == "RuntimeError: injected fault (train.inject_fault=raise)"
    assert recorded["train.inject_fault"] == "raise"
    assert "images_per_s" not in recorded
    assert recorded["env.torch"]


def test_an_unrunnable_config_writes_an_invalid_row(tiny_cfg, tmp_path):
    row = run_and_record(tiny_cfg("loader.persistent_workers=true"), tmp_path)
    assert row["status"] == "invalid"
    assert "loader.persistent_workers" in read_row(tmp_path)["error"]


def test_resume_skips_a_job_with_an_ok_row(ok_job, tmp_path):
    cfg, job_dir, _ = ok_job
    copy = shutil.copytree(job_dir, tmp_path / "0")
    before = (copy / ROW_FILE).stat().st_mtime_ns
    row = run_and_record(cfg, copy, job_num=3, overrides=OVERRIDES)
    assert (copy / ROW_FILE).stat().st_mtime_ns == before
    assert row["status"] == "ok"
    assert row["env.utc_time"] == read_row(job_dir)["env.utc_time"]


@pytest.mark.parametrize(
    ("previous", "resume", "decision"),
    [
        (None, True, Previous.RUN),  # a new job
        ({"status": "failed", "job.overrides": OVERRIDES}, True, Previous.RUN),  # a failure is retried
        ({"status": "ok", "job.overrides": OVERRIDES}, True, Previous.SKIP),  # this job's success: resumed
        ({"status": "ok", "job.overrides": "loader.num_workers=0"}, True, Previous.SET_ASIDE),  # another job's
        ({"status": "ok", "job.overrides": OVERRIDES}, False, Previous.SET_ASIDE),  # resume=false reruns it
        ({"status": "ok", "job.overrides": math.nan}, True, Previous.SET_ASIDE),  # the no-override job
        ({"status": "ok", "job.overrides": math.nan}, False, Previous.SET_ASIDE),
    ],
)
def test_resume_skips_only_this_jobs_success_and_never_overwrites_one(previous, resume, decision):
    assert what_to_do(previous, resume, OVERRIDES) is decision


def test_a_job_without_overrides_resumes_from_a_row_that_has_none():
    assert what_to_do({"status": "ok", "job.overrides": math.nan}, True, "") is Previous.SKIP  # as pandas reads ""
