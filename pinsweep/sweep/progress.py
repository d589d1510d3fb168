"""What a sweep shows while it runs: one line per job (job i of N and its overrides).

The per-step progress bar lives in the training loop (tqdm, silent when stderr is not a terminal,
as under CI or SLURM). This callback adds the sweep-level line; N is counted by expanding the grid as the
sweeper does (hydra/sweeper=pinsweep, or Hydra's basic one), or read from an Optuna-style `n_trials`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.utils import get_class
from omegaconf import DictConfig

from pinsweep.sweep.launchers import sweep_arguments

log = logging.getLogger("pinsweep")
JOB_COUNT_FILE = ".pinsweep-jobs"


def runs_the_grid(target: str) -> bool:
    """Whether the sweeper class runs the whole Cartesian product of the swept values: Hydra's basic
    sweeper and pinsweep's (the default), which extends it, split the command line with
    `split_arguments`. Asked of the class itself, so no private Hydra module is named here."""
    try:
        return callable(getattr(get_class(target), "split_arguments", None))
    except (ImportError, ValueError):
        return False


def count_jobs(config: DictConfig) -> int | None:
    """Jobs in this multirun, or None when the sweeper decides as it goes."""
    sweeper = config.hydra.sweeper
    if "n_trials" in sweeper:
        return int(sweeper.n_trials)
    if not runs_the_grid(str(sweeper.get("_target_", ""))):
        return None
    # imported here: the plugin is found through the hydra_plugins namespace, which
    # pinsweep.config.register_configs completes (editable installs) before any sweep starts
    from hydra_plugins.pinsweep_sweeper import sweep_jobs

    # the same grid as the sweeper's; the order of the jobs does not change their number, so this
    # also counts the basic sweeper's
    return len(sweep_jobs(sweep_arguments(config), shuffle=False))


class AnnounceJobs(Callback):
    """Logs `job i/N: overrides` as each job starts (the count is shared through the sweep folder,
    because under a cluster launcher jobs start in other processes on other machines)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        total = count_jobs(config)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / JOB_COUNT_FILE).write_text("" if total is None else str(total))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        hydra_cfg = config.hydra
        if hydra_cfg.mode is None or str(hydra_cfg.mode) != "RunMode.MULTIRUN":
            return
        count_file = Path(hydra_cfg.sweep.dir) / JOB_COUNT_FILE
        total = count_file.read_text().strip() if count_file.exists() else ""
        overrides = " ".join(hydra_cfg.overrides.task) or "(defaults)"
        log.info("job #%d (%d of %s): %s", hydra_cfg.job.num, hydra_cfg.job.num + 1, total or "?", overrides)
