"""hydra/launcher=local (conf/hydra/launcher/local.yaml): submitit's local jobs, one per GPU slot at a time.

submitit's local executor starts every job of a sweep at once and numbers their GPUs from 0 whatever
the parent sees (CUDA_VISIBLE_DEVICES=0 for gpus_per_node=1, also where the user hid every GPU), so
the jobs would time each other on GPUs that may not be theirs. This launcher keeps submitit's job (a
fresh process with its own log under .submitit/, hydra-submitit-launcher's job body) but runs at most
one job per GPU slot, each seeing exactly its slot's GPUs as the parent names them (indices, UUIDs or
MIG ids: pinsweep.sweep.launchers); without a GPU, one job at a time, seeing none.

Hydra accepts launcher classes only from the `hydra_plugins` package, hence this module's place, and
its plugin scan imports it in every Hydra app of the environment: it imports hydra only, submitit and
hydra-submitit-launcher (the optional extra pinsweep[slurm]) once a sweep starts.
"""

# no `from __future__ import annotations`: Hydra's plugin scan runs this module outside sys.modules
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf

from pinsweep.sweep.launchers import gpu_slots, local_executor, register_launchers, run_on_gpus, visible_gpus

log = logging.getLogger(__name__)

register_launchers()  # ${pinsweep_cpus:} for conf/hydra/launcher/slurm.yaml, before any config is composed


class LocalGpuLauncher(Launcher):
    POLL_S = 0.5

    def __init__(self, **params: Any) -> None:
        # the settings of hydra-submitit-launcher's submitit_local (local.yaml's defaults), plain values
        self.params = {
            key: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for key, v in params.items()
        }
        self.job: Any = None  # hydra-submitit-launcher's LocalLauncher: the body each job runs
        self.slots: list[tuple[str, ...]] = []

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        try:
            from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher
        except ImportError:
            raise CompactHydraException(
                "hydra/launcher=local needs hydra-submitit-launcher: pip install 'pinsweep[slurm]'"
            ) from None
        self.config = config
        per_job = self.params.get("gpus_per_node") or 0
        # refused here, before the sweep starts, when a job would need more GPUs than are visible
        self.slots = gpu_slots(visible_gpus() if per_job else [], per_job)
        self.job = LocalLauncher(**self.params)
        self.job.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        executor = local_executor(self.params)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(
            "local launcher: %d job(s) at a time, GPUs per slot %s, into %s", len(self.slots), self.slots, sweep_dir
        )

        waiting = list(enumerate(job_overrides, start=initial_job_idx))
        running: dict[int, tuple[int, Any]] = {}  # slot -> (job index, submitit job)
        finished: dict[int, Any] = {}
        while waiting or running:
            for slot, gpus in enumerate(self.slots):
                if slot in running or not waiting:
                    continue
                index, overrides = waiting.pop(0)
                log.info("\t#%d (%s): %s", index, ",".join(gpus) or "no GPU", " ".join(filter_overrides(overrides)))
                job_args = (list(overrides), "hydra.sweep.dir", index, f"job_id_for_{index}", Singleton.get_state())
                running[slot] = (index, executor.submit(run_on_gpus, gpus, self.job, *job_args))
            for slot, (index, job) in list(running.items()):
                if job.done():
                    finished[index] = job
                    del running[slot]
            if running:
                time.sleep(self.POLL_S)
        return [finished[index].results()[0] for index in sorted(finished)]
