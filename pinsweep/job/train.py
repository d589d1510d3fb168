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
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from filelock import FileLock, Timeout
from tqdm import tqdm

from pinsweep.analysis import stats
from pinsweep.config import ConfigError, validate
from pinsweep.input.data import EncodedBatch, build_datasets, build_input, to_float_images
from pinsweep.input.prefetch import DevicePrefetcher, Staged
from pinsweep.job.environment import device_environment
from pinsweep.job.model import build_model
from pinsweep.job.timing import StepTimer, StepTimes, StopRule, synchronize

log = logging.getLogger(__name__)

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
    if device.type == "cuda" and device.index is None:  # a CUDA device by number, as set_device needs
        device = torch.device("cuda", torch.cuda.current_device())
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

    def to_device(self, images: Any, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The host-to-device copy and nothing else: exactly what the step timer calls copy. With nvJPEG
        the copy is the GPU's decode of the batch's files; a batch staged by loader.device_prefetch was
        copied on the side stream, and the compute stream only waits for that copy to have finished."""
        if isinstance(images, Staged):
            return images.arrive(torch.cuda.current_stream(self.device))
        if isinstance(images, EncodedBatch):
            images = images.decode(self.device)
        else:
            images = images.to(self.device, non_blocking=self.non_blocking)
        return images, labels.to(self.device, non_blocking=self.non_blocking)

    def as_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 batches become ToTensor's floats in the configured memory format, on the device: compute,
        not copy (on the CPU, timing it as copy would blame a copy that pinning cannot speed up)."""
        return to_float_images(images).contiguous(memory_format=self.memory_format)

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.model.train()
        images = self.as_input(images)
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
                correct += (self.model(self.as_input(images)).argmax(dim=1) == labels).sum()
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


def steps_per_epoch(train_input: Any, train_cfg: Any, loader_cfg: Any) -> int:
    steps = len(train_input)
    if steps == 0:
        raise ConfigError(
            f"the train split gives no batch with loader.batch_size={loader_cfg.batch_size} and loader.drop_last="
            f"{str(loader_cfg.drop_last).lower()}: lower loader.batch_size or set loader.drop_last=false"
        )
    return min(steps, train_cfg.max_steps_per_epoch or steps)


def warmup_steps(train_cfg: Any, epoch_steps: int) -> int:
    """Steps left out of the steady state: as configured; else the first epoch when there are several."""
    if train_cfg.warmup_steps is None:
        if train_cfg.mode == "epochs" and train_cfg.epochs > 1:
            return epoch_steps
        return DEFAULT_WARMUP_STEPS
    total = train_cfg.epochs * epoch_steps
    if train_cfg.mode == "epochs" and train_cfg.warmup_steps >= total:
        raise ConfigError(
            f"train.warmup_steps={train_cfg.warmup_steps} leaves no timed step of this run's {total} "
            f"({train_cfg.epochs} epochs x {epoch_steps}): set it below {total} or raise train.epochs"
        )
    return train_cfg.warmup_steps


def start_window(device: torch.device, timer: StepTimer) -> float:
    """Start the steady-state window on an empty device queue; returns its host start time."""
    synchronize(device)
    start = time.perf_counter()
    timer.resume()  # the window's first stall counts from here, not from the warm-up's last step
    return start


def stop_workers(loader: Any) -> None:
    """Shut a DataLoader's persistent workers down now. They outlive each epoch on purpose, and when
    training stops mid-epoch (adaptive mode) they go on prefetching the rest of it: beside the
    ceilings that are timed next they would compete for the same cores, and restarting them with
    `iter()` makes them prefetch again. (Non-persistent workers end with their iterator.) `_iterator`
    is the DataLoader's own handle on them; the next `iter()` makes a fresh one. A torchdata.nodes loader
    shuts its own down; a DevicePrefetcher's are its source's."""
    if isinstance(loader, DevicePrefetcher):
        loader = loader.source
    if hasattr(loader, "shutdown"):
        loader.shutdown()
        return
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None:
        iterator._shutdown_workers()
        loader._iterator = None


def train(trainer: Trainer, train_input: Any, cfg: Any) -> tuple[dict[str, Any], tuple[torch.Tensor, ...] | None]:
    """Timed training: the row's training metrics, and the last batch training moved to the device.

    Epoch times are wall clock with the device synced at each epoch boundary. The steady-state window
    runs from the end of the warm-up to the end of the last step (after the last epoch's
    train-accuracy pass, if any), synced at both ends. When this returns, no worker of the training
    loader is running."""
    train_cfg, device = cfg.train, trainer.device
    epoch_steps = steps_per_epoch(train_input, train_cfg, cfg.loader)
    warmup = warmup_steps(train_cfg, epoch_steps)
    adaptive = train_cfg.mode == "adaptive"
    rule = StopRule(train_cfg.target_ci, train_cfg.min_steps, train_cfg.budget_s) if adaptive else None
    timer = StepTimer(device)
    epoch_s, first_batch_s, step_images = [], [], []
    side_copies = []  # loader.device_prefetch: each step's copy on the side stream, as (start, end) events
    loss, batch = torch.zeros(()), None
    # images/s while it runs; tqdm stays silent when stderr is not a terminal (CI, SLURM logs)
    progress = tqdm(
        total=None if adaptive else train_cfg.epochs * epoch_steps * cfg.loader.batch_size,
        unit="img",
        unit_scale=True,
        disable=None,
        leave=False,
        desc="train",
    )
    run_start = time.perf_counter()
    timer.resume()
    steady_start = start_window(device, timer) if warmup == 0 else None
    window_end = math.nan

    epoch, stop = 0, False
    while not stop and (adaptive or epoch < train_cfg.epochs):
        synchronize(device)
        epoch_start = time.perf_counter()
        timer.wait_started()  # the first wait of an epoch includes iter(): worker start-up
        batches = iter(train_input)
        for step_in_epoch in range(epoch_steps):
            if step_in_epoch:
                timer.wait_started()
            try:
                images, labels = next(batches)
            except StopIteration:
                break
            timer.batch_ready()
            if step_in_epoch == 0:
                first_batch_s.append(timer.host_wait)
            step_images.append(len(labels))
            if isinstance(images, Staged):
                side_copies.append((images.start, images.ready))
            batch = trainer.to_device(images, labels)
            timer.copied()
            loss = trainer.step(*batch)
            timer.computed()
            progress.update(len(labels))
            inject_fault(train_cfg.inject_fault, len(timer) - 1, batches)

            if len(timer) == warmup:
                steady_start = start_window(device, timer)
            elif adaptive and steady_start is not None:
                # the budget every step (one clock read); the CI only when due (see StopRule)
                stop = rule.out_of_time(time.perf_counter() - steady_start) or (
                    rule.due(len(timer) - warmup) and rule.precise(timer.step_s(warmup))
                )
                if stop:
                    break
        if train_cfg.train_accuracy_pass:  # the notebook timed this inside every epoch
            trainer.accuracy(train_input)
            timer.resume()  # neither waiting for data nor training: not the next step's stall
        if stop or (not adaptive and epoch == train_cfg.epochs - 1):
            synchronize(device)
            window_end = time.perf_counter()
        del batches  # shuts non-persistent workers down inside the epoch they belong to
        synchronize(device)
        epoch_s.append(time.perf_counter() - epoch_start)
        epoch += 1

    run_end = time.perf_counter()
    stop_workers(train_input)
    progress.close()
    if steady_start is None:  # fewer steps than the default warm-up: report the whole run, and say so
        log.warning("only %d steps, fewer than %d warm-up steps: steady state includes warm-up", len(timer), warmup)
        warmup, steady_start = 0, run_start
    return {
        "epochs_run": len(epoch_s),
        "epoch_times_s": [round(s, 6) for s in epoch_s],
        "epoch_s_median": float(np.median(epoch_s)),
        "first_epoch_s": epoch_s[0],
        "train_s": run_end - run_start,
        **steady_metrics(timer.times(), warmup, sum(step_images[warmup:]), window_end - steady_start),
        "first_batch_s_median": float(np.median(first_batch_s)),
        # device_prefetch: the copies the side stream ran in the steady window, overlapped or not
        "side_copy_s": sum(start.elapsed_time(end) for start, end in side_copies[warmup:]) / 1000.0,
        "final_loss": float(loss),
        # a diverged run (NaN or inf) is still timed, but its numbers describe no real training
        "loss_finite": math.isfinite(float(loss)),
    }, batch


def steady_metrics(times: StepTimes, warmup: int, images: int, seconds: float) -> dict[str, Any]:
    """The steady-state window's figures; its stall, copy and compute add up to its steps' time."""
    steady = times.window(warmup)
    timed = len(steady.stall_s)
    return {
        "steps": len(times.stall_s),
        "warmup_steps": warmup,
        "steps_timed": timed,
        "images_timed": images,
        "steady_s": seconds,
        "images_per_s": images / seconds if seconds > 0 else math.nan,
        "step_s_mean": float(steady.step_s.mean()) if timed else math.nan,
        "step_ci_rel": stats.mean_ci_rel(steady.step_s),
        "data_wait_s": float(steady.stall_s.sum()),
        "host_wait_s": float(steady.host_wait_s.sum()),
        "copy_s": float(steady.copy_s.sum()),
        "compute_s": float(steady.compute_s.sum()),
    }


# ------------------------------------------------------------------------------------------- ceilings


@dataclass
class Ceiling:
    """A ceiling's images/s, the relative 95% CI half-width of its mean step time, its timed steps."""

    images_per_s: float
    ci_rel: float
    steps: int

    def row(self, name: str) -> dict[str, float]:
        return {
            f"{name}_ceiling_ips": self.images_per_s,
            f"{name}_ceiling_ci_rel": self.ci_rel,
            f"{name}_ceiling_steps": self.steps,
        }


def ceiling_rule(train_cfg: Any) -> StopRule:
    return StopRule(train_cfg.ceiling_target_ci, train_cfg.ceiling_steps, train_cfg.ceiling_budget_s)


def time_until_precise(one_step: Callable[[], int], timer: StepTimer, rule: StopRule, device: torch.device) -> Ceiling:
    """Repeat `one_step` (it marks its boundaries on `timer` and returns its images) until `rule` stops
    it. The clock starts on a synced device before the first step, so images/s counts exactly the
    work done after it started, over the steps' own time on the device's timeline."""
    synchronize(device)
    start = time.perf_counter()
    timer.resume()
    images = 0
    while True:
        images += one_step()
        if rule.out_of_time(time.perf_counter() - start) or (rule.due(len(timer)) and rule.precise(timer.step_s())):
            break
    synchronize(device)
    step_s = timer.times().step_s
    return Ceiling(images / step_s.sum(), stats.mean_ci_rel(step_s), len(step_s))


def compute_ceiling(trainer: Trainer, batch: tuple[torch.Tensor, ...], train_cfg: Any) -> Ceiling:
    """images/s of the same model, batch and device with the batch already on the device: no loader
    and no copy, so nothing the loader settings change can make training faster than this. The batch
    is the last one training moved to the device, so no loader is touched (and none is running:
    train() stopped its workers). Runs on a copy of the model so the trained weights and optimizer
    state stay as training left them."""
    ceiling = copy.copy(trainer)
    ceiling.model = copy.deepcopy(trainer.model)
    ceiling.optimizer = torch.optim.Adam(ceiling.model.parameters(), lr=trainer.optimizer.defaults["lr"])
    for _ in range(DEFAULT_WARMUP_STEPS):
        ceiling.step(*batch)
    timer = StepTimer(trainer.device)

    def one_step() -> int:
        timer.wait_started()  # nothing to wait for or copy: the batch is already on the device
        timer.batch_ready()
        timer.copied()
        ceiling.step(*batch)
        timer.computed()
        return len(batch[1])

    return time_until_precise(one_step, timer, ceiling_rule(train_cfg), trainer.device)


def prefetched_batches(loader: Any) -> int:
    """How many batches a loader's workers can have ready before anyone asks for one."""
    workers = getattr(loader, "num_workers", 0)
    return (workers * loader.prefetch_factor if workers else 0) + getattr(loader, "depth", 0)


def endless(loader: Any) -> Iterator[Any]:
    """The loader's batches epoch after epoch, with a new iter() each epoch, as training makes them."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            return


def loader_ceiling(trainer: Trainer, train_input: Any, train_cfg: Any) -> Ceiling:
    """images/s of the same loader iterated and copied to the device with no model: the most the input
    path can deliver. The batches its workers prefetched are consumed before the clock starts (from
    then on every fetch waits for work done after the start); the clock starts before the first timed
    fetch; a short split is cycled, each new epoch's start-up timed as training pays it."""
    batches = endless(train_input)
    try:
        for _ in range(prefetched_batches(train_input) + 1):
            next(batches)
        timer = StepTimer(trainer.device)

        def one_fetch() -> int:
            timer.wait_started()
            images, labels = next(batches)
            timer.batch_ready()
            trainer.to_device(images, labels)
            timer.copied()
            timer.computed()  # no model: the step ends with the copy
            return len(labels)

        return time_until_precise(one_fetch, timer, ceiling_rule(train_cfg), trainer.device)
    finally:
        batches.close()  # drops its iterator, and with it non-persistent workers
        stop_workers(train_input)


# ------------------------------------------------------------------------------------------------ job


def peak_host_memory_mb() -> float:
    """Peak resident memory of this process (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_job(cfg: Any) -> dict[str, Any]:
    """Run one configured job and return its metrics; raises on any failure (the caller records it)."""
    validate(cfg)
    device = resolve_device(cfg.train.device)
    if device.type == "cuda":  # what torch does on "the current device" (pinning, new tensors) goes to this one
        torch.cuda.set_device(device)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    if cfg.loader.pin_memory and device.type != "cuda":
        log.warning("loader.pin_memory=true has no effect without an accelerator: recorded as inactive")
        # torch repeats this for every DataLoader; the line above says it once
        warnings.filterwarnings("ignore", message=".*pin_memory.*no accelerator", category=UserWarning)
    if cfg.loader.num_workers > (os.cpu_count() or 1):
        log.warning("loader.num_workers=%d exceeds the %d CPUs here", cfg.loader.num_workers, os.cpu_count())

    if cfg.data.decoder == "nvjpeg" and device.type != "cuda":
        raise ConfigError(
            f"data.decoder=nvjpeg decodes on a CUDA GPU and this job runs on {device}: "
            "use data.decoder=torchvision (or pil), or run it on a GPU"
        )
    prefetch_active = cfg.loader.device_prefetch > 0 and device.type == "cuda"
    if cfg.loader.device_prefetch and not prefetch_active:
        log.warning(
            "loader.device_prefetch=%d has no effect without an accelerator: recorded as inactive",
            cfg.loader.device_prefetch,
        )

    train_set, test_set = build_datasets(cfg.data)
    train_input = build_input(train_set, cfg.data, cfg.loader, device, True, cfg.train.seed)
    trainer = Trainer(build_model(cfg.model), cfg, device)
    if prefetch_active and cfg.data.pipeline != "device":  # a resident split has nothing to copy
        train_input = DevicePrefetcher(train_input, cfg.loader.device_prefetch, device, trainer.to_device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    with time_limit(cfg.train.timeout_s), exclusive_device(device) as shared_device:
        metrics, last_batch = train(trainer, train_input, cfg)
        if cfg.train.ceiling_steps and last_batch is not None:
            metrics.update(compute_ceiling(trainer, last_batch, cfg.train).row("compute"))
            metrics.update(loader_ceiling(trainer, train_input, cfg.train).row("loader"))
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
    metrics["device_prefetch_active"] = isinstance(train_input, DevicePrefetcher)
    metrics["peak_host_mb"] = peak_host_memory_mb()
    if device.type == "cuda":
        metrics["peak_device_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return metrics
