"""hydra/launcher=local (conf/hydra/launcher/local.yaml): submitit_local, one job per GPU at a time.

submitit's local executor starts every job of a sweep at once and gives each the same GPU
(CUDA_VISIBLE_DEVICES=0 for gpus_per_node=1), so the jobs would time each other. This launcher
keeps submitit's job (a fresh process with its own log under .submitit/) but runs at most one job
per GPU slot, each with its own GPU(s); without a GPU, one job at a time. Hydra accepts launcher
classes only from the `hydra_plugins` package, hence this module's place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides

from pinsweep.sweep.launchers import gpu_slots, visible_gpus

log = logging.getLogger(__name__)
OWN_SETTINGS = {"submitit_folder", "gpus_per_node", "visible_gpus"}  # set by this launcher, not forwarded

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher
except ImportError:  # the optional extra is missing; local.yaml then fails on its `submitit_local` default
    LocalLauncher = None


def local_executor(params: dict[str, Any]) -> Any:
    """submitit's local executor with every launcher setting as the user gave it (it ignores the ones it
    has no use for, such as mem_gb), except the folder (the executor's own) and the GPUs, which the
    launcher sets per slot. No resubmission after a timeout: a job past timeout_min is a finding."""
    import submitit

    executor = submitit.LocalExecutor(folder=params["submitit_folder"], max_num_timeout=0)
    forwarded = {key: value for key, value in params.items() if key not in OWN_SETTINGS}
    executor.update_parameters(**forwarded, gpus_per_node=params.get("gpus_per_node") or 0)
    return executor


if LocalLauncher is not None:

    class LocalGpuLauncher(LocalLauncher):
        POLL_S = 0.5

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            per_job = self.params.get("gpus_per_node") or 0
            slots = gpu_slots(visible_gpus() if per_job else [], per_job)
            executor = local_executor(self.params)
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            log.info("local launcher: %d job(s) at a time, GPUs per slot %s, into %s", len(slots), slots, sweep_dir)

            waiting = list(enumerate(job_overrides, start=initial_job_idx))
            running: dict[int, tuple[int, Any]] = {}  # slot -> (job index, submitit job)
            finished: dict[int, Any] = {}
            while waiting or running:
                for slot, gpus in enumerate(slots):
                    if slot in running or not waiting:
                        continue
                    index, overrides = waiting.pop(0)
                    on = ",".join(map(str, gpus)) or "no GPU"
                    log.info("\t#%d (%s): %s", index, on, " ".join(filter_overrides(overrides)))
                    executor.update_parameters(visible_gpus=gpus)
                    job_args = (list(overrides), "hydra.sweep.dir", index, f"job_id_for_{index}", Singleton.get_state())
                    running[slot] = (index, executor.submit(self, *job_args))
                for slot, (index, job) in list(running.items()):
                    if job.done():
                        finished[index] = job
                        del running[slot]
                time.sleep(self.POLL_S)
            return [finished[index].results()[0] for index in sorted(finished)]
