"""The search space of `experiment=autotune` that a flat list of choices cannot express.

`loader.prefetch_factor` and `loader.persistent_workers` only exist for a DataLoader with worker
processes (torch refuses them with num_workers=0, and so does `validate`). Drawing them for every
trial would waste the trials that pair them with num_workers=0 on an error; here they are drawn
only when the trial has workers, the way Optuna expresses conditional parameters.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

PREFETCH_FACTORS = [1, 2, 4, 8]  # 2 is torch's default
PERSISTENT_WORKERS = [False, True]


def _value(trial: Any, key: str, default: Any) -> Any:
    """A key's value in this trial: drawn, fixed on the command line, or the config's."""
    if key in trial.params:
        return trial.params[key]
    return trial.user_attrs.get(key, default)


def loader_space(config: DictConfig, trial: Any) -> None:
    """hydra-optuna-sweeper's `custom_search_space`: called once per trial after the listed
    parameters are drawn; what it draws becomes overrides of that trial's job."""
    if int(_value(trial, "loader.num_workers", config.loader.num_workers)) == 0:
        return
    # a key the user already searches or fixes keeps the user's distribution or value
    if "loader.prefetch_factor" not in trial.params and "loader.prefetch_factor" not in trial.user_attrs:
        trial.suggest_categorical("loader.prefetch_factor", PREFETCH_FACTORS)
    if "loader.persistent_workers" not in trial.params and "loader.persistent_workers" not in trial.user_attrs:
        trial.suggest_categorical("loader.persistent_workers", PERSISTENT_WORKERS)
