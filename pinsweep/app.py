"""The Hydra entry point: one call = one job = one recorded row.

    python -m pinsweep -m loader.pin_memory=true,false loader.num_workers=0,8

`main` is a thin `@hydra.main` over `run_and_record`, which tests call directly. Every job writes a
row, also when it fails: Hydra 1.3 stops the sweep at a job that raises and then skips
`on_multirun_end`, so a failure is caught here, recorded with its status, and the sweep goes on.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pinsweep.config import Config
from pinsweep.job import slurm
from pinsweep.job.environment import environment, host_environment
from pinsweep.job.isolate import job_log_file, log_traceback, one_line, run_isolated
from pinsweep.record import (
    CONFIG_GROUPS,
    RANK_FIGURES,
    CorruptRow,
    evaluation_line,
    flatten_config,
    read_row,
    set_aside,
    throughput_of,
    unit_of,
    write_ranks,
    write_row,
)
from pinsweep.sweep.interrupt import Interrupted, finish_interrupted, job_signals

log = logging.getLogger("pinsweep")


def _config_dir() -> str:
    """The repository's conf/, installed into the package as pinsweep/conf by a wheel (`pip install .`)
    and found beside the package in a checkout (`pip install -e .`). An absolute path, because under
    `python -m` Hydra would otherwise look for a Python module named `conf`."""
    package = Path(__file__).resolve().parent
    installed = package / "conf"
    return str(installed if (installed / "config.yaml").is_file() else package.parent / "conf")


CONFIG_DIR = _config_dir()

# torch's words for a worker process that died ("DataLoader worker (pid 123) is killed by signal:
# Killed.", "... exited unexpectedly"); an exception raised inside a worker reads "Caught ValueError
# in DataLoader worker process 0" instead, and is the dataset's failure, not a killed worker
WORKER_DIED = re.compile(r"DataLoader worker \(pid")


# the row status of each failure, by the exception's class name (its own or a base class's): the sweep
# process never imports torch or the job's code (jobs run in the fork server), and a job's exception
# reaches it by pickle, which imports the class's module only when that failure happens
STATUS_OF = {
    "ConfigError": "invalid",  # pinsweep.config: a value typed right that cannot run
    "DatasetUnavailable": "invalid",  # pinsweep.input.data: no dataset where the config says
    "OutOfMemoryError": "oom",  # torch.OutOfMemoryError (torch.cuda.OutOfMemoryError)
    "JobTimeout": "timeout",  # pinsweep.job.train: past train.timeout_s
    "JobCrashed": "crashed",  # pinsweep.job.isolate: the job's process died without reporting
    "RankCrashed": "crashed",  # pinsweep.job.ranks: one rank of the job died without reporting
}


def classify(error: BaseException) -> str:
    """The row status for a failure: what went wrong, in one word the summary can group by."""
    if type(error).__name__ == "RankFailed":  # pinsweep.job.ranks: one rank raised; the status is its error's
        return classify(error.error)
    for cls in type(error).__mro__:
        if cls.__name__ in STATUS_OF:
            return STATUS_OF[cls.__name__]
    if isinstance(error, RuntimeError) and WORKER_DIED.search(str(error)):
        return "worker_killed"
    return "failed"


class Previous(Enum):
    """What a job does with the row its folder already holds."""

    RUN = "run"  # none, or not a success: run the job (its new row replaces the old)
    SKIP = "skip"  # an ok row of this very job, and resume=true: nothing to run
    SET_ASIDE = "set aside"  # an ok row of another job, or resume=false: keep it beside, then run


def what_to_do(previous: dict[str, Any] | None, resume: bool, overrides: str) -> Previous:
    """A finished result is never overwritten (another sweep into this folder, resume=false), and only
    the same job's success is skipped."""
    if previous is None or previous.get("status") != "ok":
        return Previous.RUN
    if resume and _same(previous.get("job.overrides"), overrides):
        return Previous.SKIP
    return Previous.SET_ASIDE


def _same(recorded: Any, overrides: str) -> bool:
    recorded = "" if recorded is None or (isinstance(recorded, float) and math.isnan(recorded)) else recorded
    return str(recorded) == overrides


def run_and_record(cfg: DictConfig, job_dir: str | Path, job_num: int = 0, overrides: str = "") -> dict[str, Any]:
    """Run the job unless its folder already holds an `ok` row for the same overrides (resume), and
    write its row whatever happens. Returns the row; a stop signal (pinsweep.sweep.interrupt) is recorded as
    `interrupted` and raised on."""
    try:
        previous = read_row(job_dir)
    except CorruptRow as damage:  # synced, copied or edited since: run the job again, keep the file
        kept = set_aside(job_dir, "corrupt")
        log.warning("job #%s: %s; kept as %s, running the job again", job_num, damage, kept.name)
        previous = None
    decision = what_to_do(previous, cfg.resume, overrides)
    if decision is Previous.SKIP:
        log.info("resume: job #%s already has an ok row, skipped", job_num)
        return previous
    if decision is Previous.SET_ASIDE:
        kept = set_aside(job_dir)
        log.warning("job #%s: its folder held an ok row for %r: kept as %s", job_num, previous["job.overrides"], kept)
    row: dict[str, Any] = {"job.num": job_num, "job.overrides": overrides, "status": "ok", "error": ""}
    row["log"] = job_log_file() or ""  # where a failure's whole traceback is
    row.update(flatten_config(OmegaConf.masked_copy(cfg, list(CONFIG_GROUPS))))
    # write_row's pandas, imported before the job rather than after it: the fork server is still
    # importing torch when a sweep's first job gets here, so this costs that job nothing
    import pandas  # noqa: F401

    started = time.perf_counter()  # job_s: the job as the sweep waits for it (what a round costs)
    try:
        with job_signals():
            # in here: a stop signal during them still leaves an `interrupted` row
            if cfg.isolate:  # the torch side of env.* comes from the job's process, which has torch
                row.update(host_environment())
                metrics = run_isolated(cfg, on_environment=row.update)
            else:
                from pinsweep.job.ranks import run  # imports torch: this process runs the job itself

                row.update(environment())
                metrics = run(cfg)
            write_ranks(job_dir, metrics.pop(RANK_FIGURES))  # each rank's own figures, beside the row
            row.update(metrics)
            row.update(job_seconds(row, started))
        log.info(
            "job #%s ok: %.1f %s/s steady state on %s, median epoch %.2f s, %s",
            job_num,
            throughput_of(row),
            unit_of(row),
            row["device"],
            row["epoch_s_median"],
            evaluation_line(row),
        )
        if not row.get("loss_finite", True):
            log.warning(
                "job #%s: final loss %s: the training diverged (timing kept, loss_finite=false)",
                job_num,
                row["final_loss"],
            )
    except Exception as error:  # recorded, not raised: the sweep must go on
        row["status"] = classify(error)
        row["error"] = one_line(error)  # the whole traceback goes to the job's log (the child logs its own)
        if not cfg.isolate:
            log_traceback(error)
        log.error("job #%s %s: %s (log: %s)", job_num, row["status"], row["error"], row["log"] or "none")
    except Interrupted as interruption:  # recorded, then raised: the sweep stops here
        interruption.caught()
        row.update(status="interrupted", error=f"Interrupted: {interruption}")
        row.setdefault("job_s", time.perf_counter() - started)
        write_row(job_dir, row)  # on disk before the line that says so: a second Ctrl-C exits at once
        log.error("job #%s interrupted: %s", job_num, interruption)
        raise
    row.setdefault("job_s", time.perf_counter() - started)
    write_row(job_dir, row)
    return row


# what a job measures of itself outside its timed window (pinsweep/job/train.py), besides train_s
PARTS_S = ("setup_s", "train_s", "ceilings_s", "eval_s")


def job_seconds(row: dict[str, Any], started: float) -> dict[str, float]:
    """job_s, the whole job as the sweep waited for it, and start_s, what the job's own parts (setup,
    training with its warm-up, ceilings, evaluation) leave of it: process start, environment, the row."""
    job_s = time.perf_counter() - started
    parts = sum(float(row[part]) for part in PARTS_S if isinstance(row.get(part), (int, float)))
    return {"job_s": job_s, "start_s": max(job_s - parts, 0.0)}


def follow(cfg: DictConfig) -> None:
    """Train as one rank of the job (pinsweep.job.ranks.join); its failures are logged here, as one
    line, and reach rank 0 as the failure of a collective, which rank 0 records."""
    try:
        with job_signals():
            if cfg.isolate:
                run_isolated(cfg)
            else:
                from pinsweep.job.ranks import run

                run(cfg)
    except Exception as error:
        log.error("this rank failed: %s (log: %s)", one_line(error), job_log_file() or "none")
    except Interrupted as interruption:
        interruption.caught()
        log.error("this rank was interrupted: %s", interruption)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if slurm.is_follower():  # a SLURM task of a multi-rank job other than rank 0: rank 0 records the row
        follow(cfg)
        return None
    try:
        row = run_and_record(
            cfg,
            hydra_cfg.runtime.output_dir,
            hydra_cfg.job.num if multirun else 0,
            " ".join(hydra_cfg.overrides.task),
        )
    except Interrupted as interruption:
        if not multirun or interruption.sweep_dir is not None:
            raise  # this process runs the sweep (or is the single run): cli() finishes it
        return None  # a job apart from its sweep (a SLURM job): recorded; the sweep goes on and counts it
    if row["status"] != "ok":  # already logged, as one line, by run_and_record
        if not multirun:
            sys.exit(1)
        # None, not NaN: hydra-optuna-sweeper tells Optuna a NaN as a completed value, which Optuna
        # refuses with an error that ends the whole search; a value that is no number is a failed trial
        return None
    return throughput_of(row)


def register_configs() -> None:
    """Before Hydra composes: the schema in Hydra's ConfigStore, so that conf/config.yaml can extend it
    (Hydra's structured-config pattern), and what conf/hydra/launcher/ needs (`${pinsweep_cpus:}`, which
    the launcher plugin also registers as Hydra's plugin scan imports it, for other apps)."""
    from pinsweep.sweep.launchers import register_launchers

    ConfigStore.instance().store(name="base_config", node=Config)
    register_launchers()


def cli() -> None:
    register_configs()
    try:
        main()
    except Interrupted as interruption:  # the running job is recorded as interrupted; summarize the rest
        sys.exit(finish_interrupted(interruption))
