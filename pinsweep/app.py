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
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pinsweep.config import ConfigError, register_configs
from pinsweep.data import DatasetUnavailable
from pinsweep.isolate import JobCrashed, run_isolated
from pinsweep.record import CONFIG_GROUPS, environment, flatten_config, read_row, set_aside, write_row
from pinsweep.train import JobTimeout, run_job

log = logging.getLogger("pinsweep")

# conf/ sits beside the package (an editable install, `pip install -e .`); an absolute path because
# under `python -m` Hydra would otherwise look for a Python module named `conf`
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

# torch's words for a worker process that died ("DataLoader worker (pid 123) is killed by signal:
# Killed.", "... exited unexpectedly"); an exception raised inside a worker reads "Caught ValueError
# in DataLoader worker process 0" instead, and is the dataset's failure, not a killed worker
WORKER_DIED = re.compile(r"DataLoader worker \(pid")


def classify(error: BaseException) -> str:
    """The row status for a failure: what went wrong, in one word the summary can group by."""
    if isinstance(error, (ConfigError, DatasetUnavailable)):
        return "invalid"
    if isinstance(error, torch.OutOfMemoryError):
        return "oom"
    if isinstance(error, JobTimeout):
        return "timeout"
    if isinstance(error, JobCrashed):
        return "crashed"
    if isinstance(error, RuntimeError) and WORKER_DIED.search(str(error)):
        return "worker_killed"
    return "failed"


def run_and_record(cfg: DictConfig, job_dir: str | Path, job_num: int = 0, overrides: str = "") -> dict[str, Any]:
    """Run the job unless its folder already holds an `ok` row for the same overrides (resume), and
    write its row whatever happens. Returns the row."""
    previous = read_row(job_dir)
    finished = previous is not None and previous.get("status") == "ok"
    if finished and cfg.resume and _same(previous.get("job.overrides"), overrides):
        log.info("resume: job #%s already has an ok row, skipped", job_num)
        return previous
    if finished:  # a finished result is never overwritten (another sweep into this folder, resume=false)
        kept = set_aside(job_dir)
        log.warning("job #%s: its folder held an ok row for %r: kept as %s", job_num, previous["job.overrides"], kept)
    row: dict[str, Any] = {"job.num": job_num, "job.overrides": overrides, "status": "ok", "error": ""}
    row.update(flatten_config(OmegaConf.masked_copy(cfg, list(CONFIG_GROUPS))))
    row.update(environment())
    try:
        row.update(run_isolated(cfg) if cfg.isolate else run_job(cfg))
        log.info(
            "job #%s ok: %.1f images/s steady state on %s, median epoch %.2f s, test accuracy %s",
            job_num,
            row["images_per_s"],
            row["device"],
            row["epoch_s_median"],
            row.get("test_accuracy", "n/a"),
        )
    except Exception as error:  # recorded, not raised: the sweep must go on
        row["status"] = classify(error)
        row["error"] = f"{type(error).__name__}: {error}"
        log.error("job #%s %s: %s", job_num, row["status"], row["error"], exc_info=row["status"] == "failed")
    write_row(job_dir, row)
    return row


def _same(recorded: Any, overrides: str) -> bool:
    recorded = "" if recorded is None or (isinstance(recorded, float) and math.isnan(recorded)) else recorded
    return str(recorded) == overrides


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    row = run_and_record(
        cfg,
        hydra_cfg.runtime.output_dir,
        hydra_cfg.job.num if multirun else 0,
        " ".join(hydra_cfg.overrides.task),
    )
    if row["status"] != "ok":  # already logged, as one line, by run_and_record
        if not multirun:
            sys.exit(1)
        # None, not NaN: hydra-optuna-sweeper tells Optuna a NaN as a completed value, which Optuna
        # refuses with an error that ends the whole search; a value that is no number is a failed trial
        return None
    return float(row["images_per_s"])


def cli() -> None:
    register_configs()
    main()
