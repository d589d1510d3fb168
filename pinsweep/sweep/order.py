"""The order a grid sweep runs its jobs in: a randomized block design over `train.repeat`.

    pinsweep_order([["loader.pin_memory=true", "train.repeat=0"], ...], seed=0) -> the same jobs, reordered

`train.repeat` is a replicate index, so each of its values is a round (a block) that runs every
config once before any config runs again: slow drift of the machine (thermal, other tenants) then
lands on every config equally, and the summary can pair configs within a round. Within a round the
configs run in a seeded random order, a different one in each round, so that a machine state that
lasts a few jobs, or the first job of a round, hits configs at random rather than always the same
one. The order depends only on the jobs and the seed: `python -m pinsweep.resume` re-runs the same
command and must find every finished job again at the same job number.

hydra/sweeper=pinsweep (hydra_plugins/pinsweep_sweeper/) applies this to Hydra's Cartesian product;
it is a plain function so that a simulation can lay out a sweep's jobs exactly as a real one runs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

REPEAT_KEY = "train.repeat"


def override_key(override: str) -> str:
    """`train.repeat` of `train.repeat=2` (also of `+train.repeat=2`, `++train.repeat=2`)."""
    return override.split("=", 1)[0].lstrip("+~")


def pinsweep_order(job_overrides: Sequence[Sequence[str]], seed: int = 0, shuffle: bool = True) -> list[list[str]]:
    """The jobs (each a list of `key=value` overrides) in run order: rounds of `train.repeat` one after
    another, in the order its values first appear; within a round the jobs in their given order, or
    (shuffle) in a random order drawn from `seed`. Each job keeps its own overrides as they are.
    Jobs without a `train.repeat` override form one round."""
    rounds: dict[str | None, list[list[str]]] = {}
    for job in job_overrides:
        repeat = next((override for override in job if override_key(override) == REPEAT_KEY), None)
        rounds.setdefault(repeat, []).append(list(job))
    if not shuffle:
        return [job for jobs in rounds.values() for job in jobs]

    rng = random.Random(seed)
    # permutations already drawn: a later round draws another one while any is left, so that with
    # few configs (2 configs, 2 rounds) the rounds counterbalance instead of repeating by chance;
    # each round's permutation is still uniform over all of them, so no config is favoured
    drawn: set[tuple[int, ...]] = set()
    ordered: list[list[str]] = []
    for jobs in rounds.values():
        if len(drawn) >= math.factorial(len(jobs)):
            drawn = set()  # every permutation used once: start over
        while True:
            permutation = list(range(len(jobs)))
            rng.shuffle(permutation)
            if tuple(permutation) not in drawn:
                break
        drawn.add(tuple(permutation))
        ordered.extend(jobs[index] for index in permutation)
    return ordered
