"""What the launcher presets in conf/hydra/launcher/ need beyond hydra-submitit-launcher's own config.

- `${pinsweep_cpus:}` (slurm.yaml's cpus_per_task): 1 CPU for the training process plus one per
  DataLoader worker of the hungriest job in the sweep. A job given fewer cores than it has workers
  measures CPU starvation, not the loader setting. Resolved once, where the launcher is built.
- `visible_gpus` and `gpu_slots` for hydra/launcher=local (the launcher class itself lives in
  hydra_plugins/pinsweep_launcher/, where Hydra looks for plugins).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override
from omegaconf import DictConfig, OmegaConf

CPUS_RESOLVER = "pinsweep_cpus"
NUM_WORKERS = "loader.num_workers"


def sweep_arguments(root: DictConfig) -> list[str]:
    """The sweep's overrides as the sweeper reads them: hydra.sweeper.params as `key=value` first, then
    the command line's (which win), sweep syntax included."""
    params = OmegaConf.select(root, "hydra.sweeper.params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()]
    return arguments + list(OmegaConf.select(root, "hydra.overrides.task") or [])


def largest_num_workers(root: DictConfig) -> int:
    """The largest loader.num_workers of any job: from the sweep's overrides (command line and
    hydra.sweeper.params, sweep syntax included) and from the composed config (experiment files)."""
    largest = OmegaConf.select(root, NUM_WORKERS, default=0) or 0
    for override in OverridesParser.create().parse_overrides(sweep_arguments(root)):
        if override.key_or_group == NUM_WORKERS:
            largest = max(largest, *_values(override))
    return int(largest)


def _values(override: Override) -> list[int]:
    value = override.value()
    if isinstance(value, IntervalSweep):  # Optuna's interval(a, b): its upper end
        return [math.ceil(value.end)]
    values = list(override.sweep_iterator()) if override.is_sweep_override() else [value]
    return [int(v) for v in values if isinstance(v, (int, float)) or str(v).isdigit()]


def cpus_per_job(*, _root_: DictConfig) -> int:
    return 1 + largest_num_workers(_root_)


def register_launchers() -> None:
    """What conf/hydra/ needs before Hydra composes the config and scans for plugins."""
    if not OmegaConf.has_resolver(CPUS_RESOLVER):
        OmegaConf.register_new_resolver(CPUS_RESOLVER, cpus_per_job)
    _expose_plugin()


def _expose_plugin() -> None:
    """Hydra 1.3 finds plugins by listing the `hydra_plugins` namespace's folders; an editable install
    (`pip install -e .`, setuptools >= 64) imports hydra_plugins/pinsweep_launcher and pinsweep_sweeper
    (the default sweeper, so every sweep needs it) through a hook that such a listing cannot see (hydra
    issue #3252). Add the checkout's folder to the namespace."""
    folder = Path(__file__).resolve().parents[2] / "hydra_plugins"
    try:
        import hydra_plugins
    except ImportError:
        return
    if (folder / "pinsweep_launcher").is_dir() and str(folder) not in list(hydra_plugins.__path__):
        hydra_plugins.__path__.append(str(folder))


def visible_gpus() -> list[int]:
    """The GPUs this machine lets us use, by index, without creating a CUDA context here."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        import torch

        return list(range(torch.cuda.device_count()))
    entries = [entry.strip() for entry in listed.split(",") if entry.strip()]
    if not all(entry.isdigit() for entry in entries):
        raise ValueError(f"CUDA_VISIBLE_DEVICES={listed}: hydra/launcher=local needs GPU indices, e.g. 0,1,2,3")
    return [int(entry) for entry in entries]


def gpu_slots(gpus: Sequence[int], per_job: int) -> list[tuple[int, ...]]:
    """Disjoint GPU sets, one per job running at a time; without GPUs one slot, so one job at a time."""
    if per_job < 1 or len(gpus) < per_job:
        return [()]
    return [tuple(gpus[start : start + per_job]) for start in range(0, len(gpus) - per_job + 1, per_job)]
