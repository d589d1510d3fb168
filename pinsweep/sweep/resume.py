"""Finish an interrupted or partly failed sweep in its own folder.

    python -m pinsweep.resume multirun/2026-11-24_10-00-00 [extra hydra overrides]

Re-runs the sweep's original command (read from `<sweep_dir>/multirun.yaml`, which Hydra writes when
a sweep starts) with `hydra.sweep.dir=<sweep_dir>`. Every job then finds its own folder again: a job
whose folder holds an `ok` row for the same overrides is skipped, the failed, interrupted, missing and
corrupt ones run (a damaged row is kept beside the new one as `row-corrupt-<time>.csv`), and the
summary is rewritten over all of them, each job counted once. A folder that a running sweep holds
(pinsweep/sweep/lock.py) is refused at once, and so is one this user cannot write (exit 1: a resume
writes into the sweep's own folder). The same as typing the command again with
`hydra.sweep.dir=<sweep_dir>` yourself.

Extra arguments are appended: meant for `hydra.*` settings (a launcher, its timeout). A task
override (`loader.*`, `train.*`) changes every job's overrides, so every job would run again.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pinsweep.sweep.lock import FolderInUse, cannot_write, check_free

SWEEP_CONFIG = "multirun.yaml"
# set anew by resume itself: the folder to resume into, and -m
REPLACED_HYDRA_OVERRIDES = ("hydra.sweep.dir=", "hydra.mode=")


class ResumeError(ValueError):
    """Not a folder that can be resumed; the message says why and what to do."""


def resume_command(sweep_dir: str | Path, extra: list[str] | None = None) -> tuple[list[str], Path]:
    """(argv, working directory) that re-runs the sweep saved in `sweep_dir` into that same folder."""
    sweep_dir = Path(sweep_dir).resolve()
    saved = sweep_dir / SWEEP_CONFIG
    if not saved.is_file():
        raise ResumeError(
            f"{saved} not found: pass the folder a `python -m pinsweep -m ...` sweep wrote "
            "(it holds multirun.yaml and one folder per job)"
        )
    hydra_cfg = OmegaConf.load(saved).hydra
    task = list(hydra_cfg.overrides.task)
    hydra_overrides = [o for o in hydra_cfg.overrides.hydra if not o.startswith(REPLACED_HYDRA_OVERRIDES)]
    # the user's own config folder (`--config-dir sweeps`) is no override: Hydra records it as a source
    config_dirs = [s.path for s in hydra_cfg.runtime.config_sources if s.provider == "command-line"]
    config_dirs = [option for path in config_dirs for option in ("--config-dir", path)]
    argv = [sys.executable, "-m", "pinsweep", *config_dirs, "-m", *task, *hydra_overrides, *(extra or [])]
    argv.append(f"hydra.sweep.dir={sweep_dir}")
    # relative paths in the overrides (data.root=data) mean what they meant where the sweep started
    original_cwd = Path(hydra_cfg.runtime.cwd)
    return argv, original_cwd if original_cwd.is_dir() else Path.cwd()


def save_sweep_config(config: DictConfig) -> None:
    """`multirun.yaml` as a sweep starts, for sweepers that do not write it (Hydra's basic sweeper does;
    the Optuna sweeper does not), so that this module can re-run the sweep
    (pinsweep.sweep.callbacks.SaveSweepConfig)."""
    sweep_dir = Path(config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / SWEEP_CONFIG)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinsweep.resume", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="the sweep folder to finish, e.g. multirun/2026-11-24_10-00-00")
    parser.add_argument("overrides", nargs="*", help="extra hydra.* overrides, e.g. hydra/launcher=submitit_slurm")
    args = parser.parse_args(argv)
    try:
        command, cwd = resume_command(args.sweep_dir, args.overrides)
        if (line := cannot_write(args.sweep_dir)) is not None:  # before the lock file that check_free makes
            print(
                f"pinsweep.resume: {line}: a resume writes into the sweep's own folder; copy it somewhere "
                "writable (cp -r) and resume the copy",
                file=sys.stderr,
            )
            return 1
        check_free(args.sweep_dir)  # at once, not after the sweep's start-up: the sweep would refuse too
    except (ResumeError, FolderInUse) as error:
        print(f"pinsweep.resume: {error}", file=sys.stderr)
        return 2
    print(f"pinsweep.resume: in {cwd}: {shlex.join(command[1:])}", file=sys.stderr)
    return subprocess.run(command, cwd=cwd).returncode
