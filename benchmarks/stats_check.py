"""The sweep statistics' error rates, measured by seeded simulation with known truth (about a minute).

    python benchmarks/stats_check.py [--sweeps 1000] [--out benchmarks/results-stats.json]

The simulated sweeps of tests/test_design.py (benchmarks/simulate.py: jobs in the sweeper's order, an iid
machine and one that switches between two speed states 25% apart), more of them, so that each rate is known to
about +-1%: per-comparison coverage of the true ratio and false-positive rate at 2, 3 and 5 repeats
with 2, 6 and 20 configs, the share of null sweeps with any `significant`, and the power to find a
true 1.15x. Results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from simulate import MACHINES, many_to_one, simulate  # benchmarks/simulate.py, beside this script


def rates(machine: str, repeats: int, configs: int, sweeps: int) -> dict[str, float]:
    """Every other config truly differs from the baseline (by up to 20%); config 1 does not, so that
    an A/B sweep (2 configs) measures the false-positive rate of one comparison."""
    rng = np.random.default_rng(repeats * 1000 + configs)
    truth = np.array([0.0] + [math.log(1.2) * (1 - c % 2) * c / configs for c in range(1, configs)])
    covered = false_positives = nulls = total = 0
    for _ in range(sweeps):
        result = many_to_one(*simulate(truth, repeats, machine, rng), configs)
        effect = truth[1:]
        covered += int(((result.low <= effect) & (effect <= result.high)).sum())
        total += len(effect)
        null = effect == 0
        false_positives += int(np.array(result.significant)[null].sum())
        nulls += int(null.sum())
    return {
        "coverage": covered / total,
        "false_positive_rate": false_positives / nulls if nulls else math.nan,
    }


def any_significant(machine: str, sweeps: int) -> float:
    rng = np.random.default_rng(20)
    claims = [any(many_to_one(*simulate(np.zeros(20), 3, machine, rng), 20).significant) for _ in range(sweeps)]
    return sum(claims) / sweeps


def power(machine: str, sweeps: int) -> float:
    rng = np.random.default_rng(15)
    truth = np.array([0.0] + [math.log(1.15)] * 5)
    found = sum(sum(many_to_one(*simulate(truth, 5, machine, rng), 6).significant) for _ in range(sweeps))
    return found / (5 * sweeps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweeps", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, object] = {"sweeps_per_cell": args.sweeps, "cells": []}
    print(f"{'machine':<10} {'repeats':>7} {'configs':>7} {'coverage':>9} {'false +':>8}")
    for machine in MACHINES:
        for repeats in (2, 3, 5):
            for configs in (2, 6, 20):
                cell = {"machine": machine, "repeats": repeats, "configs": configs}
                cell.update(rates(machine, repeats, configs, args.sweeps))
                results["cells"].append(cell)
                print(
                    f"{machine:<10} {repeats:>7} {configs:>7} {cell['coverage']:>9.3f} "
                    f"{cell['false_positive_rate']:>8.3f}",
                    flush=True,
                )
    results["null_sweeps_20_configs_any_significant"] = {m: any_significant(m, args.sweeps) for m in MACHINES}
    results["power_1_15x_5_repeats_6_configs"] = {m: power(m, args.sweeps) for m in MACHINES}
    print("null sweeps, 20 configs, 3 repeats, any significant:", results["null_sweeps_20_configs_any_significant"])
    print("true 1.15x found, 5 repeats, 6 configs:", results["power_1_15x_5_repeats_6_configs"])
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
