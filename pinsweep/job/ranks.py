"""A job as one process or as R ranks of torch.distributed, inside its CPU budget; one row either way.

    run(cfg)  # what pinsweep.job.isolate runs in the job's process (and app.py with isolate=false)

Stages: the CPU budget (train.cpus, train.threads) -> the ranks -> one row from their figures.

- **The budget.** `train.cpus` pins the job's process to those cores with `os.sched_setaffinity`
  before anything starts, so its ranks and their DataLoader workers inherit the set. `train.threads`
  sets torch's intra-op threads in each rank; left null with train.cpus set, it is the number of those
  cores, which is torch's own default in a process started on them (OpenMP counts the cores it may use
  when torch loads, and torch loaded in the fork server, before the job had its cores).
- **The ranks.** `train.ranks=R` starts R ranks with torch's elastic agent (`elastic_launch`, what
  torchrun runs: c10d rendezvous on this host, each rank's exceptions written to its error file by
  `errors.record`, every rank stopped when one fails), forked from the job's process, which imported
  torch already (with isolate=false, from pinsweep's fork server: see rank_start_method). Each rank
  runs the ordinary job (pinsweep.job.train.run_job) in a process group (gloo on the CPU, NCCL on CUDA
  with one GPU per rank); pinsweep.job.distributed and pinsweep.input.shard
  make it DDP with a DistributedSampler. Under `hydra/launcher=slurm` with
  `hydra.launcher.tasks_per_node=R`, SLURM starts the ranks as tasks; each task's job joins the
  others with submitit's `TorchDistributedEnvironment` and rank 0 gathers their figures.
- **One row.** Throughput is global: all ranks' items in one window that starts and ends at a barrier.
  The breakdown is the slowest rank's, the one that stalled most on its input: while it waits for data
  every other rank waits for it inside the gradient all-reduce, which their timers count as compute,
  so a mean over ranks would hide the cause. The row names the slowest rank, the spread of the ranks'
  stall, and `straggler_rank` where one rank's stall dominates; every rank's own figures go to
  `ranks.csv` in the job folder. Ceilings are per rank (the slowest rank's own; `ceilings` says so):
  one rank's compute without the all-reduce, one rank's loader on its share of the split.
- **Faults.** A rank that raises fails the job with its rank and its one-line error (`RankFailed`); a
  rank that dies crashes it (`RankCrashed`). When one rank fails the others fail right after it (the
  collective they wait in loses its peer); so that the agent reports the rank that failed first, a rank
  whose failure is not the first waits before it exits, and the agent stops it (pinsweep.job.isolate
  kills the whole process group when the sweep stops). When train.timeout_s runs out on every rank, a
  rank whose alarm went off inside a collective was waiting for another: the other one is named.
"""

from __future__ import annotations

import datetime
import logging
import multiprocessing
import os
import pickle
import re
import signal
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import OmegaConf

from pinsweep.config import ConfigError, validate
from pinsweep.job import slurm, start
from pinsweep.job.rank_errors import RankCrashed, RankFailed
from pinsweep.job.train import JobTimeout, run_job
from pinsweep.record import RANK_FIGURES

log = logging.getLogger(__name__)

AGENT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)  # elastic's default set
COLLECTIVE_MARGIN_S = 10.0  # a collective times out this long after train.timeout_s: the rank's own alarm first
FIRST_FAILURE_WAIT_S = 0.5  # the first rank to fail lives this long, so that a rank that died before it is seen
LATER_FAILURE_WAIT_S = 5.0  # a later failure waits until the agent has seen the first and stops this rank
COLLECTIVE_TIMED_OUT = re.compile(r"[Tt]imed out|[Tt]imeout")  # gloo's and NCCL's words for it
# where a rank waits for the others: DDP's gradient all-reduce (in autograd's backward), torch.distributed's
# collectives, pinsweep's barriers (pinsweep/job/distributed.py)
WAITING_IN = (
    "torch/autograd/",
    "torch/_tensor.py",
    "torch/distributed/",
    "torch/nn/parallel/",
    "pinsweep/job/distributed.py",
)
STRAGGLER_DOMINANCE = 2.0  # a straggler stalls >= 2x as much of its window as any other rank
# what each rank's ranks.csv line holds, from its own metrics
RANK_COLUMNS = (
    "rank",
    "device",
    "images_timed",
    "items_timed",
    "steady_s",
    "images_per_s",
    "throughput",
    "step_s_mean",
    "data_wait_s",
    "host_wait_s",
    "copy_s",
    "compute_s",
    "data_wait_frac",
    "first_batch_s_median",
    "compute_ceiling_ips",
    "loader_ceiling_ips",
    "torch_threads",
    "peak_host_mb",
    "final_loss",
)


# --------------------------------------------------------------------------------------------- budget


def parse_cpus(text: str) -> set[int]:
    """`0-3,6` -> {0, 1, 2, 3, 6}: the taskset / cpuset list format."""
    cores: set[int] = set()
    try:
        for part in filter(None, (p.strip() for p in str(text).split(","))):
            low, _, high = part.partition("-")
            cores.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise ConfigError(f"train.cpus={text}: a list of cores such as 0-7 or 0,2,4") from None
    if not cores:
        raise ConfigError(f"train.cpus={text}: names no core; e.g. train.cpus=0-7, or null for all")
    return cores


@contextmanager
def cpu_budget(train_cfg: Any) -> Iterator[set[int]]:
    """The job's process on train.cpus, while the job runs (put back after it, for isolate=false)."""
    had = os.sched_getaffinity(0)
    if train_cfg.cpus is None:
        yield had
        return
    cores = parse_cpus(train_cfg.cpus)
    if not cores <= had:
        allowed = ",".join(map(str, sorted(had)))
        raise ConfigError(f"train.cpus={train_cfg.cpus}: this job may use only cores {allowed}")
    os.sched_setaffinity(0, cores)
    try:
        yield cores
    finally:
        os.sched_setaffinity(0, had)


def rank_threads(train_cfg: Any) -> int | None:
    """Intra-op threads each rank sets: train.threads; else, on train.cpus, as many as those cores."""
    if train_cfg.threads is not None:
        return train_cfg.threads
    return len(parse_cpus(train_cfg.cpus)) if train_cfg.cpus is not None else None


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------- ranks


def run(cfg: Any) -> dict[str, Any]:
    """The job under its budget, as one process or R ranks; its row's metrics, each rank's figures under
    RANK_FIGURES. On a SLURM task other than rank 0 it returns {} (rank 0 records the row)."""
    validate(cfg)  # before the budget and the ranks act on it (each rank's job validates it again)
    with cpu_budget(cfg.train) as cores:
        tasks = slurm.tasks()
        if tasks > 1:
            figures = join(cfg, tasks)
            if figures is None:
                return {}
        elif cfg.train.ranks > 1:
            figures = launch(cfg)
        else:
            with torch_threads(rank_threads(cfg.train)) as threads:
                figures = {0: {**run_job(cfg), "rank": 0, "torch_threads": threads}}
    return combine(figures, cfg, len(cores))


def launch(cfg: Any) -> dict[int, dict[str, Any]]:
    """train.ranks ranks on this host through torch's elastic agent; {rank: its metrics}."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # the agent says what it does at INFO and logs a failure with its traceback: the row and the job's log
    # get the failing rank's own error instead (RankFailed), once
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    logging.getLogger("torch.multiprocessing").setLevel(logging.ERROR)  # "Terminating process ...": the others
    # torch.accelerator.is_available() in LaunchConfig would otherwise poison CUDA for the forked ranks
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    config = OmegaConf.to_container(cfg, resolve=True)
    with tempfile.TemporaryDirectory(prefix="pinsweep-ranks-") as folder:
        launch_config = LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            nproc_per_node=cfg.train.ranks,
            run_id=uuid.uuid4().hex,
            rdzv_backend="c10d",  # torchrun --standalone: a rendezvous on this host, on a free port
            rdzv_endpoint="localhost:0",
            max_restarts=0,  # a failed rank is the job's finding, not something to retry
            monitor_interval=0.1,
            start_method=rank_start_method(),
            logs_specs=DefaultLogsSpecs(log_dir=os.path.join(folder, "logs")),
        )
        # the ranks' CPU placement is train.cpus's: elastic's NUMA binding would change it behind the sweep's back
        launch_config.numa_options = None
        handlers = {signum: signal.getsignal(signum) for signum in AGENT_SIGNALS}
        # the agent stops its ranks on the signals nobody here handles yet; one that the sweep handles
        # (isolate=false: Ctrl-C, SIGTERM) stays the sweep's, and one ignored (SIGINT in an isolated job) ignored
        launch_config.signals_to_handle = ",".join(s.name for s, h in handlers.items() if h == signal.SIG_DFL)
        try:
            return elastic_launch(launch_config, rank_job)(config, folder)  # each rank on its local rank's GPU
        except ChildFailedError as failed:
            raise root_cause(failed, Path(folder)) from None
        except BaseException:  # the sweep stops (isolate=false): no rank outlives its job
            _kill_ranks(Path(folder))
            raise
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)


def rank_start_method() -> str:
    """How the agent starts the ranks. From a job's own process, fork: torch is imported already and no
    rank pays for importing it again. Elsewhere (isolate=false, after this process trained) the job
    process's start method, the fork server by default: a rank forked from a process whose OpenMP
    threads have run hangs in its first parallel op (GNU OpenMP is not fork-safe)."""
    return "fork" if start.IN_JOB_PROCESS else start.job_context().get_start_method()


def _kill_ranks(folder: Path) -> None:
    """SIGKILL every rank that is still running; their DataLoader workers end when they see it gone."""
    for path in folder.glob("rank*.pid"):
        with suppress(OSError, ValueError):  # gone already
            os.kill(int(path.read_text()), signal.SIGKILL)


def join(cfg: Any, tasks: int) -> dict[int, dict[str, Any]] | None:
    """This SLURM task as one rank of the job; rank 0 gets every rank's metrics, the others None."""
    from submitit.helpers import TorchDistributedEnvironment

    if tasks != cfg.train.ranks:
        raise ConfigError(
            f"SLURM runs this job as {tasks} tasks (hydra.launcher.tasks_per_node x nodes) and train.ranks="
            f"{cfg.train.ranks}: set train.ranks={tasks}, or the launcher's tasks_per_node to match"
        )
    # counted by NVML: cudaGetDeviceCount would fix the visible GPUs before CUDA_VISIBLE_DEVICES narrows them
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    cuda = torch.cuda.is_available() and cfg.train.device != "cpu"
    # MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK for init_process_group's env://; on CUDA this task's GPU
    environment = TorchDistributedEnvironment().export(set_cuda_visible_devices=cuda, overwrite=True)
    try:
        # CUDA_VISIBLE_DEVICES now shows this task its own GPU only: cuda:0
        return rank_job(OmegaConf.to_container(cfg, resolve=True), None, 0)
    except Exception as error:  # this task's own view: a peer's failure reaches it as a failed collective
        raise RankFailed(environment.rank, error) from error


# ---------------------------------------------------------------------------------------- one rank


def rank_job(config: dict, folder: str | None, gpu: int | None = None) -> dict[str, Any] | Any:
    """One rank: join the process group, run the job, hand back its metrics.

    Under the elastic agent (`folder` set) every rank returns its own metrics, and a failure is kept
    in `folder` for root_cause; under SLURM (`folder` None) rank 0 gathers all ranks' metrics and
    returns them, the others None. `gpu`: this rank's GPU index (None: its local rank's)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the agent's stop ends a rank even inside a collective
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the sweep's to handle (pinsweep.job.isolate)
    # a rank from the fork server would start its DataLoader workers from a fork server of its own; they
    # start as in the user's own script (the platform default, fork on Linux)
    multiprocessing.set_start_method(None, force=True)
    _exit_with_parent()
    cfg = OmegaConf.create(config)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if folder is not None:
        (Path(folder) / f"rank{rank}.pid").write_text(str(os.getpid()))
    _name_rank_in_logs(rank)
    timeout = datetime.timedelta(seconds=cfg.train.timeout_s + COLLECTIVE_MARGIN_S) if cfg.train.timeout_s else None
    joined = False
    try:
        device = _rank_device(cfg, local_rank if gpu is None else gpu)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timeout, device_id=device if device.type == "cuda" else None)
        joined = True
        cfg.train.device = str(device)
        if cfg.train.fault_rank is not None and cfg.train.fault_rank != rank:
            cfg.train.inject_fault = None
        cfg.train.evaluate = bool(cfg.train.evaluate and rank == 0)  # one model, the same on every rank
        with torch_threads(rank_threads(cfg.train)) as threads:
            metrics = {**run_job(cfg), "rank": rank, "torch_threads": threads}
        if folder is not None:
            return metrics
        gathered = [None] * dist.get_world_size() if rank == 0 else None
        dist.gather_object(metrics, gathered, dst=0)
        return dict(enumerate(gathered)) if gathered is not None else None
    except Exception as error:  # kept before the group goes: the others notice a rank gone only then
        if folder is not None:
            _keep_failure(Path(folder), rank, collective_timeout(error, cfg.train.timeout_s))
        raise
    finally:
        if joined:
            dist.destroy_process_group()


def collective_timeout(error: Exception, timeout_s: float | None) -> Exception:
    """A collective that timed out (gloo: "Timed out waiting ...", NCCL's watchdog: "... timeout") is the
    job running past train.timeout_s where no alarm could reach it: a JobTimeout, its row `timeout`."""
    if isinstance(error, JobTimeout) or not timeout_s or not isinstance(error, RuntimeError):
        return error  # its own alarm's, or no time limit set
    if not COLLECTIVE_TIMED_OUT.search(str(error)):
        return error
    first = str(error).strip().splitlines()[0]
    return JobTimeout(f"a collective waited past train.timeout_s={timeout_s:g} + {COLLECTIVE_MARGIN_S:g} s: {first}")


def _rank_device(cfg: Any, gpu: int) -> torch.device:
    """The rank's device: its own GPU where CUDA trains the job (one GPU per rank), else the CPU."""
    wanted = str(cfg.train.device)
    if wanted == "cpu" or not torch.cuda.is_available():
        if wanted.startswith("cuda"):
            raise ConfigError(f"train.device={wanted} but CUDA is not available here: use train.device=auto or cpu")
        return torch.device("cpu")
    if wanted not in ("auto", "cuda"):
        raise ConfigError(
            f"train.device={wanted} names one GPU; with train.ranks > 1 use train.device=cuda (rank r on GPU r)"
        )
    count = torch.cuda.device_count()
    if gpu >= count:
        raise ConfigError(
            f"train.ranks={cfg.train.ranks} needs a GPU per rank and {count} are visible here: "
            f"lower train.ranks to {count}, or train.device=cpu"
        )
    return torch.device("cuda", gpu)


def _exit_with_parent() -> None:
    """End this rank when the process that started it is gone (the agent, or the fork server whose
    parent was the agent's): a rank whose agent was killed would hang on in its next collective."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="pinsweep-rank-parent-watch", daemon=True).start()


def _name_rank_in_logs(rank: int) -> None:
    """`[rank 1]` before every log line of this rank (the ranks share the job's log and terminal)."""

    def prefix(record: logging.LogRecord) -> bool:
        record.msg = f"[rank {rank}] {record.msg}"
        return True

    for handler in logging.getLogger().handlers:
        handler.addFilter(prefix)


def _keep_failure(folder: Path, rank: int, error: Exception) -> None:
    """Keep the rank's exception for root_cause, then wait: briefly if it is the job's first failure (a
    rank that died before it is seen first), long if another rank failed first (its failure is the
    cause, this one the consequence: the agent reports that one and stops this rank meanwhile)."""
    try:
        payload = pickle.dumps(error)
    except Exception:  # an exception that cannot be pickled: its text
        payload = pickle.dumps(RuntimeError(f"{type(error).__name__}: {error}"))
    (folder / f"rank{rank}.error").write_bytes(payload)
    first = False
    if not waited_for_another(error):  # out of time inside a collective: the rank it waited for is the cause
        try:
            os.close(os.open(folder / "first-failure", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            first = True
        except FileExistsError:
            pass
    time.sleep(FIRST_FAILURE_WAIT_S if first else LATER_FAILURE_WAIT_S)


def waited_for_another(error: Exception) -> bool:
    """Whether the rank ran out of time (train.timeout_s) while it waited for the other ranks: its alarm
    went off inside DDP's collectives (its buffer broadcast in forward, its all-reduce in backward) or a
    barrier, among the innermost frames below the alarm's handler (or of the error it surfaced in)."""
    if not isinstance(error, JobTimeout):
        return False
    for raised in (error, error.__cause__):
        if raised is None or raised.__traceback__ is None:
            continue
        frames = traceback.extract_tb(raised.__traceback__)[:-1]  # the last: where it was raised
        if any(part in frame.filename.replace(os.sep, "/") for frame in frames[-3:] for part in WAITING_IN):
            return True
    return False


def root_cause(failed: Any, folder: Path) -> Exception:
    """The failure the agent reported first, as RankFailed (its exception) or RankCrashed (its death)."""
    rank, failure = failed.get_first_failure()
    kept = folder / f"rank{rank}.error"
    if failure.exitcode > 0 and kept.exists():
        return RankFailed(rank, pickle.loads(kept.read_bytes()))
    if failure.exitcode > 0 and isinstance(failure.message, dict):  # raised before pinsweep's code ran
        return RankFailed(rank, RuntimeError(failure.message.get("message", "no message")))
    return RankCrashed(rank, failure.exitcode, failure.signal_name())


# ---------------------------------------------------------------------------------------- one row


def combine(figures: dict[int, dict[str, Any]], cfg: Any, cores: int) -> dict[str, Any]:
    """The job's row from its ranks' metrics (see the module docstring): rank 0's for what every rank
    shares, the slowest rank's breakdown, global throughput, the straggler and the CPU budget."""
    ranks = [figures[r] for r in sorted(figures)]
    for metrics in ranks:
        metrics["data_wait_frac"] = _fraction(metrics.get("data_wait_s"), metrics.get("steady_s"))
    stalls = np.array([m["data_wait_frac"] for m in ranks], dtype=float)
    slowest = ranks[int(np.nanargmax(stalls))] if not np.isnan(stalls).all() else ranks[0]
    row = dict(ranks[0])
    for key in ("data_wait_s", "host_wait_s", "copy_s", "compute_s", "step_s_mean", "step_ci_rel", "side_copy_s"):
        row[key] = slowest.get(key)
    for key in ("first_batch_s_median", "epoch_times_s", "epoch_s_median", "first_epoch_s", "train_s"):
        row[key] = slowest.get(key)
    for key in ("compute_ceiling_ips", "compute_ceiling_ci_rel", "compute_ceiling_steps"):
        row[key] = slowest.get(key)
    for key in ("loader_ceiling_ips", "loader_ceiling_ci_rel", "loader_ceiling_steps"):
        row[key] = slowest.get(key)
    # items in train.unit (pinsweep.job.step); an image pipeline's row keeps its images_* names too
    images, seconds = sum(m["items_timed"] for m in ranks), max(m["steady_s"] for m in ranks)
    if "images_per_s" in row:
        row.update(images_timed=images, images_per_s=images / seconds if seconds > 0 else float("nan"))
    row.update(
        items_timed=images,
        steady_s=seconds,
        throughput=images / seconds if seconds > 0 else float("nan"),
        ranks=len(ranks),
        ceilings="per rank",  # the slowest rank's own: compared with throughput / ranks
        throughput_per_rank=images / seconds / len(ranks) if seconds > 0 else float("nan"),
        rank_slowest=slowest["rank"],
        rank_stall_spread=float(np.nanmax(stalls) - np.nanmin(stalls)) if len(ranks) > 1 else 0.0,
        straggler_rank=straggler(stalls),
        loss_finite=all(m.get("loss_finite", True) for m in ranks),
        shared_device=any(m.get("shared_device", False) for m in ranks),
        peak_host_mb=max(m["peak_host_mb"] for m in ranks),
    )
    # an epoch of the job is every rank's share of it (pinsweep.job.train.EpochAccounting)
    for key in ("items_per_epoch", "samples_per_epoch", "batches_per_epoch", "idle_workers"):
        values = [m.get(key) for m in ranks]
        if all(isinstance(value, (int, float)) for value in values):
            row[key] = sum(values)
    for key in ("peak_device_mb", "peak_device_job_mb"):
        if any(key in m for m in ranks):
            row[key] = max(m.get(key, 0.0) for m in ranks)
    row.update(cpu_budget_figures(cfg, len(ranks), cores, int(slowest["torch_threads"])))
    row[RANK_FIGURES] = [{key: m.get(key) for key in RANK_COLUMNS} for m in ranks]
    row.pop("rank", None)
    if len(ranks) > 1:
        log.info(
            "%d ranks: %.1f %s/s together; slowest rank %d waits %.0f%% of its steps for data%s",
            len(ranks),
            row["throughput"],
            row["unit"],
            slowest["rank"],
            100 * slowest["data_wait_frac"],
            f", a straggler (others <= {1 / STRAGGLER_DOMINANCE:.0%} of that)" if row["straggler_rank"] >= 0 else "",
        )
    return row


def _fraction(part: Any, whole: Any) -> float:
    try:
        return float(part) / float(whole) if float(whole) > 0 else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def straggler(stalls: np.ndarray) -> int:
    """The rank whose stall dominates: at least STALL_FRACTION of its window (the verdict's threshold for
    an input-bound step) and STRAGGLER_DOMINANCE times any other rank's; -1 when none does."""
    if len(stalls) < 2 or np.isnan(stalls).any():
        return -1
    # here, past a one-rank job's return: the summarizer imports pandas, which no job should wait for
    from pinsweep.analysis.summarize import STALL_FRACTION

    order = np.argsort(stalls)[::-1]
    top, second = stalls[order[0]], stalls[order[1]]
    return int(order[0]) if top >= STALL_FRACTION and top >= STRAGGLER_DOMINANCE * second else -1


def cpu_budget_figures(cfg: Any, ranks: int, cores: int, threads: int) -> dict[str, Any]:
    """What the job ran on its cores: training processes and workers, and the torch threads among them."""
    workers = cfg.loader.num_workers
    worker_threads = cfg.loader.worker_threads or 1  # torch sets 1 in each DataLoader worker
    return {
        "cpu_cores": cores,  # the cores the job could use (train.cpus, else all this process had)
        "cpu_processes": ranks * (1 + workers),
        "cpu_threads": ranks * (threads + workers * worker_threads),  # torch intra-op threads, all processes
        "torch_threads": threads,  # per rank
        "worker_threads": worker_threads if workers else 0,
        "env.torch_threads": threads,  # the job's own, not the sweep process's
    }
