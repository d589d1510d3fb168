"""The job: train once under one config, time it honestly, and return the metrics for its row.

    python -m pinsweep data=synthetic model=tiny train.epochs=2      # one job
    run_job(cfg)                                                      # the same, from Python

Stages: setup (device, seeds) -> data -> model -> timed training -> ceilings -> evaluation.
Training is timed first, in a fresh process, so that nothing measured before it warms caches for it.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import os
import random
import resource
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout
from tqdm import tqdm

from pinsweep.analysis import stats
from pinsweep.config import ConfigError, instantiate_node, plain, validate
from pinsweep.input.accounting import EpochTally
from pinsweep.input.batch import Mover, first_dim, map_batch, tensors
from pinsweep.input.data import build_datasets, to_float_images
from pinsweep.input.loader import build_input, is_stream, with_device_prefetch
from pinsweep.input.prefetch import DevicePrefetcher, Staged
from pinsweep.input.stage import Input
from pinsweep.job import distributed
from pinsweep.job import step as steps
from pinsweep.job.environment import device_environment
from pinsweep.job.model import build_model
from pinsweep.job.timing import StepTimer, StepTimes, StopRule, synchronize
from pinsweep.record import IMAGE_DATASETS

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
    return f"{device.type}{device.index or 0}{distributed.lock_suffix(device)}"


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
    """One model + optimizer + your step (pinsweep.job.step), and how a batch reaches the device; shared
    by training, the ceilings and evaluation. Around the step it keeps what every training loop has:
    autocast under train.amp, zero_grad, backward through the AMP grad scaler, the optimizer's step."""

    def __init__(self, model: torch.nn.Module, cfg: Any, device: torch.device):
        self.device = device
        self.memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        self.move = Mover(device, cfg.loader.non_blocking, cfg.train.channels_last)
        self.model = model.to(device, memory_format=self.memory_format)
        self.make_optimizer = optimizer_factory(cfg.train)
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ConfigError(
                f"model {cfg.model.name} has no parameter to train, so the optimizer has nothing to step: "
                "give a model with trainable parameters (model._target_, model.kwargs)"
            )
        self.optimizer = self.make_optimizer(self.model.parameters())
        self.num_classes = cfg.model.num_classes
        self.collate_fn = cfg.data.collate_fn if isinstance(cfg.data.collate_fn, str) else None
        self.train_cfg = cfg.train
        self.loss_of = steps.resolve("train.step", cfg.train.step)
        self.count_items = steps.counter(cfg.train)
        self.evaluation = steps.Evaluation(cfg.train, self.loss_of)
        # uint8 images (the tensor, device and JPEG pipelines, or your classifier's) become floats before
        # the step; a batch of your own data under your own step reaches it as your collate_fn made it
        self.float_images = cfg.data.name in IMAGE_DATASETS or steps.is_default_step(cfg.train)
        self.channels_last = cfg.train.channels_last
        self.checked = False  # the first step checks the batch and the loss once
        amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.autocast = (
            (lambda: torch.autocast(device.type, dtype=amp_dtype)) if cfg.train.amp else (lambda: nullcontext())
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp and device.type == "cuda")
        self.amp_host_sync = scaler_syncs_host(self.scaler, self.optimizer)
        if self.amp_host_sync:
            log.warning(
                "train.amp=true with %s: the grad scaler reads found_inf on the host every step (a sync), so "
                "the host cannot run ahead and pin_memory/non_blocking have no overlap to act through "
                "(recorded: amp_host_sync=true); a fused optimizer unscales on the device: "
                "+train.optimizer.fused=true",
                type(self.optimizer).__name__,
            )

    def to_device(self, batch: Any) -> Any:
        """The host-to-device copy of the whole batch and nothing else: exactly what the step timer calls
        copy (pinsweep.input.batch.Mover). With nvJPEG the copy is the GPU's decode of the batch's files;
        a batch staged by loader.device_prefetch was copied on the side stream, and the compute stream
        only waits for that copy to have finished."""
        return self.move(batch)

    def count(self, batch: Any) -> int:
        """The items in a batch as the loader yielded it (train.count, on the host batch: no device sync)."""
        return batch.count if isinstance(batch, Staged) else self.count_items(batch)

    def prepare(self, batch: Any) -> Any:
        """uint8 images (4-D) become ToTensor's floats in the configured memory format, on the device:
        compute, not copy (on the CPU, timing it as copy would blame a copy that pinning cannot speed up)."""
        if not self.float_images:
            return batch

        def floats(tensor: torch.Tensor) -> torch.Tensor:
            if tensor.dim() == 4 and tensor.dtype == torch.uint8:
                return to_float_images(tensor).contiguous(memory_format=self.memory_format)
            return tensor

        return map_batch(batch, floats)

    def step(self, batch: Any) -> torch.Tensor:
        """One training step on a batch already on the device; returns the loss, detached."""
        self.model.train()
        batch = self.prepare(batch)
        if not self.checked:
            self.check_batch(batch)
            with self.autocast():
                loss = self.first_loss(batch)
            steps.check_loss(loss, self.train_cfg)
            self.checked = True
        else:
            with self.autocast():
                loss = self.loss_of(self.model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    def first_loss(self, batch: Any) -> torch.Tensor:
        """The first step's loss, where a classification batch whose labels the model's outputs cannot hold
        is the config's mistake (model.num_classes), not a failure of torch's: one line with the fix."""
        try:
            return self.loss_of(self.model, batch)
        except IndexError as error:
            if not (steps.is_default_step(self.train_cfg) and "out of bounds" in str(error)):
                raise
            most = int(batch[1].max())
            raise ConfigError(
                f"model.num_classes={self.num_classes}: the batch holds label {most}, which the model's "
                f"{self.num_classes} outputs cannot score: set model.num_classes >= {most + 1}"
            ) from error

    def check_batch(self, batch: Any) -> None:
        """Options that cannot act on this batch are refused, not silently measured as no effect; a batch the
        step cannot take is named with what made it."""
        if batch is None:
            made_by = f"data.collate_fn={self.collate_fn}" if self.collate_fn else "the dataset"
            raise ConfigError(f"{made_by} made a batch of None: a collate_fn must return the batch it collated")
        if steps.is_default_step(self.train_cfg) and not (
            isinstance(batch, (tuple, list)) and len(batch) == 2 and all(isinstance(t, torch.Tensor) for t in batch)
        ):
            what = type(batch[0]).__name__ if isinstance(batch, (tuple, list)) and batch else type(batch).__name__
            raise ConfigError(
                f"train.step={self.train_cfg.step} takes (images, labels) batches of tensors and this batch "
                f"holds a {what} first: give a data.collate_fn that makes tensors of your samples, or your own "
                "train.step (README: Your own dataset and model)"
            )
        if self.channels_last and not any(t.dim() == 4 and t.is_floating_point() for t in tensors(batch)):
            raise ConfigError(
                "train.channels_last=true lays out 4-D image batches (N, C, H, W) and this batch holds none: "
                "set train.channels_last=false"
            )

    @torch.no_grad()
    def evaluate(self, batches: Any) -> dict[str, float]:
        """The test split's figures (pinsweep.job.steps.Evaluation), each averaged over its items: the
        `test_<name>` columns. Sums stay on the device; one read at the end."""
        self.model.eval()
        totals: dict[str, Any] = {}
        items = 0
        for host_batch in batches:
            batch = self.prepare(self.to_device(host_batch))
            count = self.count(host_batch)
            with self.autocast():
                figures = self.evaluation.figures(self.model, batch)
            if not totals:
                self.evaluation.check(figures)
            for name, value in figures.items():
                value = value.detach().float() if isinstance(value, torch.Tensor) else float(value)
                totals[name] = totals.get(name, 0.0) + value * count
            items += count
        return steps.average({name: float(total) for name, total in totals.items()}, items)


def scaler_syncs_host(scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer) -> bool:
    """Whether every step syncs the host: an enabled GradScaler checks found_inf with .item() before
    stepping an optimizer, unless the optimizer takes the scale and found_inf itself (fused Adam, AdamW,
    SGD: `_step_supports_amp_scaling`) and skips its update on the device."""
    return scaler.is_enabled() and not getattr(optimizer, "_step_supports_amp_scaling", False)


def optimizer_factory(train_cfg: Any) -> Callable[..., torch.optim.Optimizer]:
    """train.optimizer (a Hydra partial) as `make(parameters)`, with lr=train.lr unless it sets lr itself."""
    partial = instantiate_node({**plain(train_cfg.optimizer), "_partial_": True}, "train.optimizer", "the optimizer")
    lr = {} if "lr" in train_cfg.optimizer else {"lr": train_cfg.lr}
    return lambda parameters: partial(parameters, **lr)


def inject_fault(fault: str | None, step: int, train_input: Input) -> None:
    """Test hook (train.inject_fault): make the job fail the way real jobs fail, at its third step."""
    if fault is None or step != 2:
        return
    if fault == "raise":
        raise RuntimeError("injected fault (train.inject_fault=raise)")
    if fault == "oom":
        raise torch.OutOfMemoryError("simulated out of memory (train.inject_fault=oom)")
    if fault == "hang":
        time.sleep(10**6)
    if fault == "kill":  # the training process dies at once, as under the kernel's OOM killer
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "kill_worker":
        workers = train_input.worker_pids()
        if not workers:
            raise ConfigError("train.inject_fault=kill_worker needs loader.num_workers >= 1")
        os.kill(workers[0], signal.SIGKILL)
        time.sleep(0.5)  # let the loader notice the dead worker on the next fetch


def steps_per_epoch(train_input: Input, train_cfg: Any, loader_cfg: Any) -> int | None:
    """Steps in an epoch as known before it runs (train.max_steps_per_epoch caps it); None for a stream
    (an IterableDataset), whose epoch is what it yields."""
    steps = train_input.batches_per_epoch()
    if steps is None:
        return train_cfg.max_steps_per_epoch
    if steps == 0:
        raise ConfigError(
            f"the train split gives no batch with loader.batch_size={loader_cfg.batch_size} and loader.drop_last="
            f"{str(loader_cfg.drop_last).lower()}: lower loader.batch_size or set loader.drop_last=false"
        )
    return min(steps, train_cfg.max_steps_per_epoch or steps)


def warmup_steps(train_cfg: Any, epoch_steps: int | None) -> int | None:
    """Steps left out of the steady state: as configured; else the first epoch when there are several
    (None: the first epoch of a stream, whose length is known once it has ended)."""
    if train_cfg.warmup_steps is None:
        if train_cfg.mode == "epochs" and train_cfg.epochs > 1:
            return epoch_steps
        return DEFAULT_WARMUP_STEPS
    total = train_cfg.epochs * epoch_steps if epoch_steps else None
    if train_cfg.mode == "epochs" and total is not None and train_cfg.warmup_steps >= total:
        raise ConfigError(
            f"train.warmup_steps={train_cfg.warmup_steps} leaves no timed step of this run's {total} "
            f"({train_cfg.epochs} epochs x {epoch_steps}): set it below {total} or raise train.epochs"
        )
    return train_cfg.warmup_steps


def start_window(device: torch.device, timer: StepTimer) -> float:
    """Start the steady-state window on an empty device queue; returns its host start time."""
    synchronize(device)
    distributed.barrier(device)  # several ranks: one window for all
    start = time.perf_counter()
    timer.resume()  # the window's first stall counts from here, not from the warm-up's last step
    return start


def train(
    trainer: Trainer, train_input: Input, cfg: Any, claimed_samples: int | None = None
) -> tuple[dict[str, Any], Any]:
    """Timed training: the row's training metrics, and the last whole batch training moved to the device
    (for the compute-only ceiling: an epoch's short last batch would understate it).

    Epoch times are marks on the device's timeline (the host clock on the CPU), read at the end; nothing
    syncs the device at an epoch boundary. The steady-state window runs from the end of the warm-up to
    the end of the last step (after the last epoch's train-accuracy pass, if any), synced at both ends.
    An epoch is what the loader yields: a stream's (an IterableDataset's; `claimed_samples` is its
    __len__, if it has one) ends when the stream does.
    When this returns, no worker of the training loader is running."""
    train_cfg, device = cfg.train, trainer.device
    epoch_steps = steps_per_epoch(train_input, train_cfg, cfg.loader)
    full_epoch = train_input.batches_per_epoch()  # None: a stream
    warmup = warmup_steps(train_cfg, epoch_steps)  # None: a stream's first epoch, counted as it runs
    adaptive = train_cfg.mode == "adaptive"
    rule = StopRule(train_cfg.target_ci, train_cfg.min_steps, train_cfg.budget_s) if adaptive else None
    vote = distributed.StopVote() if adaptive else None  # several ranks stop at the same step
    timer = StepTimer(device)
    first_batch_s, step_items = [], []
    side_copies = []  # loader.device_prefetch: each step's copy on the side stream, as (start, end) events
    loss, batch, whole_batch = torch.zeros(()), None, None
    unit = steps.unit_of(cfg)
    accounting = EpochAccounting(cfg.loader, unit, claimed_samples)
    # <unit>/s while it runs; tqdm stays silent when stderr is not a terminal (CI, SLURM logs)
    known_total = not adaptive and not train_cfg.count and epoch_steps  # items known ahead only as batch sizes
    progress = tqdm(
        total=train_cfg.epochs * epoch_steps * cfg.loader.batch_size if known_total else None,
        unit=f" {unit}",
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
    # epoch boundaries are marks on the device's timeline, read once training is over: a sync at each
    # boundary would drain the GPU's queue before the loader's workers stop and start, which a real loop
    # hides behind queued steps (no host sync inside the timed window, as pinsweep.job.timing promises)
    epoch_marks = [timer.clock.mark()]
    while not stop and (adaptive or epoch < train_cfg.epochs):
        timer.wait_started()  # the first wait of an epoch includes iter(): worker start-up
        batches = iter(train_input)
        epoch_first_step, ended = len(timer), False
        for step_in_epoch in range(epoch_steps) if epoch_steps else itertools.count():
            if step_in_epoch:
                timer.wait_started()
            try:
                host_batch = next(batches)
            except StopIteration:
                ended = True
                break
            timer.batch_ready()
            batch = trainer.to_device(host_batch)
            if whole_batch is None or samples_in(batch) >= cfg.loader.batch_size:
                whole_batch = batch
            timer.copied()
            loss = trainer.step(batch)
            timer.computed()
            # bookkeeping after the step: on the device's timeline it is part of the next step's stall
            if step_in_epoch == 0:
                first_batch_s.append(timer.host_wait)
            step_items.append(trainer.count(host_batch))
            if isinstance(host_batch, Staged):
                side_copies.append((host_batch.start, host_batch.ready))
            progress.update(step_items[-1])
            inject_fault(train_cfg.inject_fault, len(timer) - 1, train_input)

            if len(timer) == warmup:
                steady_start = start_window(device, timer)
            elif adaptive and steady_start is not None:
                # the budget every step (one clock read); the CI only when due (see StopRule)
                stop = vote(
                    rule.out_of_time(time.perf_counter() - steady_start)
                    or (rule.due(len(timer) - warmup) and rule.precise(timer.step_s(warmup)))
                )
                if stop:
                    break
        taken = len(timer) - epoch_first_step
        # whole: the stream ended, or every batch the loader has for an epoch was taken (not cut short)
        whole = ended or (not stop and taken == full_epoch)
        accounting.epoch_ended(epoch, step_items[epoch_first_step:], whole, train_input.epoch_tally())
        if warmup is None:  # a stream's first epoch was the warm-up: its length is known now
            warmup = len(timer)
            steady_start = start_window(device, timer)
        if train_cfg.train_accuracy_pass:  # the notebook timed this inside every epoch
            trainer.evaluate(train_input)
            timer.resume()  # neither waiting for data nor training: not the next step's stall
        if stop or (not adaptive and epoch == train_cfg.epochs - 1):
            synchronize(device)
            distributed.barrier(device)  # several ranks: the window ends when the last rank's last step does
            window_end = time.perf_counter()
        del batches  # shuts non-persistent workers down inside the epoch they belong to
        epoch_marks.append(timer.clock.mark())
        epoch += 1

    synchronize(device)  # every mark has been reached: the epochs' times can be read
    epoch_s = [timer.clock.seconds(start, end) for start, end in itertools.pairwise(epoch_marks)]

    run_end = time.perf_counter()
    train_input.shutdown()  # persistent workers stopped mid-epoch would prefetch beside the ceilings
    progress.close()
    if steady_start is None:  # fewer steps than the default warm-up: report the whole run, and say so
        log.warning("only %d steps, fewer than %d warm-up steps: steady state includes warm-up", len(timer), warmup)
        warmup, steady_start = 0, run_start
    if len(timer) <= warmup:  # nothing was timed after the warm-up: no throughput to report
        raise ConfigError(
            f"no step was timed after the warm-up: the run took {len(timer)} steps and its warm-up "
            f"{warmup}; raise train.epochs, or set train.warmup_steps below {len(timer)}"
        )
    return {
        "epochs_run": len(epoch_s),
        "epoch_times_s": [round(s, 6) for s in epoch_s],
        "epoch_s_median": float(np.median(epoch_s)),
        "first_epoch_s": epoch_s[0],
        "train_s": run_end - run_start,
        **steady_metrics(timer.times(), warmup, sum(step_items[warmup:]), window_end - steady_start, unit),
        **accounting.row(),
        "first_batch_s_median": float(np.median(first_batch_s)),
        # device_prefetch: the copies the side stream ran in the steady window, overlapped or not
        "side_copy_s": sum(start.elapsed_time(end) for start, end in side_copies[warmup:]) / 1000.0,
        "final_loss": float(loss),
        # a diverged run (NaN or inf) is still timed, but its numbers describe no real training
        "loss_finite": math.isfinite(float(loss)),
    }, whole_batch


class EpochAccounting:
    """What each epoch yielded, checked as it ends: the row's items, samples and batches per epoch (the
    first whole epoch's) and the batches each worker gave; a stream read whole by every worker is a
    config that cannot be measured (invalid); idle workers and a stream longer or shorter than its
    __len__ are named in the log and kept in the row."""

    def __init__(self, loader_cfg: Any, unit: str, claimed_samples: int | None):
        self.num_workers = loader_cfg.num_workers
        self.unit = unit
        self.claimed_samples = claimed_samples
        self.first_whole: dict[str, Any] | None = None

    def epoch_ended(self, epoch: int, items: list[int], whole: bool, tally: EpochTally | None) -> None:
        if not items:
            raise ConfigError(
                f"the train split yielded no batch in epoch {epoch + 1}: a dataset must yield its samples anew "
                "each time it is iterated (an IterableDataset's __iter__ starts the stream again), "
                "and hold at least one batch"
            )
        if tally is not None and (pair := tally.same_stream()) is not None:
            raise ConfigError(
                f"loader.num_workers={self.num_workers}: workers {pair[0]} and {pair[1]} yielded the same samples, "
                f"so every sample is loaded {self.num_workers} times: split the stream between workers in the "
                "IterableDataset with torch.utils.data.get_worker_info() (webdataset: wds.split_by_worker), "
                "or set loader.num_workers=0"
            )
        if not whole or self.first_whole is not None:
            return
        self.first_whole = {
            "items_per_epoch": sum(items),
            "batches_per_epoch": len(items),
            "samples_per_epoch": tally.samples if tally is not None and tally.samples is not None else math.nan,
        }
        if tally is None:
            return
        self.first_whole["worker_batches"] = tally.worker_batches
        self.first_whole["idle_workers"] = len(idle := tally.idle_workers())
        if idle:
            log.warning(
                "loader.num_workers=%d: worker%s %s yielded no batch in epoch %d (the data has fewer shards or "
                "batches than workers): those workers cost memory and start-up for nothing; lower "
                "loader.num_workers to %d, or split the data into more shards",
                self.num_workers,
                "s" if len(idle) > 1 else "",
                ", ".join(map(str, idle)),
                epoch + 1,
                self.num_workers - len(idle),
            )
        if self.claimed_samples is not None and tally.samples is not None and tally.samples != self.claimed_samples:
            log.warning(
                "the IterableDataset's __len__ says %d samples and its stream yielded %d in epoch %d: an epoch is "
                "what the stream yields; the real count is recorded (samples_per_epoch)",
                self.claimed_samples,
                tally.samples,
                epoch + 1,
            )

    def row(self) -> dict[str, Any]:
        """The row's accounting columns; NaN where no epoch ran whole (cut by max_steps_per_epoch, adaptive)."""
        empty = {"items_per_epoch": math.nan, "batches_per_epoch": math.nan, "samples_per_epoch": math.nan}
        return {**empty, "idle_workers": 0, **(self.first_whole or {})}


def samples_in(batch: Any) -> int:
    """The samples a device batch holds (its first tensor's first dimension), for telling an epoch's short
    last batch from a whole one; a batch this cannot read counts as whole."""
    try:
        return first_dim(batch)
    except ConfigError:
        return sys.maxsize


def steady_metrics(times: StepTimes, warmup: int, items: int, seconds: float, unit: str = "images") -> dict[str, Any]:
    """The steady-state window's figures; its stall, copy and compute add up to its steps' time.
    `throughput` is the window's items (train.count) per second in `unit`; an image pipeline's row also
    carries them under the names it always had (`images_timed`, `images_per_s`)."""
    steady = times.window(warmup)
    timed = len(steady.stall_s)
    throughput = items / seconds if seconds > 0 else math.nan
    legacy = {"images_timed": items, "images_per_s": throughput} if unit == "images" else {}
    return {
        "steps": len(times.stall_s),
        "warmup_steps": warmup,
        "steps_timed": timed,
        "unit": unit,
        "items_timed": items,
        "steady_s": seconds,
        "throughput": throughput,
        **legacy,
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
    """A ceiling's items per second (train.unit), the relative 95% CI half-width of its mean step time,
    its timed steps. The columns keep their names (`*_ceiling_ips`) whatever the unit."""

    per_s: float
    ci_rel: float
    steps: int

    def row(self, name: str) -> dict[str, float]:
        return {
            f"{name}_ceiling_ips": self.per_s,
            f"{name}_ceiling_ci_rel": self.ci_rel,
            f"{name}_ceiling_steps": self.steps,
        }


def ceiling_rule(train_cfg: Any) -> StopRule:
    return StopRule(train_cfg.ceiling_target_ci, train_cfg.ceiling_steps, train_cfg.ceiling_budget_s)


def time_until_precise(one_step: Callable[[], int], timer: StepTimer, rule: StopRule, device: torch.device) -> Ceiling:
    """Repeat `one_step` (it marks its boundaries on `timer` and returns its items) until `rule` stops
    it. The clock starts on a synced device before the first step, so items/s counts exactly the
    work done after it started, over the steps' own time on the device's timeline."""
    synchronize(device)
    distributed.barrier(device)  # several ranks: each times its own ceiling while the others time theirs
    start = time.perf_counter()
    timer.resume()
    items = 0
    while True:
        items += one_step()
        if rule.out_of_time(time.perf_counter() - start) or (rule.due(len(timer)) and rule.precise(timer.step_s())):
            break
    synchronize(device)
    step_s = timer.times().step_s
    return Ceiling(items / step_s.sum(), stats.mean_ci_rel(step_s), len(step_s))


def compute_ceiling(trainer: Trainer, batch: Any, train_cfg: Any) -> Ceiling:
    """Items/s of the same model, batch and device with the batch already on the device: no loader
    and no copy, so nothing the loader settings change can make training faster than this. The batch
    is the last whole one training moved to the device, so no loader is touched (and none is running:
    train() stopped its workers). Runs on a copy of the model so the trained weights and optimizer
    state stay as training left them (the same train.optimizer, fresh)."""
    ceiling = copy.copy(trainer)
    ceiling.model = copy.deepcopy(trainer.model)
    ceiling.optimizer = trainer.make_optimizer(ceiling.model.parameters())
    items = trainer.count(batch)  # counted once, before the clock: a count of a device batch may sync
    for _ in range(DEFAULT_WARMUP_STEPS):
        ceiling.step(batch)
    timer = StepTimer(trainer.device)

    def one_step() -> int:
        timer.wait_started()  # nothing to wait for or copy: the batch is already on the device
        timer.batch_ready()
        timer.copied()
        ceiling.step(batch)
        timer.computed()
        return items

    return time_until_precise(one_step, timer, ceiling_rule(train_cfg), trainer.device)


def loader_ceiling(trainer: Trainer, train_input: Input, train_cfg: Any) -> Ceiling:
    """Items/s of the same loader iterated and copied to the device with no model: the most the input
    path can deliver, whatever its batches hold. The batches its workers prefetched are consumed before
    the clock starts (`Input.primed`: from then on every fetch waits for work done after the start);
    the clock starts before the first timed fetch; a short split is cycled, each new epoch's start-up
    timed as training pays it."""
    batches = train_input.primed()
    try:
        timer = StepTimer(trainer.device)

        def one_fetch() -> int:
            timer.wait_started()
            batch = next(batches)
            timer.batch_ready()
            trainer.to_device(batch)
            timer.copied()
            timer.computed()  # no model: the step ends with the copy
            return trainer.count(batch)  # on the host batch, in the next fetch's stall as in training

        return time_until_precise(one_fetch, timer, ceiling_rule(train_cfg), trainer.device)
    finally:
        batches.close()  # drops its iterator, and with it non-persistent workers
        train_input.shutdown()


# ------------------------------------------------------------------------------------------------ job


def declared_length(dataset: Any) -> int | None:
    """The dataset's own __len__, None where it has none (a stream)."""
    try:
        return len(dataset)
    except TypeError:
        return None


def device_peak_mb(device: torch.device) -> float:
    """Peak device memory allocated since the job reset it before training (MiB); NaN on the CPU."""
    if device.type != "cuda":
        return math.nan
    return torch.cuda.max_memory_allocated(device) / 2**20


def peak_host_memory_mb() -> float:
    """Peak resident memory of this process (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_job(cfg: Any) -> dict[str, Any]:
    """Run one configured job and return its metrics; raises on any failure (the caller records it)."""
    job_start = time.perf_counter()  # what the job spends outside its timed window is recorded too (setup_s ...)
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
    if cfg.train.threads is not None and cfg.train.threads > (os.cpu_count() or 1):
        log.warning(
            "train.threads=%d exceeds the %d CPUs here: the threads wait for each other at every op (often "
            "many times slower); set train.threads <= %d",
            cfg.train.threads,
            os.cpu_count(),
            os.cpu_count(),
        )
    if not cfg.loader.in_order and cfg.loader.num_workers == 0:
        log.warning("loader.in_order=false has no effect without workers: one process yields batches in order")

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
    stream = is_stream(train_set)
    samples = declared_length(train_set)
    if samples == 0:
        raise ConfigError(f"the train split of data={cfg.data.name} has no samples: check the data.* settings")
    if not stream and samples is not None and samples < cfg.loader.batch_size and not cfg.loader.drop_last:
        raise ConfigError(
            f"loader.batch_size={cfg.loader.batch_size} is larger than the train split's {samples} samples, so "
            f"every step would be one batch of {samples}: set loader.batch_size <= {samples}, or use more data"
        )
    if stream and cfg.loader.shuffle:
        log.info("loader.shuffle: the IterableDataset orders its own stream; DataLoader shuffles no stream")
    if stream and distributed.several_ranks():
        log.info(
            "train.ranks=%d with an IterableDataset: each rank reads what the dataset gives it; no sampler is "
            "wrapped around a stream, so split it between ranks in the dataset (torch.distributed.get_rank(); "
            "webdataset: wds.split_by_node), or every rank trains on the whole stream",
            cfg.train.ranks,
        )
    train_input = build_input(train_set, cfg.data, cfg.loader, device, True, cfg.train.seed)
    trainer = Trainer(build_model(cfg.model), cfg, device)
    trainer.model = distributed.wrap(trainer.model, device)  # DDP when the job has several ranks
    if prefetch_active and cfg.data.pipeline != "device":  # a resident split has nothing to copy
        train_input = with_device_prefetch(
            train_input, cfg.loader.device_prefetch, device, trainer.to_device, trainer.count
        )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    setup_s = time.perf_counter() - job_start  # datasets, loader, model: before the first step
    with time_limit(cfg.train.timeout_s), exclusive_device(device) as shared_device:
        metrics, last_batch = train(trainer, train_input, cfg, declared_length(train_set) if stream else None)
        training_peak_mb = device_peak_mb(device)  # before the ceilings' model copy and evaluation add theirs
        metrics["setup_s"] = setup_s
        trainer.model = distributed.bare(trainer.model)  # trained: ceilings and evaluation are one rank's own
        if cfg.train.ceiling_steps and last_batch is not None:
            start = time.perf_counter()
            metrics.update(compute_ceiling(trainer, last_batch, cfg.train).row("compute"))
            metrics.update(loader_ceiling(trainer, train_input, cfg.train).row("loader"))
            metrics["ceilings_s"] = time.perf_counter() - start
        if cfg.train.evaluate and test_set is not None:
            test_input = build_input(test_set, cfg.data, cfg.loader, device, False, cfg.train.seed)
            start = time.perf_counter()
            metrics.update(trainer.evaluate(test_input))  # test_accuracy, test_loss or your test_<name>
            synchronize(device)
            metrics["eval_s"] = time.perf_counter() - start

    metrics["device"] = str(device)
    metrics["stream"] = stream  # an IterableDataset: its epoch is what it yields, its order its own
    metrics["shuffle_active"] = bool(cfg.loader.shuffle and not stream)
    metrics["dataset_len"] = declared_length(train_set) if declared_length(train_set) is not None else math.nan
    metrics["shared_device"] = shared_device
    metrics.update(device_environment(device))
    metrics["pin_memory_active"] = bool(cfg.loader.pin_memory and device.type == "cuda")
    metrics["amp_host_sync"] = trainer.amp_host_sync  # a sync every step: no run-ahead to overlap copies with
    metrics["device_prefetch_active"] = isinstance(train_input, DevicePrefetcher)
    metrics["peak_host_mb"] = peak_host_memory_mb()
    if device.type == "cuda":
        metrics["peak_device_mb"] = training_peak_mb  # training's own: what the loader settings change
        metrics["peak_device_job_mb"] = device_peak_mb(device)  # with the ceilings and evaluation
    return metrics
