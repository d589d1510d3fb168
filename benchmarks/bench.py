"""pinsweep's benchmarks: each figure measured side by side in one run, medians over interleaved runs.

    python benchmarks/bench.py                 # the CPU figures (about 15 minutes on 2 cores)
    python benchmarks/bench.py --quick         # smoke test of the same code (about 3 minutes; figures rough)
    python benchmarks/bench.py --wait-quiet    # first wait (up to 40 min) for no pytest and load < 0.5
    python benchmarks/bench.py --gpu           # ResNet-34 figures on a CUDA machine (see README.md)
    python benchmarks/bench.py --only startup,input   # a subset of the figures

Every measurement is a separate process started from here (nothing is timed in this process), and
the two arms of a comparison alternate A B A B ..., so that drift in the machine's speed (other
tenants, thermals) cannot favour one arm. Prints a table and writes
`benchmarks/results-<host>-<date>.json` (with --quick: into the work folder, unless --out).
What each figure means and how it is measured: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without `pip install -e .` as well

from pinsweep.analysis import design  # noqa: E402
from pinsweep.record import read_row  # noqa: E402

BARE_LOOP = Path(__file__).resolve().parent / "bare_loop.py"
QUIET_LOAD = 0.5
QUIET_WAIT_MAX_S = 40 * 60


# ------------------------------------------------------------------------------------------ sizes


@dataclass
class Plan:
    """How much work each figure does; the full plan is sized for a 2-core CPU (about 15 minutes)."""

    overhead_repeats: int = 7
    overhead_train_size: int = 8192
    overhead_epochs: int = 3
    startup_repeats: int = 7
    precision_repeats: int = 3
    precision_train_size: int = 20480
    input_repeats: int = 3
    input_ceiling_steps: int = 40
    cv_repeats: int = 5
    cv_train_size: int = 4096
    cv_epochs: int = 3
    # job start: the workload (ResNet-18, 1,024 synthetic images, 2 epochs), sweeps of jobstart_jobs
    jobstart_repeats: int = 3
    jobstart_model: str = "resnet18"
    jobstart_train_size: int = 1024
    jobstart_jobs: int = 4
    # the CPU budget: a compute-bound job on one core (train.cpus=0) and on two (0-1)
    budget_repeats: int = 5
    budget_train_size: int = 4096
    # --gpu: ResNet-34, batch 256, CIFAR-10-sized synthetic data, adaptive timing
    gpu_repeats: int = 3
    gpu_train_size: int = 50000
    gpu_ceiling_steps: int = 50
    # rounds: the README's quick 2x2 (experiment=quick, rounds=auto) against today's fixed 3 rounds
    rounds_repeats: int = 3


QUICK = Plan(
    overhead_repeats=2,
    overhead_train_size=2048,
    overhead_epochs=2,
    startup_repeats=3,
    precision_repeats=1,
    precision_train_size=2048,
    input_repeats=1,
    input_ceiling_steps=10,
    cv_repeats=3,
    cv_train_size=1024,
    cv_epochs=2,
    jobstart_repeats=1,
    jobstart_model="tiny",
    jobstart_train_size=512,
    jobstart_jobs=3,
    budget_repeats=2,
    budget_train_size=1024,
    gpu_repeats=1,
    gpu_train_size=10240,
    gpu_ceiling_steps=20,
    rounds_repeats=1,
)

# the pinsweep job all CPU figures share: tiny CNN, synthetic CIFAR-10-shaped data, the loader at its
# defaults (batch 256, num_workers 0, pil pipeline), nothing timed but training unless asked
CPU_JOB = ["data=synthetic", "model=tiny", "data.test_size=256", "train.evaluate=false", "resume=false"]


# ------------------------------------------------------------------------------------- processes


def _cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its finished children)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal: busy is all but idle and iowait; steal is the
    # hypervisor running another tenant on our core, which slows us just as a local process would
    busy = sum(fields[:8]) - fields[3] - fields[4]
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return busy / os.sysconf("SC_CLK_TCK"), mine


class Runner:
    """Starts every measured process, in a scratch folder so that nothing lands in the repository.

    For each process it also records how much CPU *other* processes used meanwhile (the machine's
    busy time minus ours, over wall time x cores): the benchmark cannot stop other tenants, but it can
    say which figures they disturbed."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.count = 0
        self.foreign_cpu: list[float] = []  # per measured process: other processes' share of the CPUs
        self.max_foreign = 0.05  # a round in which others took more than this share is run again
        self.rounds: list[dict[str, Any]] = []  # per interleaved round: others' share, kept or not
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))

    def timed(self, command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
        """Wall seconds of one process from start to exit, and its stdout; raises on failure. `env`: extra
        environment variables."""
        busy_before, mine_before = _cpu_seconds()
        start = time.perf_counter()
        done = subprocess.run(
            command, cwd=self.workdir, env={**self.env, **(env or {})}, capture_output=True, text=True
        )
        wall = time.perf_counter() - start
        busy_after, mine_after = _cpu_seconds()
        foreign = (busy_after - busy_before) - (mine_after - mine_before)
        self.foreign_cpu.append(max(0.0, foreign) / (wall * (os.cpu_count() or 1)))
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{tail}")
        return wall, done.stdout

    def pinsweep(self, overrides: list[str]) -> tuple[dict[str, Any], float]:
        """One pinsweep job (`python -m pinsweep ...`): its row and the process's wall seconds."""
        self.count += 1
        run_dir = self.workdir / f"job-{self.count:03d}"
        wall, _ = self.timed([sys.executable, "-m", "pinsweep", *overrides, f"hydra.run.dir={run_dir}"])
        row = read_row(run_dir)
        if row is None or row.get("status") != "ok":
            raise RuntimeError(f"pinsweep job in {run_dir} left no ok row: {row and row.get('error')}")
        return row, wall

    def multirun(self, overrides: list[str]) -> list[dict[str, Any]]:
        """One pinsweep sweep (`python -m pinsweep -m ...`): its rows, in job order."""
        from pinsweep.record import read_rows

        self.count += 1
        sweep_dir = self.workdir / f"sweep-{self.count:03d}"
        self.timed([sys.executable, "-m", "pinsweep", "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"])
        rows = read_rows(sweep_dir)
        failed = rows[rows["status"] != "ok"]
        if len(failed):
            raise RuntimeError(f"sweep {sweep_dir}: {len(failed)} job(s) not ok: {failed['error'].tolist()}")
        return rows.to_dict("records")


def interleave(runner: Runner, arms: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[Any]]:
    """Run the arms A B A B ... `repeats` times each and collect each arm's results in order.

    A round (one run of every arm) during which other processes took more than `runner.max_foreign`
    of the CPUs is run again, at most `repeats` times per call: on a shared machine that keeps
    another tenant's test suite out of the medians. Rejection looks only at the other processes'
    load, never at the measured values, and drops both arms of the round together."""
    results: dict[str, list[Any]] = defaultdict(list)
    redone = 0
    while len(results[next(iter(arms))]) < repeats:
        mark, kept = len(runner.foreign_cpu), len(results[next(iter(arms))])
        outcome = {}
        for name, run in arms.items():
            print(f"  {name} {kept + 1}/{repeats}", file=sys.stderr, flush=True)
            outcome[name] = run()
        foreign = max(runner.foreign_cpu[mark:])
        if foreign > runner.max_foreign and redone < repeats:
            redone += 1
            runner.rounds.append({"foreign_cpu": round(foreign, 3), "kept": False})
            print(f"  other processes used {foreign:.0%} of the CPUs: round run again", file=sys.stderr)
            continue
        runner.rounds.append({"foreign_cpu": round(foreign, 3), "kept": True})
        for name, result in outcome.items():
            results[name].append(result)
    return results


def median(values) -> float:
    return float(np.median(np.asarray(values, dtype=float)))


# --------------------------------------------------------------------------------------- figures


@dataclass
class Figure:
    """One measured figure: its value, its target, whether it met it, and the samples behind it."""

    key: str
    label: str
    value: float
    unit: str
    target: str = ""
    passed: bool | None = None  # None: reported, no target
    detail: dict[str, Any] = field(default_factory=dict)
    section: str = ""  # the part of the run that measured it (set by main)


def _rounded(values, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in values]


def _ratio_ci(treatment, control) -> list[float]:
    _, low, high = design.paired_ratio(treatment, control)
    return [round(low, 4), round(high, 4)]


def overhead(runner: Runner, plan: Plan) -> list[Figure]:
    """A pinsweep job against a hand-written loop doing the same training, each in its own process."""
    size, epochs = plan.overhead_train_size, plan.overhead_epochs
    job = [*CPU_JOB, f"data.train_size={size}", f"train.epochs={epochs}", "train.ceiling_steps=0"]
    bare = [sys.executable, str(BARE_LOOP), f"--train-size={size}", "--test-size=256", f"--epochs={epochs}"]

    def run_bare():
        wall, out = runner.timed(bare)
        return json.loads(out.strip().splitlines()[-1]), wall

    arms = {"pinsweep job": lambda: runner.pinsweep(job), "bare loop": run_bare}
    runs = interleave(runner, arms, plan.overhead_repeats)
    ours_train = [row["train_s"] for row, _ in runs["pinsweep job"]]
    bare_train = [result["train_s"] for result, _ in runs["bare loop"]]
    ours_wall = [wall for _, wall in runs["pinsweep job"]]
    bare_wall = [wall for _, wall in runs["bare loop"]]
    losses = {round(row["final_loss"], 5) for row, _ in runs["pinsweep job"]}
    losses |= {round(result["final_loss"], 5) for result, _ in runs["bare loop"]}
    detail = {
        "workload": f"tiny CNN, synthetic {size} images x {epochs} epochs, batch 256, num_workers 0, pil",
        "pinsweep_train_s": _rounded(ours_train),
        "bare_train_s": _rounded(bare_train),
        "pinsweep_wall_s": _rounded(ours_wall),
        "bare_wall_s": _rounded(bare_wall),
        "paired_ratio_median": round(median(np.divide(ours_train, bare_train)), 4),
        "identical_final_loss": len(losses) == 1,  # same seeds, same work: the same numbers
        "shared_device_rows": sum(bool(row["shared_device"]) for row, _ in runs["pinsweep job"]),
    }
    train_ratio = median(ours_train) / median(bare_train)
    wall_ratio = median(ours_wall) / median(bare_wall)
    # inside one process, free of run-to-run noise: the share of pinsweep's steady-state time that is
    # none of its timed parts (host wait for data, copy, compute), i.e. the loop's own bookkeeping
    # (data_wait_s, the stall between steps, includes it by construction)
    rows = [row for row, _ in runs["pinsweep job"]]
    parts = [row["host_wait_s"] + row["copy_s"] + row["compute_s"] for row in rows]
    bookkeeping = median([(row["steady_s"] - part) / row["steady_s"] for row, part in zip(rows, parts)])
    per_step_us = median([(row["steady_s"] - part) / row["steps_timed"] * 1e6 for row, part in zip(rows, parts)])
    return [
        Figure(
            "overhead_train",
            "harness overhead, training time (pinsweep / bare loop)",
            train_ratio,
            "x",
            "<= 1.03x",
            train_ratio <= 1.03,
            {**detail, "ratio_ci95": _ratio_ci(ours_train, bare_train)},
        ),
        Figure(
            "overhead_wall",
            "harness overhead, whole process (pinsweep / bare loop)",
            wall_ratio,
            "x",
            "report",
            None,
            {"ratio_ci95": _ratio_ci(ours_wall, bare_wall), "extra_s": round(median(ours_wall) - median(bare_wall), 3)},
        ),
        Figure(
            "overhead_bookkeeping",
            "harness bookkeeping inside the timed loop (share of steady time)",
            bookkeeping,
            "rel",
            "report",
            None,
            {"per_step_us": round(per_step_us, 1)},
        ),
    ]


def _import_profile(command: list[str], runner: Runner) -> tuple[dict[str, float], dict[str, str]]:
    """From `python -X importtime`: seconds of import per top-level package (self times summed; the
    tool inflates them), and for each package its module with the largest cumulative time (what to
    import to reproduce that package's cost)."""
    done = subprocess.run(command, cwd=runner.workdir, env=runner.env, capture_output=True, text=True)
    totals: dict[str, float] = defaultdict(float)
    heaviest: dict[str, tuple[int, str]] = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s+(\S+)", line)
        if match:
            own, cumulative, module = int(match.group(1)), int(match.group(2)), match.group(3)
            package = module.split(".")[0]
            totals[package] += own / 1e6
            if cumulative > heaviest.get(package, (-1, ""))[0]:
                heaviest[package] = (cumulative, module)
    # scipy.stats._stats_py -> scipy.stats: importing the subpackage costs the same and reads better
    return totals, {package: ".".join(module.split(".")[:2]) for package, (_, module) in heaviest.items()}


def _wall_cost_of_imports(runner: Runner, modules: list[str], repeats: int) -> dict[str, float]:
    """Wall seconds each module adds to `import torch, torchvision`, in fresh processes, interleaved."""
    base = "import torch, torchvision"
    arms = {
        name: (lambda code=f"{base}, {name}" if name else base: runner.timed([sys.executable, "-c", code])[0])
        for name in ["", *modules]
    }
    runs = interleave(runner, arms, repeats)
    return {name: round(median(runs[name]) - median(runs[""]), 3) for name in modules}


STARTUP_TARGET_S = 0.5  # issue 20: `--cfg job` within +0.5 s of `import torch, torchvision`


def startup(runner: Runner, plan: Plan) -> list[Figure]:
    """`python -m pinsweep --cfg job` (compose and print the config, run nothing) vs importing torch."""
    ours = [sys.executable, "-m", "pinsweep", "data=synthetic", "model=tiny", "--cfg", "job"]
    reference = [sys.executable, "-c", "import torch, torchvision"]
    for command in (reference, ours):  # untimed: fill the page cache, so the first arm is not penalised
        runner.timed(command)
    arms = {
        "pinsweep --cfg job": lambda: runner.timed(ours)[0],
        "import torch, torchvision": lambda: runner.timed(reference)[0],
    }
    runs = interleave(runner, arms, plan.startup_repeats)
    extra = median(runs["pinsweep --cfg job"]) - median(runs["import torch, torchvision"])
    # what pinsweep imports beyond torch + torchvision
    ours_imports, heaviest = _import_profile([sys.executable, "-X", "importtime", *ours[1:]], runner)
    reference_imports, _ = _import_profile([sys.executable, "-X", "importtime", *reference[1:]], runner)
    added = {name: s - reference_imports.get(name, 0.0) for name, s in ours_imports.items()}
    offenders = sorted(added.items(), key=lambda item: -item[1])[:10]
    detail = {
        "pinsweep_s": _rounded(runs["pinsweep --cfg job"]),
        "import_torch_torchvision_s": _rounded(runs["import torch, torchvision"]),
        "pinsweep_median_s": round(median(runs["pinsweep --cfg job"]), 3),
        "import_median_s": round(median(runs["import torch, torchvision"]), 3),
        "importtime_added_by_package_s": {name: round(s, 3) for name, s in offenders},
    }
    if extra > STARTUP_TARGET_S:  # a miss: measure in wall time what the three largest additions cost
        suspects = [heaviest[name] for name, _ in offenders if name not in ("torch", "torchvision", "pinsweep")][:3]
        repeats = max(1, plan.startup_repeats // 2)
        detail["wall_s_added_to_import_torch"] = _wall_cost_of_imports(runner, suspects, repeats)
    label = "start-up beyond import torch, torchvision"
    return [Figure("startup_extra", label, extra, "s", f"<= {STARTUP_TARGET_S} s", extra <= STARTUP_TARGET_S, detail)]


def precision(runner: Runner, plan: Plan) -> list[Figure]:
    """Adaptive mode (CI target 2%) against 10 full epochs of the same job."""
    base = [*CPU_JOB, f"data.train_size={plan.precision_train_size}", "train.ceiling_steps=0"]
    adaptive_job = [*base, "train.mode=adaptive", "train.target_ci=0.02"]
    epochs_job = [*base, "train.mode=epochs", "train.epochs=10"]
    runs = interleave(
        runner,
        {"adaptive": lambda: runner.pinsweep(adaptive_job)[0], "10 epochs": lambda: runner.pinsweep(epochs_job)[0]},
        plan.precision_repeats,
    )
    adaptive, full = runs["adaptive"], runs["10 epochs"]
    # adaptive's train_s runs from before the first step to after the last: warm-up + steady window
    cost = median([r["train_s"] for r in adaptive]) / median([r["train_s"] for r in full])
    agreement = median([r["images_per_s"] for r in adaptive]) / median([r["images_per_s"] for r in full]) - 1
    ci = [r["step_ci_rel"] for r in adaptive]
    detail = {
        "workload": f"tiny CNN, synthetic {plan.precision_train_size} images, batch 256, num_workers 0, pil",
        "adaptive_train_s": _rounded([r["train_s"] for r in adaptive]),
        "adaptive_steady_s": _rounded([r["steady_s"] for r in adaptive]),
        "adaptive_steps": [int(r["steps"]) for r in adaptive],
        "adaptive_images_per_s": _rounded([r["images_per_s"] for r in adaptive], 1),
        "epochs10_train_s": _rounded([r["train_s"] for r in full]),
        "epochs10_images_per_s": _rounded([r["images_per_s"] for r in full], 1),
        "epochs10_step_ci_rel": _rounded([r["step_ci_rel"] for r in full]),
        "adaptive_step_ci_rel": _rounded(ci),
    }
    return [
        Figure(
            "precision_cost",
            "adaptive time / 10-epoch training time",
            cost,
            "x",
            "<= 0.20x",
            cost <= 0.2,
            detail,
        ),
        Figure(
            "precision_agreement",
            "adaptive images/s vs 10-epoch steady state",
            agreement,
            "rel",
            "within +-3%",
            abs(agreement) <= 0.03,
        ),
        Figure(
            "precision_ci",
            "adaptive 95% CI half-width reached (worst run)",
            max(ci),
            "rel",
            "<= 2%",
            max(ci) <= 0.02,
        ),
    ]


def job_start(runner: Runner, plan: Plan) -> list[Figure]:
    """What starting a job costs, as whole processes beside the bare loop, for both ways a job's process
    can start: from the fork server (the default) and spawned (PINSWEEP_JOB_START=spawn, as before).

    One job: `python -m pinsweep <job>` against `bare_loop.py` doing the same training. Each further job
    of a sweep: a sweep of n jobs against a sweep of 1 (both with their summary, plots and report), per
    extra job, less what the same extra training costs the bare loop (`--runs n` against `--runs 1`)."""
    size, n = plan.jobstart_train_size, plan.jobstart_jobs
    job = [*CPU_JOB, f"model={plan.jobstart_model}", f"data.train_size={size}", "train.epochs=2"]
    job += ["train.ceiling_steps=0"]
    bare = [sys.executable, str(BARE_LOOP), f"--train-size={size}", "--test-size=256", "--epochs=2"]
    bare += [f"--model={plan.jobstart_model}"]
    methods = {"forkserver": {}, "spawn": {"PINSWEEP_JOB_START": "spawn"}}
    gaps: dict[str, list[float]] = {method: [] for method in methods}

    def sweep(jobs: int, method: str) -> float:
        runner.count += 1
        folder = runner.workdir / f"sweep-{runner.count:03d}"
        repeats = ",".join(map(str, range(jobs)))
        command = [sys.executable, "-m", "pinsweep", "-m", *job, f"train.repeat={repeats}", f"hydra.sweep.dir={folder}"]
        wall = runner.timed(command, methods[method])[0]
        gaps[method] += job_gaps(folder)
        return wall

    def one_job(method: str) -> float:
        runner.count += 1
        folder = runner.workdir / f"job-{runner.count:03d}"
        return runner.timed([sys.executable, "-m", "pinsweep", *job, f"hydra.run.dir={folder}"], methods[method])[0]

    arms: dict[str, Callable[[], Any]] = {
        "bare loop": lambda: runner.timed(bare)[0],
        f"bare loop x{n}": lambda: runner.timed([*bare, f"--runs={n}"])[0],
    }
    for method in methods:
        arms[f"one job ({method})"] = lambda method=method: one_job(method)
        arms[f"sweep of 1 ({method})"] = lambda method=method: sweep(1, method)
        arms[f"sweep of {n} ({method})"] = lambda method=method: sweep(n, method)
    runs = interleave(runner, arms, plan.jobstart_repeats)
    bare_s = median(runs["bare loop"])
    bare_further_s = (median(runs[f"bare loop x{n}"]) - bare_s) / (n - 1)
    detail = {
        "workload": f"{plan.jobstart_model}, synthetic {size} images x 2 epochs, no ceilings, no evaluation",
        "wall_s": {arm: _rounded(values, 3) for arm, values in runs.items()},
        "bare_loop_median_s": round(bare_s, 3),
        "bare_loop_further_run_s": round(bare_further_s, 3),
        # from the sweeps' own logs, free of the training's speed: each further job's seconds between the
        # previous job's `ok` and its own first line of work (row written, next job composed, process
        # started, dataset built)
        "further_job_gap_s": {method: _rounded(values, 3) for method, values in gaps.items()},
        "further_job_gap_median_s": {method: round(median(values), 3) for method, values in gaps.items() if values},
    }
    figures = []
    for method in methods:
        extra = median(runs[f"one job ({method})"]) - bare_s
        further = (median(runs[f"sweep of {n} ({method})"]) - median(runs[f"sweep of 1 ({method})"])) / (n - 1)
        target = method == "forkserver"  # the targets are the default's; spawn is the before
        figures += [
            Figure(
                f"jobstart_one_{method}",
                f"one job beyond the bare loop, whole process ({method})",
                extra,
                "s",
                "<= 1.5 s" if target else "report",
                extra <= 1.5 if target else None,
                {**detail, "job_median_s": round(median(runs[f"one job ({method})"]), 3)},
            ),
            Figure(
                f"jobstart_further_{method}",
                f"each further job of a sweep beyond the bare loop ({method})",
                further - bare_further_s,
                "s",
                "<= 0.5 s" if target else "report",
                further - bare_further_s <= 0.5 if target else None,
                {"further_job_s": round(further, 3), "bare_further_run_s": round(bare_further_s, 3)},
            ),
        ]
    return figures


def job_gaps(sweep_dir: Path) -> list[float]:
    """Per job after the first, from its log and the previous job's: seconds from the previous job's
    `job #k ok` to this job's first line from inside the job (`data: ...`)."""
    stamp = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]"
    gaps, previous_ok = [], None
    for job_dir in sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        text = next(job_dir.glob("*.log")).read_text()
        started = re.search(stamp + r"\[pinsweep\.(?:input\.)?data\]", text, re.M)  # pinsweep.input.data since 0.1
        ended = re.search(stamp + r"\[pinsweep\]\[INFO\] - job #\d+ ok", text, re.M)
        if previous_ok and started:
            gaps.append((_log_time(started.group(1)) - previous_ok).total_seconds())
        previous_ok = _log_time(ended.group(1)) if ended else None
    return gaps


def _log_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f")


def input_path(runner: Runner, plan: Plan) -> list[Figure]:
    """Loader-only ceiling (loader iterated and copied, no model) of the tensor and pil pipelines."""
    steps = plan.input_ceiling_steps
    # enough images that the ceiling's skipped batches plus its timed ones fit in one epoch
    size = (steps + 2) * 256
    job = [*CPU_JOB, f"data.train_size={size}", "train.epochs=1", "train.max_steps_per_epoch=4"]
    job.append(f"train.ceiling_steps={steps}")
    runs = interleave(
        runner,
        {
            "tensor": lambda: runner.pinsweep([*job, "data.pipeline=tensor"])[0],
            "pil": lambda: runner.pinsweep([*job, "data.pipeline=pil"])[0],
        },
        plan.input_repeats,
    )
    tensor = [r["loader_ceiling_ips"] for r in runs["tensor"]]
    pil = [r["loader_ceiling_ips"] for r in runs["pil"]]
    ratio = median(tensor) / median(pil)
    detail = {
        "loader": f"batch 256, num_workers 0, at least {steps} timed batches (to its 2% CI or budget)",
        "tensor_images_per_s": _rounded(tensor, 0),
        "pil_images_per_s": _rounded(pil, 0),
    }
    return [Figure("input_path", "loader-only images/s, tensor / pil", ratio, "x", ">= 20x", ratio >= 20, detail)]


def repeat_cv(runner: Runner, plan: Plan) -> list[Figure]:
    """Repeat-to-repeat spread of one config: pinsweep's own repeats (a multirun over train.repeat)."""
    repeats = ",".join(str(i) for i in range(plan.cv_repeats))
    sweep = [
        *CPU_JOB,
        f"data.train_size={plan.cv_train_size}",
        f"train.epochs={plan.cv_epochs}",
        "train.ceiling_steps=0",
        f"train.repeat={repeats}",
    ]
    rows = interleave(runner, {"sweep": lambda: runner.multirun(sweep)}, 1)["sweep"][0]
    ips = np.asarray([row["images_per_s"] for row in rows], dtype=float)
    cv = float(ips.std(ddof=1) / ips.mean())
    detail = {
        "workload": f"tiny CNN, synthetic {plan.cv_train_size} images x {plan.cv_epochs} epochs, one job per process",
        "images_per_s": _rounded(ips, 1),
        "shared_device_rows": sum(bool(row["shared_device"]) for row in rows),
    }
    return [Figure("repeat_cv", "repeat-to-repeat CV of images/s", cv, "rel", "<= 5%", cv <= 0.05, detail)]


# experiment=quick as it was before rounds=auto: 3 fixed rounds, 3 epochs of 4,096 images, full ceilings
QUICK_FIXED = [
    "hydra.sweeper.rounds=fixed",
    "train.repeat=0,1,2",
    "data.train_size=4096",
    "data.test_size=1024",
    "train.epochs=3",
    "train.warmup_steps=null",
    "train.ceiling_steps=20",
    "train.ceiling_budget_s=2.0",
]


def quick_rounds(runner: Runner, plan: Plan) -> list[Figure]:
    """The README's 2x2 question (`python -m pinsweep -m experiment=quick`, rounds=auto) against the same
    question asked as before (3 fixed rounds of the old quick jobs), whole commands, interleaved. Each
    run's answer is read back: rounds run, why it stopped, and how many comparisons are still open."""
    from pinsweep.analysis.sequential import read_stopping
    from pinsweep.analysis.summarize import open_comparisons, read_effects, read_summary

    answers: dict[str, list[dict[str, Any]]] = {"auto": [], "fixed": []}

    def sweep(arm: str, extra: list[str]) -> float:
        runner.count += 1
        folder = runner.workdir / f"sweep-{runner.count:03d}"
        command = [sys.executable, "-m", "pinsweep", "-m", "experiment=quick", *extra, f"hydra.sweep.dir={folder}"]
        wall = runner.timed(command)[0]
        summary, effects = read_summary(folder / "summary.csv"), read_effects(folder / "effects.csv")
        stopping = read_stopping(folder)
        still_open = open_comparisons(summary, effects)
        jobs = [read_row(job) for job in folder.iterdir() if job.name.isdigit()]
        answers[arm].append(
            {
                "wall_s": round(wall, 2),
                "rounds": stopping.rounds if stopping else 3,
                "stopped": stopping.state if stopping else "fixed",
                "open": still_open,
                "significant": int(summary["significant"].eq(True).sum()),
                "equivalent": int(summary["equivalent"].eq(True).sum()) if "equivalent" in summary else 0,
                "job_s_median": round(median([j["job_s"] for j in jobs if j and "job_s" in j] or [math.nan]), 2),
                "steady_s_median": round(median([j["steady_s"] for j in jobs if j]), 2),
            }
        )
        return wall

    runs = interleave(
        runner, {"auto": lambda: sweep("auto", []), "fixed": lambda: sweep("fixed", QUICK_FIXED)}, plan.rounds_repeats
    )
    auto_s, fixed_s = median(runs["auto"]), median(runs["fixed"])
    # every comparison ends resolved or named open at the limit (rounds.json's `open`); an auto run that
    # stopped `resolved` has none open
    answered = all(a["stopped"] != "running" for a in answers["auto"])
    detail = {"wall_s": {arm: _rounded(values, 2) for arm, values in runs.items()}, "answers": answers}
    return [
        Figure(
            "rounds_auto",
            "quick 2x2, rounds=auto: wall time",
            auto_s,
            "s",
            "<= 60 s",
            auto_s <= 60 and answered,
            detail,
        ),
        Figure("rounds_fixed", "quick 2x2, fixed 3 rounds as before: wall time", fixed_s, "s", "report", None),
        Figure("rounds_ratio", "rounds=auto / fixed 3 rounds, wall time", auto_s / fixed_s, "x", "report", None),
    ]


def cpu_budget(runner: Runner, plan: Plan) -> list[Figure]:
    """train.cpus=0 against 0-1 on a compute-bound job: the tensor pipeline (a gather per batch) feeding
    a tiny CNN of width 32; train.threads left null, so each job runs as many intra-op threads as it has
    cores. A third arm, 0-1 with train.threads=1, tells the second core from the second thread. The rows
    must record the cores and threads each job had."""
    job = [*CPU_JOB, "model.width=32", "data.pipeline=tensor", f"data.train_size={plan.budget_train_size}"]
    job += ["train.epochs=2", "train.ceiling_steps=0"]
    arms = {"0": ["train.cpus=0"], "0-1": ["train.cpus=0-1"], "0-1/1 thread": ["train.cpus=0-1", "train.threads=1"]}
    runs = interleave(
        runner,
        {name: lambda extra=extra: runner.pinsweep([*job, *extra])[0] for name, extra in arms.items()},
        plan.budget_repeats,
    )
    ips = {name: [r["images_per_s"] for r in runs[name]] for name in arms}
    had = {c: sorted({(r["cpu_cores"], r["torch_threads"], r["cpu_threads"]) for r in runs[c]}) for c in runs}
    low, high = _ratio_ci(ips["0-1"], ips["0"])
    detail = {
        "workload": "tiny CNN width 32, tensor pipeline, batch 256, num_workers 0, one job per process",
        **{f"images_per_s[{name}]": _rounded(values, 1) for name, values in ips.items()},
        "ratio_ci": [low, high],
        "one_thread_on_two_cores_over_one_core": round(median(ips["0-1/1 thread"]) / median(ips["0"]), 4),
        "one_thread_ratio_ci": _ratio_ci(ips["0-1/1 thread"], ips["0"]),
        "recorded": had,  # (cores, intra-op threads, torch threads in all) as the rows recorded them
    }
    ratio = median(ips["0-1"]) / median(ips["0"])
    label = "images/s on train.cpus=0-1 over train.cpus=0"
    # measurably: the paired 95% interval excludes 1x, in either direction (see README: on cores that other
    # processes share, a second intra-op thread can cost more than the second core gives)
    return [Figure("cpu_budget", label, ratio, "x", "95% CI excludes 1x", low > 1.0 or high < 1.0, detail)]


# ------------------------------------------------------------------------------------------- GPU


def _gpu_job(plan: Plan, device: str, model: str) -> list[str]:
    return [
        f"model={model}",
        "data=synthetic",
        f"data.train_size={plan.gpu_train_size}",
        "data.test_size=256",
        "loader.batch_size=256",
        "train.mode=adaptive",
        "train.evaluate=false",
        f"train.ceiling_steps={plan.gpu_ceiling_steps}",
        f"train.device={device}",
        "resume=false",
    ]


def _loader(workers: int, pin: bool, non_blocking: bool, pipeline: str = "pil") -> list[str]:
    settings = [
        f"data.pipeline={pipeline}",
        f"loader.num_workers={workers}",
        f"loader.pin_memory={str(pin).lower()}",
        f"loader.non_blocking={str(non_blocking).lower()}",
    ]
    if workers:
        settings.append("loader.persistent_workers=true")
    return settings


def gpu_ceiling(runner: Runner, plan: Plan, device: str, model: str) -> list[Figure]:
    """End-to-end images/s over the compute-only ceiling: the notebook's settings and the best swept."""
    workers = min(8, os.cpu_count() or 1)
    configs = {
        "notebook (pil, workers 0, no pin)": _loader(0, False, False),
        f"pil, workers {workers // 2}, pin+nb": _loader(workers // 2, True, True),
        f"pil, workers {workers}, pin+nb": _loader(workers, True, True),
        "tensor, workers 0, pin+nb": _loader(0, True, True, "tensor"),
        f"tensor, workers {workers // 2}, pin+nb": _loader(workers // 2, True, True, "tensor"),
        "device-resident data": ["data.pipeline=device"],
    }
    job = _gpu_job(plan, device, model)
    arms = {name: (lambda extra=extra: runner.pinsweep([*job, *extra])[0]) for name, extra in configs.items()}
    runs = interleave(runner, arms, plan.gpu_repeats)
    table = {}
    for name, rows in runs.items():
        table[name] = {
            "images_per_s": round(median([r["images_per_s"] for r in rows]), 1),
            "compute_ceiling_ips": round(median([r["compute_ceiling_ips"] for r in rows]), 1),
            "efficiency": round(median([r["images_per_s"] / r["compute_ceiling_ips"] for r in rows]), 4),
            "loader_ceiling_ips": round(median([r["loader_ceiling_ips"] for r in rows]), 1),
            "step_ci_rel": round(max(r["step_ci_rel"] for r in rows), 4),
        }
    notebook = table["notebook (pil, workers 0, no pin)"]
    loaders = {name: figures for name, figures in table.items() if name != "device-resident data"}
    best_name = max(loaders, key=lambda name: loaders[name]["images_per_s"])
    best = loaders[best_name]
    detail = {"device": runs[best_name][0]["env.device_name"], "model": model, "configs": table}
    return [
        Figure(
            "gpu_notebook_efficiency",
            "notebook settings: end-to-end / compute ceiling",
            notebook["efficiency"],
            "x",
            "report",
        ),
        Figure(
            "gpu_best_efficiency",
            f"best DataLoader settings ({best_name}): end-to-end / compute ceiling",
            best["efficiency"],
            "x",
            ">= 0.90x",
            best["efficiency"] >= 0.9,
            detail,
        ),
        Figure(
            "gpu_device_efficiency",
            "device-resident data: end-to-end / compute ceiling",
            table["device-resident data"]["efficiency"],
            "x",
            "report",
        ),
    ]


def gpu_pinning(runner: Runner, plan: Plan, device: str, model: str) -> list[Figure]:
    """pin_memory x non_blocking at fixed num_workers, against neither, with paired CIs."""
    workers = min(8, os.cpu_count() or 1)
    job = _gpu_job(plan, device, model)
    cells = {(pin, nb): _loader(workers, pin, nb) for pin in (False, True) for nb in (False, True)}
    arms = {
        f"pin={pin} nb={nb}": (lambda extra=extra: runner.pinsweep([*job, *extra])[0])
        for (pin, nb), extra in cells.items()
    }
    runs = interleave(runner, arms, plan.gpu_repeats)
    ips = {name: [r["images_per_s"] for r in rows] for name, rows in runs.items()}
    control = ips["pin=False nb=False"]
    figures = []
    for name in ("pin=True nb=False", "pin=False nb=True", "pin=True nb=True"):
        ratio, low, high = design.paired_ratio(ips[name], control)
        detail = {
            "num_workers": workers,
            "images_per_s": _rounded(ips[name], 1),
            "control_images_per_s": _rounded(control, 1),
            "ratio_ci95": [round(low, 4), round(high, 4)],
            "significant": None if math.isnan(low) else bool(low > 1 or high < 1),
            "copy_s": _rounded([r["copy_s"] for r in runs[name]]),
            "control_copy_s": _rounded([r["copy_s"] for r in runs["pin=False nb=False"]]),
        }
        label = f"{name} vs neither, workers {workers}"
        figures.append(Figure(f"gpu_{name}", label, ratio, "x", "report", None, detail))
    return figures


# ----------------------------------------------------------------------------------------- report


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def pytest_running() -> bool:
    return subprocess.run(["pgrep", "-f", "pytest"], capture_output=True).returncode == 0


def wait_until_quiet() -> dict[str, Any]:
    """Sleep until no test suite runs and the 1-minute load is below QUIET_LOAD, or give up."""
    start = time.monotonic()
    while pytest_running() or load_average()[0] >= QUIET_LOAD:
        if time.monotonic() - start > QUIET_WAIT_MAX_S:
            print("machine still busy after 40 minutes: measuring anyway", file=sys.stderr)
            return {"waited_s": round(time.monotonic() - start), "quiet": False}
        print(f"waiting for a quiet machine: load {load_average()[0]:.2f}", file=sys.stderr, flush=True)
        time.sleep(30)
    return {"waited_s": round(time.monotonic() - start), "quiet": True}


def machine() -> dict[str, Any]:
    import torch
    import torchvision

    from pinsweep.job.environment import environment

    env = environment()
    info = {
        "host": socket.gethostname(),
        "cpu": env["env.cpu_model"],
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "git_commit": env["env.git_commit"],
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _format(figure: Figure) -> str:
    if figure.unit == "rel":
        if figure.key == "precision_agreement":
            return f"{figure.value * 100:+.2f}%"
        return f"{figure.value * 100:.{3 if abs(figure.value) < 0.01 else 2}f}%"
    if figure.unit == "s":
        return f"{figure.value:+.3f} s"
    return f"{figure.value:.3f}x"


def _finite(value: Any) -> Any:
    """NaN (a CPU row's empty device name, a CI from one run) as null: strict JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def print_table(figures: list[Figure], errors: dict[str, str], sections: dict[str, Any]) -> None:
    """The figures, and for each how busy the machine was: the largest share of the CPUs that other
    processes used in a kept round, and how many rounds were run again because of them."""
    width = max([len(f.label) for f in figures] + [30])
    print(f"\n{'figure':<{width}}  {'measured':>10}  {'target':>12}  {'result':<6}  others  redone")
    for figure in figures:
        result = {True: "pass", False: "MISS", None: ""}[figure.passed]
        rounds = sections.get(figure.section, {}).get("rounds", [])
        others = max([r["foreign_cpu"] for r in rounds if r["kept"]], default=math.nan)
        redone = sum(not r["kept"] for r in rounds)
        row = f"{figure.label:<{width}}  {_format(figure):>10}  {figure.target:>12}  {result:<6}"
        print(f"{row}  {others:>6.1%}  {redone:>6}")
    for name, message in errors.items():
        print(f"{name:<{width}}  {'error':>10}  {'':>12}  {message.splitlines()[0]}")


SECTIONS = {
    "overhead": overhead,
    "jobstart": job_start,
    "startup": startup,
    "precision": precision,
    "input": input_path,
    "cv": repeat_cv,
    "budget": cpu_budget,
    "rounds": quick_rounds,
}
GPU_SECTIONS = {"ceiling": gpu_ceiling, "pinning": gpu_pinning}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pinsweep's benchmarks (see benchmarks/README.md)")
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats: a smoke test")
    parser.add_argument("--gpu", action="store_true", help="the ResNet-34 figures on a CUDA device")
    subsets = f"{','.join(SECTIONS)} (with --gpu: {','.join(GPU_SECTIONS)})"
    parser.add_argument("--only", default="", help=f"comma-separated subset of {subsets}")
    parser.add_argument("--wait-quiet", action="store_true", help="wait (up to 40 min) for load < 0.5 and no pytest")
    parser.add_argument("--device", default="cuda", help="--gpu: the device (cpu only to smoke-test the GPU code)")
    parser.add_argument("--model", default="resnet34", help="--gpu: the model (tiny only to smoke-test)")
    parser.add_argument(
        "--max-foreign",
        type=float,
        default=0.05,
        help="run a round again when other processes used more than this share of the CPUs (1 = never)",
    )
    parser.add_argument("--workdir", type=Path, help="keep the job folders here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="results JSON path (default benchmarks/results-<host>-<date>.json)")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else Plan()
    available = GPU_SECTIONS if args.gpu else SECTIONS
    chosen = [name for name in args.only.split(",") if name] or list(available)
    unknown = [name for name in chosen if name not in available]
    if unknown:
        parser.error(f"--only {','.join(unknown)}: choose from {','.join(available)}")
    if args.gpu and args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("--gpu needs CUDA, and none is visible here", file=sys.stderr)
            return 2

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pinsweep-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(workdir)
    runner.max_foreign = args.max_foreign
    quiet = wait_until_quiet() if args.wait_quiet else None
    started = datetime.now(timezone.utc)
    results: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "mode": ("gpu" if args.gpu else "cpu") + ("-quick" if args.quick else ""),
        "plan": asdict(plan),
        "machine": machine(),
        "quiet_wait": quiet,
        "load_average_before": load_average(),
        "pytest_running_before": pytest_running(),
    }
    gpu_options = (args.device, args.model) if args.gpu else ()
    figures: list[Figure] = []
    errors: dict[str, str] = {}
    sections: dict[str, Any] = {}
    clock = time.perf_counter()
    for name in chosen:
        print(f"[{name}]", file=sys.stderr, flush=True)
        runner.rounds, section_start, load_before = [], time.perf_counter(), load_average()
        try:
            new = available[name](runner, plan, *gpu_options)
            for figure in new:
                figure.section = name
            figures += new
        except Exception as error:  # one broken figure must not cost the others
            errors[name] = str(error)
            print(f"[{name}] failed: {error}", file=sys.stderr)
        sections[name] = {
            "wall_s": round(time.perf_counter() - section_start, 1),
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "rounds": runner.rounds,  # others' CPU share in each interleaved round, and whether kept
        }
    results.update(
        {
            "load_average_after": load_average(),
            "pytest_running_after": pytest_running(),
            "wall_s": round(time.perf_counter() - clock, 1),
            "sections": sections,
            "figures": [{**asdict(f), "value": round(f.value, 5)} for f in figures],
            "errors": errors,
        }
    )

    print_table(figures, errors, sections)
    host = socket.gethostname().split(".")[0]
    default_dir = workdir if args.quick else Path(__file__).resolve().parent
    suffix = ("-gpu" if args.gpu else "") + ("-quick" if args.quick else "")
    out = args.out or default_dir / f"results-{host}-{started.date().isoformat()}{suffix}.json"
    out.write_text(json.dumps(_finite(results), indent=1) + "\n")
    print(f"\nload average before {results['load_average_before']}, after {results['load_average_after']}")
    print(f"results: {out}")
    if args.workdir is None and not args.quick:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"job folders: {workdir}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
