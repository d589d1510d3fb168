"""hydra/sweeper=autotune (conf/experiment/autotune.yaml): Optuna's search, then a confirmation sweep.

    python -m pinsweep -m experiment=autotune hydra.sweeper.n_trials=6 hydra.sweeper.confirm_top=3

Hydra's plugin scan imports this module in every Hydra app of the environment, so it holds only what
registering the config needs: the config (hydra-optuna-sweeper's own, plus the confirmation's keys) and
a thin class that imports its implementation, pinsweep/autotune/sweeper.py (optuna, SQLAlchemy), once
a sweep starts, as Hydra's own optuna plugin does with its `_impl`.
"""

# no `from __future__ import annotations`: Hydra's plugin scan runs this module outside sys.modules,
# where dataclasses cannot resolve annotations given as strings
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig

try:  # the optional extra, pip install 'pinsweep[optuna]': its config module is dataclasses only, no optuna
    from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
except ImportError:  # not installed: hydra/sweeper=autotune is not offered (the config below is not stored)
    OptunaSweeperConf = object


@dataclass
class AutotuneSweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.pinsweep_sweeper.autotune.AutotuneSweeper"
    confirm_top: int = 3  # the best distinct trial configs re-run against the defaults (0: no confirmation)
    # the most interleaved rounds (train.repeat) of the confirmation: it stops once every comparison with the
    # defaults is resolved (the rounds=auto rule, pinsweep/sweep/rounds.py; 1: one round, nothing to stop on)
    confirm_repeats: int = 3
    confirm_seed: int = 0  # draws the order of the configs within each round


if OptunaSweeperConf is not object:
    ConfigStore.instance().store(group="hydra/sweeper", name="autotune", node=AutotuneSweeperConf, provider="pinsweep")


class AutotuneSweeper(Sweeper):
    """Hydra's handle on pinsweep.autotune.sweeper.AutotuneSweeperImpl, which it builds in setup()."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings  # the confirmation's keys and every hydra-optuna-sweeper setting
        self.impl: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        from pinsweep.autotune.sweeper import AutotuneSweeperImpl

        self.impl = AutotuneSweeperImpl(**self.settings)
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list) -> None:
        return self.impl.sweep(arguments)
