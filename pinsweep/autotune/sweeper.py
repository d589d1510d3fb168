"""What `hydra/sweeper=autotune` runs: Optuna's search, then the confirmation sweep.

The plugin class Hydra finds (hydra_plugins/pinsweep_sweeper/autotune.py) is a thin shell that imports
this module only when a sweep starts, as Hydra's own optuna plugin does with its `_impl`: importing
hydra-optuna-sweeper's sweeper pulls in optuna and SQLAlchemy (seconds, and a deprecation warning that
`python -Werror` turns into an error), which Hydra's plugin scan would otherwise pay in every app.

hydra-optuna-sweeper runs the trials and writes `optimization_results.yaml`, untouched here. Then the
confirmation (pinsweep/autotune/confirm.py) runs through the same kind of launcher, as ordinary jobs into
`<sweep>/confirm/<n>/` (so it runs under the SLURM launcher as the trials do), that folder is summarized
like any sweep, and `<sweep>/autotune.yaml` is written. The end-of-sweep callback then summarizes the
trials themselves, and the report quotes the outcome.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("pinsweep")


class _RecordingLauncher:
    """The search's launcher, noting each trial's overrides and the images/s it returned."""

    def __init__(self, launcher: Any, trials: list) -> None:
        self.launcher, self.trials = launcher, trials

    def launch(self, job_overrides: Any, initial_job_idx: int) -> Any:
        from pinsweep.autotune.confirm import Trial

        returns = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        for overrides, ret in zip(job_overrides, returns):
            try:
                value = float(ret.return_value)
            except Exception:  # a failed job re-raises its error here; Optuna records it as failed
                value = math.nan
            self.trials.append(Trial(list(overrides), value))
        return returns


class AutotuneSweeperImpl(OptunaSweeper):
    def __init__(self, confirm_top: int = 3, confirm_repeats: int = 3, confirm_seed: int = 0, **optuna: Any):
        super().__init__(**optuna)
        self.confirm_top, self.confirm_repeats, self.confirm_seed = confirm_top, confirm_repeats, confirm_seed
        self.trials: list = []

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config
        self.sweeper.launcher = _RecordingLauncher(self.sweeper.launcher, self.trials)

    def sweep(self, arguments: list) -> None:
        super().sweep(arguments)
        if self.confirm_top > 0 and self.confirm_repeats > 0:
            self.confirm(arguments)

    def confirm(self, arguments: list) -> None:
        from pinsweep.analysis.summarize import SummaryError
        from pinsweep.autotune import confirm
        from pinsweep.record import NESTED_SWEEP_MARK, read_rows
        from pinsweep.spelling import norm
        from pinsweep.sweep.progress import JOB_COUNT_FILE
        from pinsweep.sweep.results import report_folder, summarize_folder

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        confirm_dir = sweep_dir / confirm.CONFIRM_DIR
        # the same split the Optuna sweeper makes: values fixed on the command line or in params
        _, fixed_params = create_params_from_overrides(self.sweeper._parse_sweeper_params_config() + list(arguments))
        fixed = [f"{name}={value}" for name, value in fixed_params.items()]
        keys = confirm.searched_keys(self.trials, fixed)
        configured = {key: norm(OmegaConf.select(self.config, key)) for key in keys}
        plan = confirm.plan(self.trials, fixed, configured, self.confirm_top, self.confirm_repeats, self.confirm_seed)

        best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
        search_pick = confirm.settings_of([f"{k}={v}" for k, v in best.best_params.items()], keys, configured)

        confirm_dir.mkdir(parents=True, exist_ok=True)
        (confirm_dir / NESTED_SWEEP_MARK).write_text("auto-tune confirmation: a sweep of its own\n")
        (confirm_dir / JOB_COUNT_FILE).write_text(str(len(plan.jobs)))
        log.info(
            "auto-tune: confirming %d configs against the defaults, %d rounds (%d jobs) into %s",
            len(plan.candidates),
            self.confirm_repeats,
            len(plan.jobs),
            confirm_dir,
        )
        # every job's own hydra.sweep.dir: launchers compose each job from the master config plus its
        # overrides, so the jobs land in confirm/<n>/ under any launcher
        where = f"hydra.sweep.dir='{confirm_dir}'"
        launcher = Plugins.instance().instantiate_launcher(
            config=self.config, hydra_context=self.hydra_context, task_function=self.task_function
        )
        jobs = [[*job, where] for job in plan.jobs]
        if self.confirm_repeats < 2:  # one round: nothing to look at between rounds
            launcher.launch(jobs, initial_job_idx=0)
        else:  # the rounds=auto rule: round after round until every comparison is resolved, at most confirm_repeats
            from pinsweep.analysis.sequential import Plan
            from pinsweep.sweep.rounds import launch_in_rounds

            size = len(plan.candidates) + 1  # each round: every candidate and the defaults once
            rounds = [jobs[i : i + size] for i in range(0, len(jobs), size)]
            launch_in_rounds(
                lambda batch, job: [launcher.launch(batch, initial_job_idx=job)],
                rounds,
                confirm_dir,
                Plan(max_rounds=self.confirm_repeats).check(),
                baseline=lambda: confirm.baseline_text(read_rows(confirm_dir), plan),
            )

        rows = read_rows(confirm_dir)  # once: the summary and the verdict are drawn from the same tables
        summary = None
        try:  # the confirmation's own summary, against the defaults
            tables = summarize_folder(confirm_dir, confirm.baseline_text(rows, plan), rows)
            summary = tables.summary
        except SummaryError:  # the defaults failed in every round: summarize against the first that ran
            log.exception("confirmation not summarized against the defaults; summarizing %s as it ran", confirm_dir)
            tables = summarize_folder(confirm_dir, rows=rows)
        try:  # the summary stands alone, as at the end of any sweep (pinsweep.sweep.results.write_results)
            report_folder(confirm_dir, tables)
        except OSError as error:  # a file that could not be written was named where it failed
            log.error("confirmation report not made: %s (its summary.csv is written)", error)
        except Exception as error:  # a bug, not the disk: its traceback is what a fix needs
            log.exception(
                "confirmation report not made: %s: %s, an error in pinsweep, not the disk (its summary.csv is "
                "written); please report it with this traceback",
                type(error).__name__,
                error,
            )
        outcome = confirm.judge(rows, plan, search_pick, float(best.best_value), summary)
        # the report of the whole sweep, written when the callback summarizes the trials, quotes it
        log.info("auto-tune: wrote %s", confirm.write_outcome(sweep_dir, outcome))
