"""What the launcher presets in conf/hydra/launcher/ need beyond hydra-submitit-launcher's own config.

- `${pinsweep_cpus:}` (slurm.yaml's cpus_per_task): 1 CPU for the training process plus one per
  DataLoader worker of the hungriest job in the sweep, for each rank the task runs (train.ranks, all
  of them in one task unless hydra.launcher.tasks_per_node gives each its own). A job given fewer
  cores than it has workers measures CPU starvation, not the loader setting. Resolved once, where the
  launcher is built; `${pinsweep_gpus:}` (gpus_per_node): a GPU per rank of the largest train.ranks.
- hydra/launcher=local's GPUs (the launcher class itself lives in hydra_plugins/pinsweep_launcher/,
  where Hydra looks for plugins): the parent's visible GPUs, named as the parent names them (indices,
  `GPU-<uuid>`, MIG ids), split into disjoint slots; each job sees exactly its slot's, never more.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf

CPUS_RESOLVER, GPUS_RESOLVER = "pinsweep_cpus", "pinsweep_gpus"
NUM_WORKERS, RANKS = "loader.num_workers", "train.ranks"
LOCAL_OWN_SETTINGS = {"submitit_folder", "gpus_per_node"}  # hydra/launcher=local sets these itself
T = TypeVar("T")


def sweep_arguments(root: DictConfig) -> list[str]:
    """The sweep's overrides as the sweeper reads them: hydra.sweeper.params as `key=value` first, then
    the command line's (which win), sweep syntax included."""
    params = OmegaConf.select(root, "hydra.sweeper.params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()]
    return arguments + list(OmegaConf.select(root, "hydra.overrides.task") or [])


def largest_num_workers(root: DictConfig) -> int:
    """The largest loader.num_workers of any job: from the sweep's overrides (command line and
    hydra.sweeper.params, sweep syntax included) and from the composed config (experiment files)."""
    return largest_value(root, NUM_WORKERS, 0)


def largest_value(root: DictConfig, key: str, default: int) -> int:
    """The largest value of an integer key in any job of the sweep (see largest_num_workers)."""
    largest = OmegaConf.select(root, key, default=default) or default
    for override in OverridesParser.create().parse_overrides(sweep_arguments(root)):
        if override.key_or_group == key:
            largest = max(largest, *_values(override))
    return int(largest)


def _values(override: Override) -> list[int]:
    value = override.value()
    if isinstance(value, IntervalSweep):  # Optuna's interval(a, b): its upper end
        return [math.ceil(value.end)]
    values = list(override.sweep_iterator()) if override.is_sweep_override() else [value]
    return [int(v) for v in values if isinstance(v, (int, float)) or str(v).isdigit()]


def cpus_per_job(*, _root_: DictConfig) -> int:
    tasks = OmegaConf.select(_root_, "hydra.launcher.tasks_per_node", default=1) or 1
    ranks_per_task = math.ceil(largest_value(_root_, RANKS, 1) / tasks)
    return ranks_per_task * (1 + largest_num_workers(_root_))


def gpus_per_job(*, _root_: DictConfig) -> int:
    return largest_value(_root_, RANKS, 1)


def register_launchers() -> None:
    """What conf/hydra/launcher/ needs before Hydra composes the config: `${pinsweep_cpus:}`. Called by
    the launcher plugin as Hydra's plugin scan imports it (so in any Hydra app that puts
    pkg://pinsweep.conf on its search path) and by pinsweep's own app as it starts."""
    if not OmegaConf.has_resolver(CPUS_RESOLVER):
        OmegaConf.register_new_resolver(CPUS_RESOLVER, cpus_per_job)
    if not OmegaConf.has_resolver(GPUS_RESOLVER):
        OmegaConf.register_new_resolver(GPUS_RESOLVER, gpus_per_job)


# ------------------------------------------------------------------ hydra/launcher=local: GPUs per job


class GpuRequestError(CompactHydraException, ValueError):
    """More GPUs per job than the parent can see; Hydra prints a CompactHydraException as one line."""


def visible_gpus() -> list[str]:
    """The GPUs this process may use, each as the parent names it (an index, `GPU-<uuid>` or a MIG id):
    CUDA_VISIBLE_DEVICES as given, where set (empty: none), else every GPU of the machine by index."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        import torch  # only here: the count without creating a CUDA context in this process

        return [str(index) for index in range(torch.cuda.device_count())]
    return [entry.strip() for entry in listed.split(",") if entry.strip()]


def gpu_slots(gpus: Sequence[T], per_job: int) -> list[tuple[T, ...]]:
    """Disjoint GPU sets, one per job running at a time, each a subset of `gpus`; without GPUs (or with
    0 per job) one slot without any, so one job at a time. GPUs left over (3 GPUs, 2 per job) stay idle."""
    if per_job < 1 or not gpus:
        return [()]
    if len(gpus) < per_job:
        raise GpuRequestError(
            f"hydra/launcher=local: hydra.launcher.gpus_per_node={per_job} but only {len(gpus)} GPU(s) visible "
            f"(CUDA_VISIBLE_DEVICES={','.join(map(str, gpus))}): make more visible or lower gpus_per_node"
        )
    return [tuple(gpus[start : start + per_job]) for start in range(0, len(gpus) - per_job + 1, per_job)]


def local_executor(params: dict[str, Any]) -> Any:
    """submitit's local executor with every launcher setting as the user gave it (it ignores the ones it
    has no use for, such as mem_gb), except the folder (the executor's own) and the GPUs: submitit would
    number them from 0 whatever the parent sees, so it gets none and each job sets its own
    (run_on_gpus). No resubmission after a timeout: a job past timeout_min is a finding."""
    import submitit

    executor = submitit.LocalExecutor(folder=params["submitit_folder"], max_num_timeout=0)
    forwarded = {key: value for key, value in params.items() if key not in LOCAL_OWN_SETTINGS}
    executor.update_parameters(**forwarded, gpus_per_node=0)
    return executor


def run_on_gpus(gpus: Sequence[str], job: Callable[..., Any], *job_args: Any) -> Any:
    """A job's body in its submitit process: exactly its slot's GPUs visible, as the parent names
    them, set before anything in the job touches CUDA; then the job (hydra-submitit-launcher's own)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    return job(*job_args)
