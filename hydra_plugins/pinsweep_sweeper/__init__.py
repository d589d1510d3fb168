"""hydra/sweeper=pinsweep (the default, conf/config.yaml): Hydra's basic sweeper, jobs in rounds of train.repeat.

    python -m pinsweep -m loader.pin_memory=true,false train.repeat=0,1,2 loader.num_workers=0,2

Hydra's basic sweeper runs the Cartesian product of the swept values with the first axis typed
varying slowest, so the line above would run the three repeats of each config back to back, and
drift of the machine would land on whichever config ran during it. This sweeper takes the same
product and runs it as a randomized block design (pinsweep/sweep/order.py): every value of train.repeat is
a round that runs each config once, in a seeded random order that differs between rounds, whatever
order the axes were typed in. `hydra.sweeper.shuffle=false` keeps the product order within a round;
`hydra.sweeper.seed` picks the order, which is the same for the same overrides and seed, so that
`python -m pinsweep.resume` finds each finished job at its job number. Everything else (parsing,
hydra.sweeper.params, max_batch_size, multirun.yaml, launching) is the basic sweeper's own.

`hydra.sweeper.rounds=auto` (leave train.repeat out) runs the same jobs one round at a time and stops
as soon as every comparison is resolved, at `max_rounds`, or at `budget_s` (pinsweep/sweep/rounds.py,
imported only then: a plugin module is imported by every Hydra app at start-up, so this one imports
nothing heavy). `rounds=fixed`, the default, is the grid as typed, train.repeat=0,1,2 meaning what it always did.
Hydra accepts sweeper classes only from the `hydra_plugins` package, hence this module's place.
"""

# no `from __future__ import annotations`: Hydra's plugin scan runs this module outside sys.modules,
# where dataclasses cannot resolve annotations given as strings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override

from pinsweep.sweep.order import pinsweep_order


class Rounds(Enum):
    fixed = "fixed"  # the rounds train.repeat lists, all of them
    auto = "auto"  # one round at a time until every comparison is resolved (pinsweep/sweep/rounds.py)


@dataclass
class PinsweepSweeperConf(BasicSweeperConf):
    # max_batch_size (jobs handed to the launcher at once) and params (axes swept besides the command
    # line's, as in conf/experiment/quick.yaml) are the basic sweeper's
    _target_: str = "hydra_plugins.pinsweep_sweeper.PinsweepSweeper"
    seed: int = 0  # draws the order of the configs within each round; keep it to resume a sweep
    shuffle: bool = True  # false: within a round, the product order of the axes as typed
    rounds: Rounds = Rounds.fixed  # fixed: train.repeat as typed | auto: rounds until resolved (no train.repeat)
    min_rounds: int = 2  # auto: always run at least these rounds (one round cannot judge anything)
    max_rounds: int = 8  # auto: the most rounds; also what the looks' error spending is planned over
    # auto: no round that would end past this many seconds of the sweep's rounds (Optional: OmegaConf reads it)
    budget_s: Optional[float] = None  # noqa: UP045
    margin: float = 0.05  # auto: `equivalent` means within +-margin (0.05: between 1/1.05x and 1.05x)


# stored where Hydra imports its plugins, before it composes any config (as its own sweepers do)
ConfigStore.instance().store(group="hydra/sweeper", name="pinsweep", node=PinsweepSweeperConf, provider="pinsweep")


class PinsweepSweeper(BasicSweeper):
    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        seed: int = 0,
        shuffle: bool = True,
        rounds: Any = Rounds.fixed,
        min_rounds: int = 2,
        max_rounds: int = 8,
        budget_s: float | None = None,
        margin: float = 0.05,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.seed = seed
        self.shuffle = shuffle
        self.rounds = str(getattr(rounds, "value", rounds))
        self.min_rounds, self.max_rounds, self.budget_s, self.margin = min_rounds, max_rounds, budget_s, margin

    def sweep(self, arguments: list[str]) -> Any:
        if self.rounds != Rounds.auto.value:
            return super().sweep(arguments)
        from pinsweep.sweep.rounds import run_rounds  # lazy: pandas and scipy, only for a sweep that looks

        return run_rounds(self, arguments)

    # BasicSweeper.sweep builds its job batches by calling this (a static method there) through self;
    # an instance method here, because the order depends on this sweeper's seed and shuffle
    def split_arguments(self, overrides: list[Override], max_batch_size: int | None) -> list[list[list[str]]]:
        return ordered_batches(overrides, max_batch_size, self.seed, self.shuffle)


def ordered_batches(
    overrides: list[Override], max_batch_size: int | None, seed: int = 0, shuffle: bool = True
) -> list[list[list[str]]]:
    """Hydra's job product in pinsweep's order, in batches of max_batch_size. A plain function, not
    a method: Hydra's plugin scan re-executes basic_sweeper.py, after which an instance made outside
    Hydra of a class imported before the scan fails BasicSweeper.__init__'s super() check."""
    (product,) = BasicSweeper.split_arguments(overrides, None)
    ordered = pinsweep_order(product, seed=seed, shuffle=shuffle)
    return list(BasicSweeper.split_overrides_to_chunks(ordered, max_batch_size))


def sweep_jobs(arguments: Sequence[str], seed: int = 0, shuffle: bool = True) -> list[list[str]]:
    """The jobs, in run order, that this sweeper makes of `arguments` (hydra.sweeper.params as
    `key=value` first, then the command line's task overrides), each a list of its overrides."""
    overrides = OverridesParser.create().parse_overrides(list(arguments))
    return [job for batch in ordered_batches(overrides, None, seed, shuffle) for job in batch]
