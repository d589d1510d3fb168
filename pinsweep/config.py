"""Typed configuration schemas: every key a sweep can touch, type-checked by Hydra before a job starts.

The YAML files under `conf/` only choose values; the types live here. A wrong type on the command
line (`loader.num_workers=abc`) or an unknown key fails while Hydra composes the config, before any
job runs. `validate()` adds the checks a type cannot express (ranges, combinations, devices).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Dict, Optional

from omegaconf import MISSING


class Choice(str, Enum):
    """A key with a fixed set of values: Hydra refuses any other while it composes the config, and the
    value compares, hashes, prints and lands in a row as the word typed (`pil`, not `Pipeline.pil`)."""

    __str__ = str.__str__
    __format__ = str.__format__


class Pipeline(Choice):
    pil = "pil"  # per-sample PIL image + ToTensor in the loader, as torchvision's CIFAR-10 does
    tensor = "tensor"  # pre-decoded uint8 tensors: what decoding costs, by difference
    device = "device"  # the whole split resident on the device: no loader at all


class Mode(Choice):
    epochs = "epochs"  # full epochs
    adaptive = "adaptive"  # time steps until the CI target is met


class Decoder(Choice):
    pil = "pil"  # PIL.Image.open in the loader
    torchvision = "torchvision"  # torchvision.io.decode_jpeg on the CPU, in the loader
    nvjpeg = "nvjpeg"  # batched decode_jpeg(device="cuda") in the training process; the loader carries bytes


class Engine(Choice):
    dataloader = "dataloader"  # torch.utils.data.DataLoader
    nodes = "nodes"  # torchdata.nodes: sampler -> batcher -> ParallelMapper -> PinMemory -> Prefetcher


class WorkerType(Choice):
    process = "process"
    thread = "thread"  # torchdata.nodes only: DataLoader's workers are processes


# `raise` is a Python keyword, so this one is spelt as a list; what each does: pinsweep.job.train.inject_fault
Fault = Choice("Fault", [(name, name) for name in ("raise", "oom", "kill_worker", "hang", "kill")], module=__name__)


@dataclass
class ModelConfig:
    name: str = MISSING  # resnet34 | resnet18 | tiny | custom (then _target_ names your nn.Module)
    num_classes: int = 10  # output classes; CIFAR-10 has 10 (a custom class gets it only if it takes num_classes)
    width: int = 16  # channels of the first layer of the `tiny` CNN (ignored by the ResNets)
    _target_: Optional[str] = None  # dotted path of your own nn.Module class (model=custom)
    kwargs: Dict[str, Any] = field(default_factory=dict)  # keyword arguments for _target_ (all it is built with)


@dataclass
class DataConfig:
    name: str = MISSING  # cifar10 | synthetic | imagefolder (JPEG folders) | custom (_target_: your Dataset)
    root: str = "data"  # where torchvision looks for (and downloads) cifar-10-batches-py/
    download: bool = True  # download CIFAR-10 when missing (needs internet)
    pipeline: Pipeline = Pipeline.pil  # pil: per-sample PIL + ToTensor | tensor: pre-decoded uint8 | device: resident
    train_size: Optional[int] = None  # synthetic: images in the train split; cifar10: first N only
    test_size: Optional[int] = None  # synthetic: images in the test split; cifar10: first N only
    sample_delay_ms: float = 0.0  # synthetic: sleep per sample, to mimic a slow disk or decoder
    seed: int = 0  # synthetic: seed of the generated images
    _target_: Optional[str] = None  # dotted path of your own Dataset class (data=custom)
    kwargs: Dict[str, Any] = field(default_factory=dict)  # keyword arguments for _target_
    split_arg: Optional[str] = "train"  # custom: the keyword that picks the split (True/False)
    image_size: int = 224  # imagefolder: side of the crops the model sees (random resized crop / center crop)
    decoder: Decoder = Decoder.pil  # imagefolder: pil | torchvision (CPU decode_jpeg) | nvjpeg (GPU decode_jpeg)
    collate_fn: Optional[str] = None  # dotted path of your collate_fn(samples) -> batch (both engines); null = torch's


@dataclass
class LoaderConfig:
    batch_size: int = 256  # samples per step
    num_workers: int = 0  # worker processes; 0 loads in the training process
    pin_memory: bool = False  # page-locked host batches (only matters with an accelerator)
    non_blocking: bool = False  # .to(device, non_blocking=...): lets the copy overlap compute
    persistent_workers: bool = False  # keep workers alive between epochs (needs num_workers > 0)
    prefetch_factor: Optional[int] = None  # batches prefetched per worker; null = torch's default
    shuffle: bool = True  # reshuffle the train split every epoch
    drop_last: bool = False  # drop the last incomplete batch
    in_order: bool = True  # false: workers' batches in the order they finish, not the sampler's
    device_prefetch: int = 0  # copy batches to the device on a side CUDA stream this many steps ahead
    engine: Engine = Engine.dataloader  # dataloader: torch.utils.data.DataLoader | nodes: torchdata.nodes
    worker_type: WorkerType = WorkerType.process  # process | thread (thread needs loader.engine=nodes)
    worker_threads: Optional[int] = None  # torch threads in each worker (its worker_init_fn); null = torch's 1


@dataclass
class TrainConfig:
    epochs: int = 10  # passes over the train split (mode=epochs)
    lr: float = 1e-3  # learning rate, passed to train.optimizer unless it sets lr itself
    seed: int = 1  # seeds torch, numpy and Python's random
    device: str = "auto"  # auto (cuda if available, else cpu) | cpu | cuda | cuda:N
    deterministic: bool = True  # cudnn.deterministic, as the notebook set it
    evaluate: bool = True  # evaluate on the test split after training (timed separately)
    train_accuracy_pass: bool = False  # notebook protocol: a train-accuracy pass inside each timed epoch
    mode: Mode = Mode.epochs  # epochs: full epochs | adaptive: time steps until the CI target is met
    warmup_steps: Optional[int] = None  # excluded from steady state; null = first epoch if epochs > 1, else 3
    max_steps_per_epoch: Optional[int] = None  # cut each epoch short (quick runs); null = whole split
    target_ci: float = 0.02  # adaptive: stop when the 95% CI half-width of mean step time is below this
    budget_s: float = 60.0  # adaptive: stop after this many seconds of timed steps regardless
    min_steps: int = 100  # adaptive: never stop before this many timed steps (fewer: the CI undercovers)
    ceiling_steps: int = 20  # minimum steps of each of the compute-only and loader-only ceilings; 0 = skip
    ceiling_target_ci: float = 0.02  # each ceiling runs until the 95% CI half-width of its mean step is below this
    ceiling_budget_s: float = 2.0  # ... or until it has run this many seconds (noisy CPUs; a GPU needs far less)
    amp: bool = False  # autocast (float16 on CUDA with a grad scaler, bfloat16 on CPU)
    channels_last: bool = False  # NHWC memory format for model and batches
    repeat: int = 0  # replicate index: sweep it (train.repeat=0,1,2) for repeats; not a config axis
    timeout_s: Optional[float] = None  # fail the job as `timeout` after this many seconds
    inject_fault: Optional[Fault] = None  # tests of fault handling: raise | oom | kill_worker | hang | kill
    fault_rank: Optional[int] = None  # with train.ranks > 1: only this rank injects the fault; null = every rank
    ranks: int = 1  # training processes (torch.distributed ranks, DDP); loader settings are per rank
    threads: Optional[int] = None  # torch intra-op threads per rank (torch.set_num_threads); null = torch's default
    cpus: Optional[str] = None  # cores the job may use (os.sched_setaffinity), e.g. 0-7 or 0,2,4; null = all it has
    step: str = "pinsweep.job.step.classification"  # dotted path of step(model, batch) -> scalar loss tensor
    optimizer: Dict[str, Any] = field(  # a Hydra partial, called with the model's parameters (and lr=train.lr)
        default_factory=lambda: {"_target_": "torch.optim.Adam", "_partial_": True}
    )
    count: Optional[str] = None  # dotted path of count(batch) -> int, its items; null = first dim of its first tensor
    unit: Optional[str] = None  # what count counts (tokens, ...); null = images for image data, else samples
    eval_step: Optional[str] = None  # dotted path of eval_step(model, batch) -> float | dict; null = accuracy or loss


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    resume: bool = True  # skip a job whose folder already holds an `ok` row for the same overrides
    isolate: bool = True  # run each job in a fresh process: nothing carries over between jobs


class ConfigError(ValueError):
    """A config that type-checks but cannot run; the message names the key and the fix."""


GROUP_SCHEMAS = {"model": ModelConfig, "data": DataConfig, "loader": LoaderConfig, "train": TrainConfig}


def validate(cfg: Any) -> None:
    """Reject configs whose values are typed right but cannot run, naming the key and the fix."""
    loader, train, data = cfg.loader, cfg.train, cfg.data
    for group, schema in GROUP_SCHEMAS.items():
        unknown = sorted(set(cfg[group]) - {f.name for f in fields(schema)})
        if unknown:  # `+loader.typo=1` gets past Hydra's type check; a misspelt axis must not
            raise ConfigError(f"{group}.{unknown[0]}: not a {group} setting; the keys are in pinsweep/config.py")
    if loader.batch_size < 1:
        raise ConfigError(f"loader.batch_size={loader.batch_size}: must be >= 1, e.g. loader.batch_size=256")
    if loader.num_workers < 0:
        raise ConfigError(f"loader.num_workers={loader.num_workers}: must be >= 0 (0 loads in the main process)")
    if loader.num_workers == 0 and loader.persistent_workers:
        raise ConfigError(
            "loader.persistent_workers=true needs worker processes: set loader.num_workers >= 1 "
            "or loader.persistent_workers=false"
        )
    if loader.num_workers == 0 and loader.prefetch_factor is not None:
        raise ConfigError(
            f"loader.prefetch_factor={loader.prefetch_factor} needs worker processes: set loader.num_workers >= 1 "
            "or loader.prefetch_factor=null"
        )
    if loader.prefetch_factor is not None and loader.prefetch_factor < 1:
        raise ConfigError(f"loader.prefetch_factor={loader.prefetch_factor}: must be >= 1 or null")
    if train.epochs < 1:
        raise ConfigError(f"train.epochs={train.epochs}: must be >= 1")
    _validate_budget(train, loader, data)
    if train.inject_fault == "kill_worker" and loader.num_workers == 0:
        raise ConfigError("train.inject_fault=kill_worker needs a worker to kill: set loader.num_workers >= 1")
    _validate_train(train)
    _validate_input(data, loader)
    for size_key in ("train_size", "test_size"):
        size = data[size_key]
        if size is not None and size < 1:
            raise ConfigError(f"data.{size_key}={size}: must be >= 1 or null")


def _validate_input(data: Any, loader: Any) -> None:
    """JPEG decoders and loader engines; whether CUDA is there for nvjpeg is checked once the device is known."""
    if data.decoder != Decoder.pil and data.name != "imagefolder":
        raise ConfigError(f"data.decoder={data.decoder} decodes JPEG files: use it with data=imagefolder")
    if data.image_size < 1:
        raise ConfigError(f"data.image_size={data.image_size}: must be >= 1, e.g. data.image_size=224")
    if loader.worker_type == WorkerType.thread and loader.engine != Engine.nodes:
        raise ConfigError(
            "loader.worker_type=thread: DataLoader's workers are processes; use loader.engine=nodes for threads"
        )
    if loader.persistent_workers and loader.engine == Engine.nodes:  # its ParallelMapper restarts them each epoch
        raise ConfigError(
            "loader.persistent_workers=true: torchdata.nodes has no persistent workers; "
            "set loader.persistent_workers=false with loader.engine=nodes"
        )
    if loader.device_prefetch < 0:
        raise ConfigError(f"loader.device_prefetch={loader.device_prefetch}: must be >= 0 (0: copy in the step)")
    if data.collate_fn and data.pipeline != Pipeline.pil:  # those pipelines gather whole batches themselves
        raise ConfigError(
            f"data.collate_fn collates samples, and data.pipeline={data.pipeline} gathers whole uint8 batches: "
            "use data.pipeline=pil with a collate_fn, or set data.collate_fn=null"
        )
    if data.collate_fn and data.decoder == Decoder.nvjpeg:
        raise ConfigError("data.decoder=nvjpeg collates the encoded files itself: set data.collate_fn=null")


def _validate_budget(train: Any, loader: Any, data: Any) -> None:
    """Ranks and the CPU budget; whether train.cpus names cores this machine has is checked in the job
    (pinsweep.job.ranks), where the cores are known."""
    if train.ranks < 1:
        raise ConfigError(f"train.ranks={train.ranks}: must be >= 1 (1 trains in one process)")
    for key, value in (("train.threads", train.threads), ("loader.worker_threads", loader.worker_threads)):
        if value is not None and value < 1:
            raise ConfigError(f"{key}={value}: must be >= 1 thread, or null for torch's default")
    if train.fault_rank is not None and not 0 <= train.fault_rank < train.ranks:
        raise ConfigError(f"train.fault_rank={train.fault_rank}: must name a rank, 0 .. {train.ranks - 1}, or null")
    if train.ranks > 1 and data.pipeline == Pipeline.device:
        raise ConfigError(
            "data.pipeline=device with train.ranks > 1: the resident split is not sharded between ranks; "
            "use data.pipeline=tensor (or pil), whose loader each rank samples its share from"
        )
    if loader.worker_threads is not None and loader.engine == Engine.nodes:
        raise ConfigError(
            "loader.worker_threads sets torch threads in DataLoader workers (worker_init_fn): "
            "use it with loader.engine=dataloader, or set loader.worker_threads=null"
        )


def _validate_train(train: Any) -> None:
    """The measurement protocol's ranges; a warm-up longer than the run is caught once the run's
    length is known (pinsweep.job.train.warmup_steps)."""
    if train.warmup_steps is not None and train.warmup_steps < 0:
        raise ConfigError(f"train.warmup_steps={train.warmup_steps}: must be >= 0, or null for the default")
    if train.max_steps_per_epoch is not None and train.max_steps_per_epoch < 1:
        raise ConfigError(f"train.max_steps_per_epoch={train.max_steps_per_epoch}: must be >= 1, or null")
    for key in ("target_ci", "ceiling_target_ci"):
        if not 0 < train[key] < 1:
            raise ConfigError(f"train.{key}={train[key]}: a relative half-width in (0, 1), e.g. 0.02")
    for key in ("budget_s", "ceiling_budget_s"):
        if not train[key] > 0:
            raise ConfigError(f"train.{key}={train[key]}: must be > 0 seconds")
    if train.min_steps < 1:
        raise ConfigError(f"train.min_steps={train.min_steps}: must be >= 1, e.g. 100")
    if train.ceiling_steps < 0:
        raise ConfigError(f"train.ceiling_steps={train.ceiling_steps}: must be >= 0 (0 skips the ceilings)")
    if not train.optimizer.get("_target_"):
        raise ConfigError(
            "train.optimizer needs a _target_: the dotted path of a torch.optim class, e.g. "
            "train.optimizer._target_=torch.optim.SGD"
        )
