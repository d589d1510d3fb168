"""Multi-rank jobs (train.ranks) and the CPU budget (train.cpus, train.threads, loader.worker_threads):
one row per job with global throughput and the slowest rank's breakdown, ranks.csv beside it, a
planted straggler found, a rank's failure or death recorded with the rank named, and what the job had
recorded in its row."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from pinsweep.analysis.summarize import Tables, summarize
from pinsweep.app import run_and_record
from pinsweep.config import ConfigError
from pinsweep.input.data import SyntheticCIFAR10
from pinsweep.input.shard import EpochDistributedSampler, WorkerThreads
from pinsweep.job import ranks
from pinsweep.present.advice import advise
from pinsweep.record import RANKS_FILE, read_row
from tests.in_process import pinsweep_here

# 2 ranks x 256 images in batches of 32: 8 steps per rank and epoch, the second epoch timed
TWO_RANKS = (
    "data=synthetic",
    "model=tiny",
    "model.width=8",
    "data.train_size=512",
    "data.test_size=64",
    "loader.batch_size=32",
    "train.epochs=2",
    "train.ceiling_steps=2",
    "train.ceiling_budget_s=0.2",
    "train.ranks=2",
    # one intra-op thread a rank: two ranks of torch's default two threads on two cores shared with the
    # other tests wait for each other at every op (a 2-rank job took 8 s to train instead of 1 under load)
    "train.threads=1",
    "isolate=false",
)
# the planted straggler: 40 ms per sample on rank 1 only, 80 ms per batch; few, long sleeps (each
# overshoots by ~0.5 ms on this VM under load), and one intra-op thread keeps the real work negligible
DELAY_MS, BATCH = 40.0, 2


class RankSlowData(SyntheticCIFAR10):
    """Synthetic CIFAR-10 whose train split sleeps `delay_ms` per sample on rank `slow_rank` only: a
    planted straggler (the rank is known when the dataset is built, in the rank's own process)."""

    def __init__(self, size: int = 512, train: bool = True, slow_rank: int = 1, delay_ms: float = 0.0):
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        super().__init__(size, 0, train, delay_ms if train and rank == slow_rank else 0.0)


def _ranks_csv(job_dir: Path) -> pd.DataFrame:
    return pd.read_csv(job_dir / RANKS_FILE).set_index("rank")


# ------------------------------------------------------------------------------------ the row, exactly


def _rank(rank: int, wait: float, steady: float = 1.0, **extra) -> dict:
    return {
        "rank": rank,
        "unit": "images",
        "images_timed": 256,
        "items_timed": 256,
        "images_per_s": 256 / steady,
        "steady_s": steady,
        "data_wait_s": wait,
        "copy_s": 0.0,
        "compute_s": steady - wait,
        "host_wait_s": wait,
        "torch_threads": 2,
        "peak_host_mb": 100.0 + rank,
        **extra,
    }


def test_the_row_has_global_throughput_and_the_slowest_ranks_breakdown(compose_cfg):
    cfg = compose_cfg("data=synthetic", "model=tiny", "loader.num_workers=1", "train.ranks=2")
    row = ranks.combine({0: _rank(0, 0.05, 0.98), 1: _rank(1, 0.60, 1.0)}, cfg, cores=2)
    assert row["ranks"] == 2 and row["rank_slowest"] == 1
    assert row["images_timed"] == 512 and row["steady_s"] == 1.0 and row["images_per_s"] == 512.0
    assert row["throughput"] == 512.0 and row["throughput_per_rank"] == 256.0 and row["ceilings"] == "per rank"
    assert (row["data_wait_s"], row["compute_s"]) == (0.60, 0.40)  # rank 1's, not a mean over ranks
    assert row["rank_stall_spread"] == pytest.approx(0.60 - 0.05 / 0.98)
    assert row["straggler_rank"] == 1
    assert row["peak_host_mb"] == 101.0
    # 2 ranks x (1 + 1 worker) processes; 2 x (2 intra-op threads + 1 worker x 1 thread)
    assert (row["cpu_cores"], row["cpu_processes"], row["cpu_threads"], row["worker_threads"]) == (2, 4, 6, 1)
    assert [figures["rank"] for figures in row[ranks.RANK_FIGURES]] == [0, 1]


def test_a_straggler_is_a_rank_whose_stall_dominates():
    assert ranks.straggler(np.array([0.02, 0.60])) == 1
    assert ranks.straggler(np.array([0.60, 0.02, 0.01])) == 0
    assert ranks.straggler(np.array([0.30, 0.40])) == -1  # both wait: the loader, not one rank
    assert ranks.straggler(np.array([0.01, 0.08])) == -1  # below the verdict's 10%: nobody waits much
    assert ranks.straggler(np.array([0.5])) == -1


def test_the_summary_names_the_straggler_rank_most_jobs_name():
    rows = pd.DataFrame({"status": ["ok"] * 3, "images_per_s": [1.0, 1.1, 0.9], "straggler_rank": [1, 1, -1]})
    rows["steady_s"], rows["data_wait_s"], rows["copy_s"], rows["compute_s"] = 1.0, 0.6, 0.0, 0.4
    summary, _ = summarize(rows)
    assert summary.loc[0, "straggler"] == "rank 1" and summary.loc[0, "verdict"] == "loader-bound"
    summary, _ = summarize(rows.assign(straggler_rank=[1, -1, -1]))
    assert summary.loc[0, "straggler"] == ""


def test_the_advice_counts_processes_and_threads_against_the_cores_and_recommends_a_config_that_fits():
    nw, rk = "loader.num_workers", "train.ranks"

    def config(ranks, workers, ips, speedup, budget, best=True):
        return {
            rk: ranks,
            nw: workers,
            "baseline": speedup == 1.0,
            "n": 3,
            "ips_geomean": ips,
            "speedup": speedup,
            "speedup_ci_low": speedup * 0.9,
            "speedup_ci_high": speedup * 1.1,
            "significant": None if speedup == 1.0 else True,
            "could_be_fastest": best,
            "inactive": False,
            "verdict": "loader-bound",
            "data_wait_frac": 0.3,
            "copy_frac": 0.0,
            "compute_frac": 0.7,
            **dict(zip(("cpu_cores", "cpu_processes", "cpu_threads"), budget)),
        }

    summary = pd.DataFrame(
        [
            config("1", "0", 100.0, 1.0, (2, 1, 2), best=False),
            config("1", "1", 150.0, 1.5, (2, 2, 3)),
            config("2", "0", 120.0, 1.2, (2, 2, 4), best=False),
            config("2", "1", 160.0, 1.6, (2, 4, 6)),  # the fastest, on twice the processes the cores can run
        ]
    )
    effects = pd.DataFrame(columns=["axis", "level", "reference", "held_fixed", "ratio", "ci_low", "ci_high", "effect"])
    advice = advise(Tables(summary, effects))
    over = next(s for s in advice.sentences if s.startswith("Over the CPU budget"))
    assert "ranks=2, num_workers=1 (4 processes (2 ranks x (1 + 1 worker)) on 2 cores)" in over
    assert "ranks=1, num_workers=1 (3 torch threads in 2 processes on 2 cores)" in over
    assert "ranks=1, num_workers=0" not in over
    recommended = advice.recommendation
    assert recommended.overrides == ("train.ranks=1", "loader.num_workers=1")  # it fits; the fastest does not
    assert "2 processes and 3 torch threads on 2 cores (more threads than cores: train.threads=1" in (
        recommended.dataloader
    )


def test_the_next_sweep_keeps_a_null_thread_level_and_at_least_one_thread():
    def config(threads, ips, speedup):
        return {
            "train.threads": threads,
            "baseline": speedup == 1.0,
            "n": 1,
            "ips_geomean": ips,
            "speedup": speedup,
            "speedup_ci_low": math.nan,
            "speedup_ci_high": math.nan,
            "significant": None,
            "inactive": False,
            "verdict": "compute-bound",
        }

    # the fastest at null (torch's default): a level that is no number, kept as it is
    summary = pd.DataFrame([config("null", 150.0, 1.0), config("1", 100.0, 0.67)])
    effects = pd.DataFrame(columns=["axis", "level", "reference", "held_fixed", "ratio", "ci_low", "ci_high", "effect"])
    assert advise(Tables(summary, effects)).commands == []  # nothing new around it to explore
    # all numbers: around the fastest, never 0 threads
    summary = pd.DataFrame([config("4", 100.0, 1.0), config("1", 150.0, 1.5)])
    (explore,) = advise(Tables(summary, effects)).commands
    assert "train.threads=1,2" in explore.command and "train.threads=0" not in explore.command


# ------------------------------------------------------------------------------------ the parts


def test_each_rank_samples_its_own_share_and_reshuffles_every_epoch():
    data = list(range(10))
    samplers = [EpochDistributedSampler(data, num_replicas=2, rank=r, seed=3) for r in (0, 1)]
    first = [list(s) for s in samplers]
    second = [list(s) for s in samplers]
    assert sorted(first[0] + first[1]) == data and sorted(second[0] + second[1]) == data  # disjoint, complete
    assert first != second  # the next pass is the next epoch
    assert [s.epoch for s in samplers] == [2, 2]


class NumThreads(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        return torch.get_num_threads()


def test_worker_threads_sets_torch_threads_inside_each_worker():
    loader = DataLoader(NumThreads(), batch_size=2, num_workers=1, worker_init_fn=WorkerThreads(3))
    assert torch.cat(list(loader)).tolist() == [3, 3, 3, 3]
    default = DataLoader(NumThreads(), batch_size=2, num_workers=1)
    assert torch.cat(list(default)).tolist() == [1, 1, 1, 1]  # torch's own setting in a worker


def test_train_cpus_names_cores_the_job_may_use(compose_cfg):
    assert ranks.parse_cpus("0-2,5") == {0, 1, 2, 5}
    for text, message in (("x", "a list of cores such as 0-7"), (",", "names no core")):
        with pytest.raises(ConfigError, match=message):
            ranks.parse_cpus(text)
    beyond = max(os.sched_getaffinity(0)) + 1
    budget = ranks.cpu_budget(compose_cfg(f"train.cpus={beyond}").train)
    with pytest.raises(ConfigError, match=rf"train.cpus={beyond}: this job may use only cores"), budget:
        pass


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("train.ranks=0",), "train.ranks=0: must be >= 1"),
        (("train.ranks=2", "train.fault_rank=2"), "train.fault_rank=2: must name a rank, 0 .. 1"),
        (("train.ranks=2", "data.pipeline=device"), "data.pipeline=device with train.ranks > 1"),
        (("train.threads=0",), "train.threads=0: must be >= 1 thread"),
        (("loader.worker_threads=2", "loader.engine=nodes"), "use it with loader.engine=dataloader"),
    ],
)
def test_a_budget_that_cannot_run_is_an_invalid_row(compose_cfg, tmp_path, overrides, message):
    cfg = compose_cfg("data=synthetic", "model=tiny", "isolate=false", *overrides)
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "invalid"
    assert message in row["error"], row["error"]


# ------------------------------------------------------------------------------------ jobs


def test_a_two_rank_job_is_one_row_with_every_ranks_figures_beside_it(compose_cfg, tmp_path):
    # 2 ms a sample (64 ms a batch, a sleep) lengthens each rank's timed epoch to ~0.6 s without CPU work:
    # the slowest rank's wait at the window's closing barrier, a few ms, stays within the 2% below
    row = run_and_record(compose_cfg(*TWO_RANKS, "loader.num_workers=1", "data.sample_delay_ms=2"), tmp_path)
    assert row["status"] == "ok", row["error"]
    per_rank = _ranks_csv(tmp_path)
    assert list(per_rank.index) == [0, 1] and (per_rank["images_timed"] == 256).all()  # half the split each
    assert row["ranks"] == 2 and row["images_timed"] == 512
    assert row["images_per_s"] == pytest.approx(512 / per_rank["steady_s"].max())
    slowest = per_rank.loc[row["rank_slowest"]]
    assert row["data_wait_s"] == slowest["data_wait_s"]  # the breakdown is one rank's ...
    assert row["data_wait_s"] + row["copy_s"] + row["compute_s"] == pytest.approx(slowest["steady_s"], rel=0.02)
    assert row["compute_ceiling_ips"] == slowest["compute_ceiling_ips"]  # ... and so are the ceilings
    assert (row["cpu_processes"], row["cpu_cores"]) == (4, len(os.sched_getaffinity(0)))
    assert 0 <= row["test_accuracy"] <= 100 and row["loss_finite"]
    assert read_row(tmp_path)["ranks"] == 2


def test_in_adaptive_mode_the_ranks_stop_at_the_same_step(compose_cfg, tmp_path):
    cfg = compose_cfg(
        *TWO_RANKS, "train.mode=adaptive", "train.min_steps=12", "train.target_ci=0.9", "train.budget_s=20",
        "train.warmup_steps=2", "train.ceiling_steps=0", "train.evaluate=false",
    )  # fmt: skip
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    per_rank = _ranks_csv(tmp_path)
    # 8 steps an epoch per rank, 2 of warm-up: the vote crosses an epoch boundary; every rank stepped alike
    assert row["steps_timed"] >= 12 and per_rank["items_timed"].nunique() == 1
    assert row["items_timed"] == 2 * per_rank["items_timed"].iloc[0]


@pytest.mark.alone
def test_a_planted_loading_cost_on_rank_1_names_it_the_straggler(compose_cfg, tmp_path):
    cfg = compose_cfg(
        *TWO_RANKS,
        "data=custom",
        f"data._target_={RankSlowData.__module__}.RankSlowData",
        "+data.kwargs.size=32",  # 16 samples a rank: 8 steps an epoch
        "+data.kwargs.slow_rank=1",
        f"+data.kwargs.delay_ms={DELAY_MS}",
        f"loader.batch_size={BATCH}",
        # one epoch, its first 2 steps the warm-up: 6 timed steps, 480 ms of planted wait on rank 1; no
        # ceilings or evaluation, which this test does not read
        "train.epochs=1",
        "train.warmup_steps=2",
        "train.ceiling_steps=0",
        "train.evaluate=false",
    )
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["straggler_rank"] == 1 and row["rank_slowest"] == 1
    planted = row["steps_timed"] * BATCH * DELAY_MS / 1000
    wait = _ranks_csv(tmp_path).loc[1, "data_wait_s"]
    assert abs(wait / planted - 1) < 0.08, (wait, planted)
    print("RATIO", wait / planted)
    # rank 0 waits for rank 1 inside the all-reduce: compute to its timer, not data wait
    assert _ranks_csv(tmp_path).loc[0, "data_wait_s"] < 0.2 * wait
    summary, _ = summarize(pd.DataFrame([read_row(tmp_path)]))
    assert (summary.loc[0, "verdict"], summary.loc[0, "straggler"]) == ("loader-bound", "rank 1")


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_a_rank_that_cannot_run_its_config_is_an_invalid_row_naming_the_rank(compose_cfg, tmp_path):
    row = run_and_record(compose_cfg(*TWO_RANKS, "train.device=cuda"), tmp_path)
    assert row["status"] == "invalid"
    assert re.fullmatch(r"rank [01]: ConfigError: train.device=cuda but CUDA is not available here: .*", row["error"])


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [
        ("raise", "failed", "rank 1: RuntimeError: injected fault (train.inject_fault=raise)"),
        ("kill", "crashed", "RankCrashed: rank 1 died of signal SIGKILL without a result (killed or crashed)"),
    ],
)
def test_a_rank_that_raises_or_dies_fails_the_job_naming_the_rank(compose_cfg, tmp_path, fault, status, error):
    cfg = compose_cfg(*TWO_RANKS, f"train.inject_fault={fault}", "train.fault_rank=1")
    row = run_and_record(cfg, tmp_path)
    assert (row["status"], row["error"]) == (status, error)
    assert not (tmp_path / RANKS_FILE).exists()


def test_a_hung_rank_times_out_naming_the_rank(compose_cfg, tmp_path):
    cfg = compose_cfg(*TWO_RANKS, "train.inject_fault=hang", "train.fault_rank=1", "train.timeout_s=2")
    start = time.monotonic()
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "timeout"
    assert row["error"].startswith("rank 1: JobTimeout: job exceeded train.timeout_s=2")
    assert time.monotonic() - start < 30


def test_a_collective_that_timed_out_is_the_jobs_timeout():
    from pinsweep.job.train import JobTimeout

    gloo = RuntimeError("[gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 13000ms for recv operation")
    mapped = ranks.collective_timeout(gloo, 3.0)
    assert isinstance(mapped, JobTimeout) and str(mapped).startswith("a collective waited past train.timeout_s=3 + 10")
    assert ranks.collective_timeout(gloo, None) is gloo  # no limit set: a collective's own failure
    own = JobTimeout("job exceeded train.timeout_s=3: raise it or shorten the job")
    assert ranks.collective_timeout(own, 3.0) is own
    other = RuntimeError("Connection closed by peer")
    assert ranks.collective_timeout(other, 3.0) is other


def test_the_row_records_the_cores_and_threads_the_job_had(compose_cfg, tmp_path):
    had = os.sched_getaffinity(0)
    job = ("data=synthetic", "model=tiny", "model.width=8", "data.train_size=256", "data.test_size=64")
    job += ("loader.batch_size=64", "train.epochs=1", "train.ceiling_steps=0", "isolate=false")
    cfg = compose_cfg(*job, "loader.num_workers=1", "loader.worker_threads=2", f"train.cpus={min(had)}")
    row = run_and_record(cfg, tmp_path / "one-core")
    assert row["status"] == "ok", row["error"]
    # one core: torch's default there is one intra-op thread; 1 rank + 1 worker with 2 threads
    assert (row["cpu_cores"], row["torch_threads"], row["env.torch_threads"]) == (1, 1, 1)
    assert (row["cpu_processes"], row["cpu_threads"], row["worker_threads"]) == (2, 3, 2)
    assert os.sched_getaffinity(0) == had  # isolate=false: the sweep's own process has its cores back
    threads = run_and_record(compose_cfg(*job, "train.threads=1"), tmp_path / "one-thread")
    assert (threads["cpu_cores"], threads["torch_threads"], threads["cpu_threads"]) == (len(had), 1, 1)


# ------------------------------------------------------------------------------------ whole sweeps


def test_ranks_sweep_as_an_axis_with_a_row_and_ranks_csv_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    # the command line in this process (tests/in_process.py), isolate=false as TWO_RANKS: the ranks start
    # from the fork server this file's other jobs share; 256 images, 4 steps per rank and epoch at 2 ranks
    overrides = [o for o in TWO_RANKS if o != "train.ranks=2"] + ["data.train_size=256", "train.evaluate=false"]
    axes = ["train.ranks=1,2", "loader.num_workers=0,1"]  # one round: the axes, not repeats, are the point
    result = pinsweep_here("-m", *overrides, *axes, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.name.isdigit())
    rows = [read_row(job) for job in jobs]
    assert len(rows) == 4 and all(row["status"] == "ok" for row in rows), rows
    for job, row in zip(jobs, rows):
        per_rank = _ranks_csv(job)
        assert len(per_rank) == row["train.ranks"] == row["ranks"]
        assert row["images_timed"] == per_rank["images_timed"].sum()
        assert row["data_wait_s"] == pytest.approx(per_rank.loc[row["rank_slowest"], "data_wait_s"])
    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 4 and (summary["n"] == 1).all()
    assert set(pd.read_csv(sweep / "effects.csv")["axis"]) == {"train.ranks", "loader.num_workers"}


def _session(leader: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == leader and "\nState:\tZ" not in (entry / "status").read_text():
                    found.add(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the job's processes through Linux's /proc")
def test_ctrl_c_during_a_two_rank_job_takes_every_rank_and_worker_down(tmp_path):
    sweep_dir = tmp_path / "sweep"
    overrides = [o for o in TWO_RANKS if o != "isolate=false"]
    command = [sys.executable, "-m", "pinsweep", "-m", *overrides, "train.epochs=50", "loader.num_workers=1"]
    command += ["train.repeat=0,1", f"hydra.sweep.dir={sweep_dir}"]
    with open(tmp_path / "sweep.err", "w") as stderr:
        sweep = subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
        deadline = time.monotonic() + 300
        log = sweep_dir / "0" / "app.log"
        # both ranks are training once both have built their model
        while not log.is_file() or log.read_text().count("model: tiny") < 2:
            assert sweep.poll() is None and time.monotonic() < deadline, "the ranks never started"
            time.sleep(0.1)
        time.sleep(1.0)  # their DataLoader workers are up
        job = _session(sweep.pid) - {sweep.pid}
        assert len(job) >= 5, job  # fork server, the job's process, 2 ranks, 2 workers
        os.killpg(sweep.pid, signal.SIGINT)  # Ctrl-C at the terminal: its whole foreground group
        sweep.wait(timeout=120)
    assert sweep.returncode == 130, (tmp_path / "sweep.err").read_text()[-3000:]
    assert read_row(sweep_dir / "0")["status"] == "interrupted"
    deadline = time.monotonic() + 10
    while _session(sweep.pid) & job and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _session(sweep.pid) & job, "a rank or a DataLoader worker outlived the interrupted job"


class _Joined(Exception):
    """Raised by the fake process group once a rank has chosen its device: nothing past it runs."""


def test_each_launched_rank_trains_on_its_own_local_rank_gpu(compose_cfg, monkeypatch, tmp_path):
    """train.ranks=2 train.device=cuda with two GPUs (mocked): the elastic agent's entry point, called as
    launch() calls it, puts rank r on cuda:r (it put every rank on no GPU and refused to start)."""
    from torch.distributed.launcher import api

    chosen = {}

    def fake_elastic_launch(config, entrypoint):
        def run(*args):
            for local_rank in range(config.nproc_per_node):
                monkeypatch.setenv("RANK", str(local_rank))
                monkeypatch.setenv("LOCAL_RANK", str(local_rank))
                with pytest.raises(_Joined):
                    entrypoint(*args)
            return {}

        return run

    def fake_init_process_group(backend, timeout=None, device_id=None):
        chosen[int(os.environ["RANK"])] = (backend, device_id)
        raise _Joined

    monkeypatch.setattr(api, "elastic_launch", fake_elastic_launch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(ranks.dist, "init_process_group", fake_init_process_group)
    monkeypatch.setattr(ranks, "_exit_with_parent", lambda: None)
    # _Joined is no rank's failure: nothing to keep for the agent, nor to wait for it to see (5 s a rank)
    monkeypatch.setattr(ranks, "_keep_failure", lambda folder, rank, error: None)
    monkeypatch.setattr(ranks, "_name_rank_in_logs", lambda rank: None)  # the suite's own log lines stay as they are
    monkeypatch.setattr(ranks.signal, "signal", lambda *args: signal.SIG_DFL)  # pytest keeps its handlers
    monkeypatch.setattr(ranks.multiprocessing, "set_start_method", lambda *args, **kwargs: None)
    ranks.launch(compose_cfg(*TWO_RANKS, "train.device=cuda"))
    assert chosen == {0: ("nccl", torch.device("cuda", 0)), 1: ("nccl", torch.device("cuda", 1))}
