"""The job: train once under one config, time it honestly, and return the metrics for its row.

    python -m pinsweep data=synthetic model=tiny train.epochs=2      # one job
    run_job(cfg)                                                      # the same, from Python

Stages: setup (device, seeds) -> data -> model -> timed training -> ceilings -> evaluation.
Training is timed first, in a fresh process, so that nothing measured before it warms caches for it.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import resource
import signal
import tempfile
import time
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from filelock import FileLock, Timeout
from tqdm import tqdm

from pinsweep import stats
from pinsweep.config import ConfigError, validate
from pinsweep.data import build_datasets, build_input, to_float_images
from pinsweep.model import build_model
from pinsweep.record import device_environment
from pinsweep.timing import StepTimer, synchronize

log = logging.getLogger(__name__)

# adaptive mode: step times are averaged in blocks of this many steps before the CI is computed,
# because consecutive steps are correlated (workers hand over batches in bursts)
ADAPTIVE_BLOCK = 5
ADAPTIVE_CHECK_EVERY = 10
DEFAULT_WARMUP_STEPS = 3


class JobTimeout(RuntimeError):
    """The job ran past train.timeout_s."""


# ---------------------------------------------------------------------------------------------- setup


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device={name} but CUDA is not available here: use train.device=auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"train.device={name} but only {torch.cuda.device_count()} CUDA device(s) are visible: "
                f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}"
            )
    elif device.type != "cpu":
        raise ConfigError(f"train.device={name}: use auto, cpu, cuda or cuda:N")
    return device


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = deterministic
    # benchmark mode picks kernels by timing them, which would make runs differ; the notebook kept it off
    torch.backends.cudnn.benchmark = not deterministic


def physical_device_id(device: torch.device) -> str:
    """A name for the device that is the same in every process on this host: a GPU's UUID, because
    under CUDA_VISIBLE_DEVICES (one GPU per job) every job calls its own GPU cuda:0."""
    if device.type == "cuda":
        uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
        if uuid is not None:
            return f"cuda-{uuid}"
    return f"{device.type}{device.index or 0}"


@contextmanager
def exclusive_device(device: torch.device):
    """Yields whether another pinsweep job on this host is already timing the same device.

    Concurrent jobs on one GPU (or one CPU) share it and invalidate each other's timings; the job
    still runs, but says so in its log and its row."""
    lock = FileLock(Path(tempfile.gettempdir()) / f"pinsweep-{physical_device_id(device)}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("another pinsweep job is running on %s on this host: timings are not comparable", device)
        yield True
        return
    try:
        yield False
    finally:
        lock.release()


@contextmanager
def time_limit(seconds: float | None):
    """Raise JobTimeout in the main thread after `seconds`, also while blocked waiting on the loader."""
    if not seconds:
        yield
        return

    message = f"job exceeded train.timeout_s={seconds:g}: raise it or shorten the job"
    expired = False

    def expire(signum, frame):
        nonlocal expired
        expired = True
        raise JobTimeout(message)

    previous = signal.signal(signal.SIGALRM, expire)
    # after the first alarm, one a second: an alarm that lands in a __del__ (a DataLoader shutting its
    # workers down) is printed and swallowed by Python, so it has to come again
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    except Exception as error:
        if expired and not isinstance(error, JobTimeout):  # the alarm surfaced wrapped in another error
            raise JobTimeout(message) from error
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if expired:  # every alarm was swallowed, yet the job ran over its limit
        raise JobTimeout(message)


# ------------------------------------------------------------------------------------------- training


class Trainer:
    """One model + optimizer + how a batch reaches the device; shared by training and ceilings."""

    def __init__(self, model: torch.nn.Module, cfg: Any, device: torch.device):
        self.device = device
        self.non_blocking = cfg.loader.non_blocking
        self.memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=self.memory_format)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.train.lr)
        amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.autocast = (
            (lambda: torch.autocast(device.type, dtype=amp_dtype)) if cfg.train.amp else (lambda: nullcontext())
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp and device.type == "cuda")

    def to_device(self, images: torch.Tensor, labels: torch.Tensor):
        images = images.to(self.device, non_blocking=self.non_blocking)
        labels = labels.to(self.device, non_blocking=self.non_blocking)
        return to_float_images(images).contiguous(memory_format=self.memory_format), labels

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.model.train()
        with self.autocast():
            loss = F.cross_entropy(self.model(images), labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    @torch.no_grad()
    def accuracy(self, batches) -> float:
        self.model.eval()
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        for images, labels in batches:
            images, labels = self.to_device(images, labels)
            with self.autocast():
                correct += (self.model(images).argmax(dim=1) == labels).sum()
            seen += len(labels)
        return 100.0 * correct.item() / max(seen, 1)


def inject_fault(fault: str | None, step: int, batches: Any) -> None:
    """Test hook (train.inject_fault): make the job fail the way real jobs fail, at its third step."""
    if fault is None or step != 2:
        return
    if fault == "raise":
        raise RuntimeError("injected fault (train.inject_fault=raise)")
    if fault == "oom":
        raise torch.OutOfMemoryError("simulated out of memory (train.inject_fault=oom)")
    if fault == "hang":
        time.sleep(10**6)
    if fault == "kill_worker":
        workers = getattr(batches, "_workers", [])
        if not workers:
            raise ConfigError("train.inject_fault=kill_worker needs loader.num_workers >= 1")
        os.kill(workers[0].pid, signal.SIGKILL)
        time.sleep(0.5)  # let the loader notice the dead worker on the next fetch


def warmup_steps(train_cfg: Any, steps_per_epoch: int) -> int:
    if train_cfg.warmup_steps is not None:
        return train_cfg.warmup_steps
    if train_cfg.mode == "epochs" and train_cfg.epochs > 1:
        return steps_per_epoch
    return DEFAULT_WARMUP_STEPS


def train(trainer: Trainer, train_input: Any, cfg: Any) -> dict[str, Any]:
    """Timed training. Epoch times are wall clock with the device synced at each epoch boundary;
    the steady-state window starts after the warm-up steps and ends at the last step, synced."""
    train_cfg, device = cfg.train, trainer.device
    steps_per_epoch = len(train_input)
    if train_cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, train_cfg.max_steps_per_epoch)
    warmup = warmup_steps(train_cfg, steps_per_epoch)
    adaptive = train_cfg.mode == "adaptive"
    timer = StepTimer(device)
    epoch_s, first_batch_s, step_images = [], [], []
    steady_start = None
    loss = torch.zeros(())
    ci_reached, stop = math.inf, False
    # images/s while it runs; tqdm stays silent when stderr is not a terminal (CI, SLURM logs)
    progress = tqdm(
        total=None if adaptive else train_cfg.epochs * steps_per_epoch * cfg.loader.batch_size,
        unit="img",
        unit_scale=True,
        disable=None,
        leave=False,
        desc="train",
    )
    run_start = time.perf_counter()

    epoch = 0
    while not stop:
        if not adaptive and epoch == train_cfg.epochs:
            break
        synchronize(device)
        epoch_start = time.perf_counter()
        timer.wait_started()  # the first wait of an epoch includes iter(): worker start-up
        batches = iter(train_input)
        for step_in_epoch in range(steps_per_epoch):
            if step_in_epoch:
                timer.wait_started()
            try:
                images, labels = next(batches)
            except StopIteration:
                break
            timer.batch_ready()
            step_images.append(len(labels))
            if step_in_epoch == 0:
                first_batch_s.append(timer.wait_s[-1])
            images, labels = trainer.to_device(images, labels)
            timer.copied()
            loss = trainer.step(images, labels)
            timer.computed()
            progress.update(len(labels))
            inject_fault(train_cfg.inject_fault, len(timer) - 1, batches)

            if len(timer) == warmup:
                synchronize(device)  # once: the steady-state window starts with an empty queue
                steady_start = time.perf_counter()
            if adaptive and steady_start is not None and len(timer) % ADAPTIVE_CHECK_EVERY == 0:
                done = timer.completed()  # read only finished steps: no sync inside the loop
                window = timer.times(done).step_s[warmup:]
                ci_reached = stats.mean_ci_halfwidth(window, ADAPTIVE_BLOCK)
                enough = len(window) >= train_cfg.min_steps and ci_reached <= train_cfg.target_ci
                if enough or time.perf_counter() - steady_start >= train_cfg.budget_s:
                    stop = True
                    break
        if train_cfg.train_accuracy_pass:  # the notebook timed this inside every epoch
            trainer.accuracy(train_input)
        del batches  # shuts non-persistent workers down inside the epoch they belong to
        synchronize(device)
        epoch_s.append(time.perf_counter() - epoch_start)
        epoch += 1

    synchronize(device)
    run_end = time.perf_counter()
    progress.close()
    if steady_start is None:  # fewer steps than the warm-up: report the whole run, and say so
        log.warning("only %d steps, fewer than %d warm-up steps: steady state includes warm-up", len(timer), warmup)
        warmup, steady_start = 0, run_start
    times = timer.times()
    steady = times.window(warmup)
    images_steady = sum(step_images[warmup:])
    steady_seconds = run_end - steady_start
    return {
        "epochs_run": len(epoch_s),
        "epoch_times_s": [round(s, 6) for s in epoch_s],
        "epoch_s_median": float(np.median(epoch_s)),
        "first_epoch_s": epoch_s[0],
        "train_s": run_end - run_start,
        "steps": len(times.step_s),
        "warmup_steps": warmup,
        "steps_timed": len(steady.step_s),
        "images_timed": images_steady,
        "steady_s": steady_seconds,
        "images_per_s": images_steady / steady_seconds if steady_seconds > 0 else math.nan,
        "step_s_mean": float(steady.step_s.mean()) if len(steady.step_s) else math.nan,
        "step_ci_rel": stats.mean_ci_halfwidth(steady.step_s, ADAPTIVE_BLOCK) if not adaptive else ci_reached,
        "data_wait_s": float(steady.wait_s.sum()),
        "copy_s": float(steady.copy_s.sum()),
        "compute_s": float(steady.compute_s.sum()),
        "first_batch_s_median": float(np.median(first_batch_s)),
        "final_loss": float(loss),
    }


# ------------------------------------------------------------------------------------------- ceilings


def compute_ceiling(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    """images/s of the same model, batch and device with the batch already on the device:
    no DataLoader and no copy, so nothing the loader settings change can make training faster than this.
    Runs on a copy of the model so the trained weights and optimizer state stay as training left them."""
    ceiling = copy.copy(trainer)
    ceiling.model = copy.deepcopy(trainer.model)
    ceiling.optimizer = torch.optim.Adam(ceiling.model.parameters(), lr=trainer.optimizer.defaults["lr"])
    for _ in range(DEFAULT_WARMUP_STEPS):
        ceiling.step(images, labels)
    synchronize(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        ceiling.step(images, labels)
    synchronize(trainer.device)
    return steps * len(labels) / (time.perf_counter() - start)


def loader_ceiling(trainer: Trainer, train_input: Any, cfg: Any, steps: int) -> float:
    """images/s of the same loader iterated and copied to the device with no model: the most the
    input path can deliver. Batches already queued at start are skipped, so a full prefetch queue
    does not flatter the figure."""
    queued = cfg.loader.num_workers * (cfg.loader.prefetch_factor or 2) if cfg.loader.num_workers else 0
    skip = min(1 + queued, max(1, len(train_input) // 2))  # a short split still leaves batches to time
    batches = iter(train_input)
    images_seen, start = 0, None
    for index, (images, labels) in enumerate(batches):
        if index == skip:
            synchronize(trainer.device)
            start = time.perf_counter()
        if index >= skip + steps:
            break
        images, labels = trainer.to_device(images, labels)
        if start is not None:
            images_seen += len(labels)
    synchronize(trainer.device)
    if start is None or not images_seen:
        return math.nan
    return images_seen / (time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------ job


def peak_host_memory_mb() -> float:
    """Peak resident memory of this process (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_job(cfg: Any) -> dict[str, Any]:
    """Run one configured job and return its metrics; raises on any failure (the caller records it)."""
    validate(cfg)
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    if cfg.loader.pin_memory and device.type != "cuda":
        log.warning("loader.pin_memory=true has no effect without an accelerator: recorded as inactive")
        # torch repeats this for every DataLoader; the line above says it once
        warnings.filterwarnings("ignore", message=".*pin_memory.*no accelerator", category=UserWarning)
    if cfg.loader.num_workers > (os.cpu_count() or 1):
        log.warning("loader.num_workers=%d exceeds the %d CPUs here", cfg.loader.num_workers, os.cpu_count())

    train_set, test_set = build_datasets(cfg.data)
    train_input = build_input(train_set, cfg.data, cfg.loader, device, True, cfg.train.seed)
    trainer = Trainer(build_model(cfg.model), cfg, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    with time_limit(cfg.train.timeout_s), exclusive_device(device) as shared_device:
        metrics = train(trainer, train_input, cfg)
        if cfg.train.ceiling_steps:
            images, labels = trainer.to_device(*next(iter(train_input)))
            metrics["compute_ceiling_ips"] = compute_ceiling(trainer, images, labels, cfg.train.ceiling_steps)
            metrics["loader_ceiling_ips"] = loader_ceiling(trainer, train_input, cfg, cfg.train.ceiling_steps)
        if cfg.train.evaluate and test_set is not None:
            test_input = build_input(test_set, cfg.data, cfg.loader, device, False, cfg.train.seed)
            start = time.perf_counter()
            metrics["test_accuracy"] = trainer.accuracy(test_input)
            synchronize(device)
            metrics["eval_s"] = time.perf_counter() - start

    metrics["device"] = str(device)
    metrics["shared_device"] = shared_device
    metrics.update(device_environment(device))
    metrics["pin_memory_active"] = bool(cfg.loader.pin_memory and device.type == "cuda")
    metrics["peak_host_mb"] = peak_host_memory_mb()
    if device.type == "cuda":
        metrics["peak_device_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return metrics
