"""Seeded sweeps with known truth, laid out exactly as hydra/sweeper=pinsweep runs them: the simulation
that proves the sweep statistics (pinsweep/analysis/design.py), shared by tests/test_design.py (a few
hundred sweeps per claim) and benchmarks/stats_check.py (a thousand per cell, for the README's table).

Jobs run in the sweeper's order (pinsweep.sweep.order: rounds of train.repeat, configs shuffled within
each round), on one of two kinds of machine:
- iid: every job's throughput varies by 5% (log scale), independently;
- switching: the machine flips between two speed states 25% apart, a state lasting 5 jobs on average
  (across round boundaries too), plus 2% job-to-job noise: this VM's behaviour.
"""

from __future__ import annotations

import math

import numpy as np

from pinsweep.analysis import design
from pinsweep.sweep.order import pinsweep_order

MACHINES = ("iid", "switching")


def job_order(configs: int, repeats: int, seed: int) -> list[tuple[int, int]]:
    """(config, round) of each job in run order, as the sweeper orders Hydra's product."""
    product = [[f"loader.num_workers={c}", f"train.repeat={r}"] for c in range(configs) for r in range(repeats)]
    ordered = pinsweep_order(product, seed=seed)
    return [tuple(int(o.split("=")[1]) for o in job) for job in ordered]


def machine_noise(machine: str, jobs: int, rng: np.random.Generator) -> np.ndarray:
    """log-throughput disturbance of each job, in run order."""
    if machine == "iid":
        return rng.normal(0.0, 0.05, jobs)
    switches = rng.random(jobs) < 0.2  # a state lasts 5 jobs on average
    slow = (np.cumsum(switches) + rng.integers(2)) % 2 == 1
    return np.where(slow, math.log(1 / 1.25), 0.0) + rng.normal(0.0, 0.02, jobs)


def simulate(truth: np.ndarray, repeats: int, machine: str, rng: np.random.Generator):
    """(log images/s, config, round) of one sweep whose config c is exp(truth[c]) times config 0."""
    order = job_order(len(truth), repeats, seed=int(rng.integers(2**31)))
    config = np.array([c for c, _ in order])
    rounds = np.array([r for _, r in order])
    log_ips = math.log(1000.0) + truth[config] + machine_noise(machine, len(order), rng)
    return log_ips, config, rounds


def many_to_one(log_ips, config, rounds, configs: int) -> design.Comparisons:
    """Every config against config 0, as summarize() compares a one-axis sweep with its baseline."""
    fit = design.fit_blocks(log_ips, config, rounds, configs)
    contrasts = [np.eye(configs)[c] - np.eye(configs)[0] for c in range(1, configs)]
    return design.simultaneous(fit, contrasts)
