"""Sequential rounds (hydra.sweeper.rounds=auto) checked with the stopping rule in the loop (under a minute).

    python benchmarks/sequential_check.py [--sweeps 1000] [--out benchmarks/results-sequential.json]

Per cell (machine: iid 5% or the two-state switching machine; 2, 6 and 20 configs; a scenario of true
ratios, pinsweep.analysis.sequential_sim.scenario) `--sweeps` simulated sweeps, each looked at after
every round from min_rounds (2) and stopped when every comparison is resolved or at max_rounds (8),
judged at its stopping round, under three rules: pinsweep's sequential boundaries; the naive rule (the
fixed intervals after every round, stopped at the first `significant`); and the fixed analysis at
max_rounds with no looks (the power a sweep of max_rounds would have). Results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from pinsweep.analysis import sequential
from pinsweep.analysis import sequential_sim as sim

CONFIGS = (2, 6, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweeps", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    plan = sequential.Plan()
    results: dict[str, object] = {"sweeps_per_cell": args.sweeps, "plan": plan.__dict__, "cells": []}
    header = f"{'rule':<16} {'machine':<10} {'cfg':>3} {'scenario':<7} {'rounds':>6} {'cover':>6} {'anyFS':>6}"
    print(header + f" {'eq>=m':>6} {'found':>6} {'resolved':>8}")
    started = time.perf_counter()
    variants = [("sequential", plan), ("naive", plan), ("fixed", plan), ("pocock", sequential.Plan(spending="pocock"))]
    for label, variant in variants:
        rule = "sequential" if label == "pocock" else label
        for machine in sim.MACHINES:
            for configs in CONFIGS:
                for name in sim.SCENARIOS:
                    seed = 1000 * CONFIGS.index(configs) + 10 * sim.SCENARIOS.index(name) + sim.MACHINES.index(machine)
                    truth = sim.scenario(name, configs)
                    cell = sim.run_cell(machine, truth, args.sweeps, np.random.default_rng(seed), variant, rule)
                    record = {"rule": label, "machine": machine, "configs": configs, "scenario": name}
                    record.update(cell.as_dict())
                    results["cells"].append(record)
                    print(
                        f"{label:<16} {machine:<10} {configs:>3} {name:<7} {cell.mean_rounds:>6.2f} "
                        f"{cell.coverage:>6.3f} {cell.any_false_significant:>6.3f} "
                        f"{cell.equivalent_beyond_margin:>6.3f} {cell.found:>6.3f} {cell.resolved:>8.2f}",
                        flush=True,
                    )
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(f"{results['seconds']} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
