"""What a sweep shows while it runs: one line per job (job i of N and its overrides).

The per-step progress bar lives in the training loop (tqdm, silent when stderr is not a terminal,
as under CI or SLURM). This module adds the sweep-level line (called by pinsweep.sweep.callbacks.AnnounceJobs);
N is counted by expanding the grid as the sweeper does (hydra/sweeper=pinsweep, or Hydra's basic one, with
Hydra's override parser: no import of the sweeper plugin), or read from an Optuna-style `n_trials`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
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
    # the grid as BasicSweeper.split_arguments builds it: one list of values per key, a later override
    # of a key (the command line's over hydra.sweeper.params) replacing an earlier one; the order the
    # jobs run in does not change their number
    values: dict[str, int] = {}
    for override in OverridesParser.create().parse_overrides(sweep_arguments(config)):
        if override.is_sweep_override() and not override.is_discrete_sweep():
            return None  # a range or interval: the basic sweeper refuses it, and says so itself
        discrete = override.is_sweep_override()
        values[override.get_key_element()] = len(list(override.sweep_string_iterator())) if discrete else 1
    return math.prod(values.values()) * (int(sweeper.max_rounds) if looks_as_it_goes(config) else 1)


def looks_as_it_goes(config: DictConfig) -> bool:
    """hydra.sweeper.rounds=auto (pinsweep/sweep/rounds.py): N is then the most jobs it may run."""
    rounds = config.hydra.sweeper.get("rounds", "fixed")
    return str(getattr(rounds, "value", rounds)) == "auto"


def write_job_count(config: DictConfig) -> None:
    """The multirun's job count into the sweep folder, as it starts: under a cluster launcher jobs start
    in other processes on other machines, which read it there."""
    total = count_jobs(config)
    sweep_dir = Path(config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    most = "up to " if looks_as_it_goes(config) else ""
    (sweep_dir / JOB_COUNT_FILE).write_text("" if total is None else f"{most}{total}")


def announce_job(config: DictConfig) -> None:
    """Logs `job #n (i of N): overrides` as a job of a multirun starts."""
    hydra_cfg = config.hydra
    if hydra_cfg.mode is None or str(hydra_cfg.mode) != "RunMode.MULTIRUN":
        return
    count_file = Path(hydra_cfg.sweep.dir) / JOB_COUNT_FILE
    total = count_file.read_text().strip() if count_file.exists() else ""
    overrides = " ".join(hydra_cfg.overrides.task) or "(defaults)"
    log.info("job #%d (%d of %s): %s", hydra_cfg.job.num, hydra_cfg.job.num + 1, total or "?", overrides)
