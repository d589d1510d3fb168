"""Scale-out through hydra-submitit-launcher: the launcher presets in conf/hydra/launcher/.

The SLURM tests run a real one-node cluster on this machine (tests/slurm/cluster.sh: munged,
slurmctld and slurmd, installed with apt if needed; skipped where that cannot run, e.g. not root).
Without SLURM accounting submitit never learns that a job died without a result and would wait
forever, so every sweep that waits for SLURM jobs runs under a subprocess timeout. The sweep sbatch
refuses, and the local launcher's (whose jobs' processes submitit watches), run their command line in
the test's own process (tests/in_process.py); their jobs are processes of their own either way.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pinsweep.app import register_configs, run_and_record
from pinsweep.record import read_row
from pinsweep.sweep.launchers import cpus_per_job, gpu_slots, gpus_per_job, largest_num_workers
from tests.in_process import pinsweep_here

REPO_ROOT = Path(__file__).resolve().parent.parent
CLUSTER = REPO_ROOT / "tests" / "slurm" / "cluster.sh"
SWEEP_TIMEOUT_S = 480  # 4 jobs take about a minute on an idle 2-core machine
# 512 images, one epoch: 8 steps (4 a rank with 2 ranks), a second of training; what these tests look at is
# where and how the jobs ran, not their figures: no ceilings, no evaluation
TINY_JOB = (
    "data=synthetic",
    "model=tiny",
    "data.train_size=512",
    "data.test_size=128",
    "loader.batch_size=64",
    "train.epochs=1",
    "train.ceiling_steps=0",
    "train.evaluate=false",
    "train.threads=1",  # two threads on two shared cores wait for each other at every op (tests/conftest.py)
)
# what the one-node cluster can honour: it has no GPUs (no GRES) and 2 CPUs
ON_THIS_CLUSTER = ("hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=0")


def _pinsweep(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "-m", "pinsweep", *args], cwd=cwd, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as expired:  # a job that died without a result: see the module docstring
        stderr = expired.stderr.decode(errors="replace") if isinstance(expired.stderr, bytes) else expired.stderr
        queue = subprocess.run(["timeout", "10", "squeue"], capture_output=True, text=True).stdout
        pytest.fail(
            f"sweep still running after {SWEEP_TIMEOUT_S}s; squeue:\n{queue}\nstderr:\n{(stderr or '')[-3000:]}"
        )


def _job_rows(sweep_dir: Path) -> list[dict]:
    job_dirs = sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return [read_row(job_dir) for job_dir in job_dirs]


def _submission_scripts(sweep_dir: Path) -> str:
    return "\n".join(path.read_text() for path in (sweep_dir / ".submitit").glob(".submission_file_*.sh"))


# ------------------------------------------------------------------ in process, no cluster


def _sweep_config(task: list[str], params: dict | None = None, num_workers: int = 0):
    return OmegaConf.create(
        {
            "hydra": {"overrides": {"task": task}, "sweeper": {"params": params or {}}},
            "loader": {"num_workers": num_workers},
        }
    )


@pytest.mark.parametrize(
    ("task", "params", "configured", "largest"),
    [
        (["loader.pin_memory=true,false"], None, 0, 0),
        (["loader.num_workers=0,1", "loader.pin_memory=true,false"], None, 0, 1),
        (["loader.num_workers=range(0,12,4)"], None, 0, 8),  # 0, 4, 8
        (["loader.num_workers=3"], None, 0, 3),
        (["model=tiny"], {"loader.num_workers": "0,2"}, 0, 2),  # an experiment file's grid
        ([], {"loader.num_workers": "choice(0, 1, 2, 4, 8)"}, 0, 8),  # Optuna's search space
        ([], {"loader.num_workers": "int(interval(1, 6))"}, 0, 6),
        (["loader.pin_memory=true,false"], None, 6, 6),  # set in an experiment file, not swept
        (["++loader.num_workers=2,16"], {"loader.num_workers": "0,4"}, 0, 16),
    ],
)
def test_the_largest_num_workers_comes_from_every_place_a_sweep_sets_it(task, params, configured, largest):
    assert largest_num_workers(_sweep_config(task, params, configured)) == largest


def test_gpu_slots_never_share_a_gpu():
    assert gpu_slots(["0", "1", "2", "3"], 1) == [("0",), ("1",), ("2",), ("3",)]
    assert gpu_slots(["4", "5", "6"], 2) == [("4", "5")]  # GPU 6 alone cannot hold a 2-GPU job
    assert gpu_slots([], 1) == [()]  # no GPU: one job at a time
    assert gpu_slots(["0", "1"], 0) == [()]


# ------------------------------------------------------------------ end to end

needs_submitit = pytest.mark.skipif(
    find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="needs hydra-submitit-launcher: pip install -e '.[slurm]'",
)


@needs_submitit
def test_the_presets_compose_with_one_gpu_per_job_and_a_cpu_per_worker_plus_one():
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO_ROOT / "conf")):
        # experiment=quick's hydra.sweeper.params sweeps num_workers 0,2; the command line adds 5
        slurm_overrides = ["hydra/launcher=slurm", "experiment=quick", "loader.num_workers=5"]
        slurm = compose("config", slurm_overrides, return_hydra_config=True).hydra
        local = compose("config", ["hydra/launcher=local"], return_hydra_config=True).hydra
    assert slurm.launcher._target_.endswith("SlurmLauncher")  # the plugin's own launcher, our defaults
    assert (slurm.launcher.cpus_per_task, slurm.launcher.gpus_per_node, slurm.launcher.tasks_per_node) == (6, 1, 1)
    assert local.launcher._target_ == "hydra_plugins.pinsweep_launcher.LocalGpuLauncher"
    assert local.launcher.gpus_per_node == 1


@pytest.mark.parametrize(
    ("task", "tasks_per_node", "cpus", "gpus"),
    [
        # the job starts its ranks itself (torch's elastic agent): each rank's CPUs in the one task
        (["train.ranks=1,2", "loader.num_workers=0,1"], 1, 4, 2),
        # SLURM starts them, one task per rank: a task's CPUs are one rank's
        (["train.ranks=2", "loader.num_workers=1"], 2, 2, 2),
        (["loader.num_workers=3"], 1, 4, 1),
    ],
)
def test_the_presets_give_every_rank_its_cpus_and_its_gpu(task, tasks_per_node, cpus, gpus):
    root = _sweep_config(task)
    root.hydra.launcher = {"tasks_per_node": tasks_per_node}
    assert (cpus_per_job(_root_=root), gpus_per_job(_root_=root)) == (cpus, gpus)


@needs_submitit
def test_the_local_launcher_forwards_every_setting_it_does_not_set_itself(tmp_path):
    register_configs()
    from pinsweep.sweep.launchers import local_executor

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO_ROOT / "conf")):
        overrides = ["hydra/launcher=local", "hydra.launcher.cpus_per_task=3", "+hydra.launcher.setup=[ulimit -n 4096]"]
        launcher = compose("config", overrides, return_hydra_config=True).hydra.launcher
    params = OmegaConf.to_container(launcher, resolve=False)
    params.pop("_target_")
    params["submitit_folder"] = str(tmp_path)
    parameters = local_executor(params).parameters
    assert parameters["setup"] == ["ulimit -n 4096"]  # a local-only setting, dropped before
    assert parameters["cpus_per_task"] == 3 and parameters["stderr_to_stdout"] is False
    assert parameters["timeout_min"] == launcher.timeout_min
    # submitit would number GPUs from 0 whatever the parent sees: the launcher sets each job's own
    # (pinsweep.sweep.launchers.run_on_gpus, tests/test_hydra_plugins.py)
    assert parameters["gpus_per_node"] == 0 and launcher.gpus_per_node == 1
    assert "submitit_folder" not in parameters


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running one-node SLURM cluster; stopped afterwards unless it was already up before."""
    was_up = subprocess.run(["bash", str(CLUSTER), "status"], capture_output=True, timeout=60).returncode == 0
    up = subprocess.run(["bash", str(CLUSTER), "up"], capture_output=True, text=True, timeout=900)
    if up.returncode == 3:
        pytest.skip(up.stdout.strip() or "tests/slurm/cluster.sh cannot run here")
    if up.returncode != 0:
        pytest.fail(f"tests/slurm/cluster.sh up failed:\n{up.stdout}\n{up.stderr}")
    try:
        yield
    finally:
        if not was_up:
            down = subprocess.run(["bash", str(CLUSTER), "down"], capture_output=True, text=True, timeout=300)
            assert down.returncode == 0, down.stdout + down.stderr


@pytest.mark.slow
@needs_submitit
def test_a_sweep_runs_as_slurm_jobs_into_one_sweep_folder(slurm_cluster, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = _pinsweep(
        "-m",
        *ON_THIS_CLUSTER,
        "hydra.launcher.array_parallelism=1",  # one job at a time: the node's cores are not isolated
        "hydra.launcher.timeout_min=10",
        *TINY_JOB,
        "loader.num_workers=0,1",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    rows = _job_rows(sweep_dir)
    assert [row["status"] for row in rows] == ["ok"] * 2, rows
    assert sorted(row["loader.num_workers"] for row in rows) == [0, 1]
    # each job ran as its own SLURM job, and submitit kept its log per array task
    slurm_ids = {str(row["env.slurm_job_id"]) for row in rows}
    assert len(slurm_ids) == 2 and all(job_id.isdigit() for job_id in slurm_ids), slurm_ids
    task_logs = list((sweep_dir / ".submitit").glob("*_*/*_0_log.out"))
    assert len(task_logs) == 2

    # one job array, at most one task at a time, CPUs = 1 + the largest num_workers swept, no GPU here
    script = _submission_scripts(sweep_dir)
    assert "#SBATCH --array=0-1%1" in script
    assert "#SBATCH --cpus-per-task=2" in script
    assert "#SBATCH --gpus-per-node=0" in script
    assert "#SBATCH --partition=debug" in script

    # the summary, written by the submitting process once all jobs had returned
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert len(summary) == 2 and summary["n"].tolist() == [1, 1]
    assert "pinsweep summary" in result.stdout


@pytest.mark.slow
@needs_submitit
def test_a_two_task_job_trains_as_two_ranks_with_the_row_of_a_local_two_rank_job(slurm_cluster, compose_cfg, tmp_path):
    """hydra.launcher.tasks_per_node=2: SLURM starts the job twice, each task joins the other as a rank
    (submitit's TorchDistributedEnvironment), rank 0 records one row and ranks.csv; the row has what the
    same job started locally (torch's elastic agent, here from this process) has."""
    job = (*TINY_JOB, "model.width=8", "train.ranks=2", "train.repeat=0")
    sweep_dir, local_dir = tmp_path / "sweep", tmp_path / "local"
    result = _pinsweep(
        "-m", *ON_THIS_CLUSTER, "hydra.launcher.tasks_per_node=2", "hydra.launcher.timeout_min=10", *job,
        f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "#SBATCH --ntasks-per-node=2" in _submission_scripts(sweep_dir)
    # the local job's point is its row, not a sweep process around it: recorded from here, the job in a process
    # of its own (isolate=true, forked from the fork server) that forks its ranks, as a local sweep's job does
    local_row = run_and_record(compose_cfg(*job), local_dir, 0, " ".join(job))
    assert local_row["status"] == "ok", local_row["error"]

    (row,), local_row = _job_rows(sweep_dir), read_row(local_dir)
    assert row["status"] == "ok" and str(row["env.slurm_job_id"]).isdigit()
    assert set(row) == set(local_row)  # the same columns ...
    same = ("ranks", "items_timed", "steps_timed", "warmup_steps", "cpu_processes")
    assert {key: row[key] for key in same} == {key: local_row[key] for key in same}  # ... and the same job
    # ... whose straggler verdict is a measurement (which rank stalled most, if one dominated), not a setting:
    # on a loaded machine one run names a rank and the other none, so only its kind is compared
    assert row["straggler_rank"] in (-1, 0, 1) and local_row["straggler_rank"] in (-1, 0, 1)
    assert row["ranks"] == 2 and row["images_per_s"] > 0
    per_rank = pd.read_csv(sweep_dir / "0" / "ranks.csv")
    assert per_rank["rank"].tolist() == [0, 1] and per_rank["items_timed"].sum() == row["items_timed"]
    assert len(list((sweep_dir / ".submitit").glob("*/*_1_log.out"))) == 1  # task 1 ran, with a log of its own


@pytest.mark.slow
@needs_submitit
def test_cpus_per_task_follows_an_experiment_files_grid(slurm_cluster, tmp_path, monkeypatch):
    """experiment=quick sweeps num_workers 0,2 in hydra.sweeper.params: 3 CPUs per job, 1 GPU (which
    this cluster lacks, so sbatch refuses the array right after the launcher wrote its script)."""
    sweep_dir = tmp_path / "sweep"
    monkeypatch.chdir(tmp_path)
    result = pinsweep_here("-m", "hydra/launcher=slurm", "experiment=quick", f"hydra.sweep.dir={sweep_dir}")
    assert result.returncode != 0
    assert "gres" in result.stderr
    script = _submission_scripts(sweep_dir)
    assert "#SBATCH --cpus-per-task=3" in script
    assert "#SBATCH --gpus-per-node=1" in script
    assert not list(sweep_dir.glob("*/row.csv"))


@pytest.mark.slow
@needs_submitit
def test_the_local_launcher_runs_one_job_at_a_time_without_a_gpu(tmp_path, monkeypatch):
    """hydra/launcher=local on a machine without GPUs: one slot, so each job starts only after the
    previous one ended (plain submitit_local would start both at once)."""
    sweep_dir = tmp_path / "sweep"
    monkeypatch.chdir(tmp_path)
    result = pinsweep_here(
        "-m", "hydra/launcher=local", *TINY_JOB, "loader.pin_memory=true,false", f"hydra.sweep.dir={sweep_dir}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [row["status"] for row in _job_rows(sweep_dir)] == ["ok", "ok"]
    assert (sweep_dir / "summary.csv").exists()
    jobs = sorted(  # (submitted, finished) per submitit job, in submission order
        (next(job.glob("*_submitted.pkl")).stat().st_mtime, next(job.glob("*_result.pkl")).stat().st_mtime)
        for job in (sweep_dir / ".submitit").iterdir()
        if job.name.isdigit()
    )
    assert len(jobs) == 2
    assert jobs[1][0] >= jobs[0][1], "the second job started before the first had finished"
