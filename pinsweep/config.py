"""Typed configuration schemas: every key a sweep can touch, type-checked by Hydra before a job starts.

The YAML files under `conf/` only choose values; the types live here. A wrong type on the command
line (`loader.num_workers=abc`) or an unknown key fails while Hydra composes the config, before any
job runs. `validate()` adds the checks a type cannot express (ranges, combinations, devices).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Dict, Optional

from omegaconf import MISSING, OmegaConf


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
    name: str = MISSING  # resnet34 | resnet18 | tiny | custom (then _target_ builds your nn.Module)
    num_classes: int = 10  # output classes; CIFAR-10 has 10 (custom: passed only where _target_ names num_classes)
    width: int = 16  # channels of the first layer of the `tiny` CNN (ignored by the ResNets)
    _target_: Optional[str] = None  # dotted path of a class or function returning your nn.Module (model=custom)
    kwargs: Dict[str, Any] = field(default_factory=dict)  # its arguments, built as hydra.utils.instantiate builds them


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
    _target_: Optional[str] = None  # dotted path of a class or function returning your dataset (data=custom)
    kwargs: Dict[str, Any] = field(default_factory=dict)  # custom: arguments of both splits (nested _target_s built)
    train_kwargs: Dict[str, Any] = field(default_factory=dict)  # custom: the train split's, each key over kwargs'
    test_kwargs: Dict[str, Any] = field(default_factory=dict)  # custom: the test split's (split_arg=null: {} = no test)
    split_arg: Optional[str] = "train"  # custom: the keyword that picks the split (True/False); null: the *_kwargs do
    image_size: int = 224  # imagefolder: side of the crops the model sees (random resized crop / center crop)
    decoder: Decoder = Decoder.pil  # imagefolder: pil | torchvision (CPU decode_jpeg) | nvjpeg (GPU decode_jpeg)
    # your collate_fn(samples) -> batch (both engines): a dotted path, or a node with a _target_ that builds it;
    # null = torch's. Any: OmegaConf types no str-or-node union, so validate() checks it
    collate_fn: Any = None


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
            raise ConfigError(unknown_key(f"{group}.{unknown[0]}"))
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
    _validate_own(cfg.model, data)
    _validate_ranges(cfg)


DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
LONGEST_TIMEOUT_S = 10**8  # ~3 years: the interval timer's own limit is near here, and no job runs longer


def _validate_ranges(cfg: Any) -> None:
    """Values a type admits and torch, NumPy or the OS would refuse later with words that name no key."""
    train, data, model = cfg.train, cfg.data, cfg.model
    if not (math.isfinite(train.lr) and train.lr > 0):
        raise ConfigError(f"train.lr={train.lr}: must be a positive finite learning rate, e.g. train.lr=0.001")
    if not 0 <= train.seed < 2**32:  # NumPy's seed range, which train.seed also seeds
        raise ConfigError(f"train.seed={train.seed}: must be in 0 .. 2**32 - 1, e.g. train.seed=1")
    if not DEVICE.match(str(train.device)):
        raise ConfigError(f"train.device={train.device}: use auto, cpu, cuda or cuda:N")
    if train.timeout_s is not None and not 0 < train.timeout_s < LONGEST_TIMEOUT_S:
        raise ConfigError(
            f"train.timeout_s={train.timeout_s}: seconds in (0, {LONGEST_TIMEOUT_S:.0e}), or null for no limit"
        )
    if not (math.isfinite(data.sample_delay_ms) and data.sample_delay_ms >= 0):
        raise ConfigError(f"data.sample_delay_ms={data.sample_delay_ms}: must be >= 0 milliseconds")
    for size_key in ("train_size", "test_size"):
        size = data[size_key]
        if size is not None and size < 1:
            raise ConfigError(f"data.{size_key}={size}: must be >= 1 or null")
    if model.num_classes < 1:
        raise ConfigError(f"model.num_classes={model.num_classes}: must be >= 1, e.g. model.num_classes=10")
    if model.width < 1:
        raise ConfigError(f"model.width={model.width}: channels of the tiny CNN's first layer, must be >= 1")


def unknown_key(key: str) -> str:
    """The line for a key the schema does not have, with the nearest one that it does (by the setting's own
    name: every key of a group shares its prefix)."""
    group, _, name = key.partition(".")
    schema = GROUP_SCHEMAS[group]
    nearest = difflib.get_close_matches(name, [f.name for f in fields(schema)], n=1, cutoff=0.6)
    hint = f"did you mean {group}.{nearest[0]}?" if nearest else f"the {group} keys are in pinsweep/config.py"
    return f"{key}: not a {group} setting; {hint}"


def misspelt_override(argument: str) -> str | None:
    """One line for a command-line override of a key the schema lacks (`loader.batchsize=64`), said before
    Hydra would answer "To append to your config use +loader.batchsize=64", advice that fails once
    followed. Group choices (`model=tiny`), Hydra's own keys, appends (`+`), deletions (`~`) and keys below
    a setting (`data.kwargs.size`) are Hydra's to judge."""
    key = argument.split("=", 1)[0]
    if "=" not in argument or argument.startswith(("-", "+", "~")) or "/" in key:
        return None
    parts = key.split(".")
    if len(parts) < 2 or parts[0] not in GROUP_SCHEMAS:
        return None
    if parts[1] in {f.name for f in fields(GROUP_SCHEMAS[parts[0]])}:
        return None
    return unknown_key(f"{parts[0]}.{parts[1]}")


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


SHIPPED_DATA = ("cifar10", "synthetic", "imagefolder")
SHIPPED_MODELS = ("resnet34", "resnet18", "tiny")


def _validate_own(model: Any, data: Any) -> None:
    """data=custom and model=custom: what each split and the model are built from. Whether the callables
    import, take these arguments and build is known only when they are built (instantiate_node below)."""
    for prefix, group, shipped, keys in (
        ("model", model, SHIPPED_MODELS, ("_target_", "kwargs")),
        ("data", data, SHIPPED_DATA, ("_target_", "kwargs", "train_kwargs", "test_kwargs")),
    ):
        for key in keys:
            if group.name in shipped and group[key]:  # pinsweep builds its own options: these would go unread
                raise ConfigError(
                    f"{prefix}.{key} builds your own {prefix} and {prefix}={group.name} is pinsweep's: "
                    f"add {prefix}=custom (with {prefix}._target_), or remove {prefix}.{key}"
                )
    for key, arguments in (
        ("model.kwargs", model.kwargs),
        ("data.kwargs", data.kwargs),
        ("data.train_kwargs", data.train_kwargs),
        ("data.test_kwargs", data.test_kwargs),
    ):
        for reserved in ("_target_", "_partial_"):  # nested nodes may hold both; the top is pinsweep's to call
            if reserved in arguments:
                owner = key.split(".")[0]
                raise ConfigError(
                    f"{key}.{reserved}: {owner}._target_ names what is built, and pinsweep calls it "
                    f"(a partial is no {owner}); remove {key}.{reserved}"
                )
        if data.split_arg is not None and key.startswith("data") and data.split_arg in arguments:
            raise ConfigError(
                f"{key}.{data.split_arg}: data.split_arg={data.split_arg} already passes {data.split_arg}=True to "
                f"the train split and False to the test split; remove it, or set data.split_arg=null and give "
                "each split its own arguments in data.train_kwargs and data.test_kwargs"
            )
    collate = data.collate_fn
    is_path = isinstance(collate, str)  # "" is unset, as null
    is_node = OmegaConf.is_dict(collate) and isinstance(collate.get("_target_"), str) and collate._target_.strip()
    if collate is not None and not (is_path or is_node):
        shown = OmegaConf.to_container(collate) if OmegaConf.is_config(collate) else collate
        raise ConfigError(
            f"data.collate_fn={shown!r}: give the dotted path of a function (data.collate_fn=mypkg.collate), "
            "or a node whose _target_ builds one (data.collate_fn._target_=transformers.DataCollatorWithPadding)"
        )


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


# ------------------------------------------------------------------------ your callables, built from nodes
# data=custom, model=custom and a data.collate_fn node are built by hydra.utils.instantiate itself, so a
# node means what it means in any Hydra app: `_target_` any callable (a class, a factory function,
# timm.create_model), nested `_target_`s built first, `_partial_`, `_args_`, `_recursive_`, `_convert_`.
# `_convert_="all"` is the default (a node may set its own): your code receives plain dicts and lists,
# never DictConfig, which is no `dict` to isinstance or to libraries' type checks, and pickles its parent
# config into every worker. "partial" differs only in leaving structured-config nodes as DictConfig, and
# these nodes, plain dicts from YAML and the command line, never hold one: "all" says the intent outright.


def plain(node: Any) -> dict[str, Any]:
    """A config node as a plain dict, its interpolations resolved against the whole config."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)


def instantiate_node(
    node: dict[str, Any], key: str, building: str, nested_key: Callable[[str], str] | None = None
) -> Any:
    """What `node` builds, as hydra.utils.instantiate(node) builds it. A failure is one ConfigError line:
    the config key of the node that failed (`key`, or `nested_key(path)` for a nested node, `path` as
    Hydra names it, e.g. `transform.transforms[0]`; by default under `key`) and the real cause."""
    from hydra.utils import instantiate  # the schema alone imports no Hydra machinery

    try:
        return instantiate({"_convert_": "all", **node})
    except Exception as error:
        nested = re.search(r"^full_key: (\S+)$", str(error), re.MULTILINE)
        if nested:
            path, target = _nested_node(node, nested.group(1))
            failed_key = (nested_key or (lambda path: f"{key}.{path}"))(path)
        else:
            failed_key, target = key, node.get("_target_")
        raise ConfigError(_failure(f"{failed_key}._target_={target}", building, error)) from error


def _nested_node(node: dict[str, Any], full_key: str) -> tuple[str, Any]:
    """The path and `_target_` of the nested node Hydra's error names. Hydra writes a list's item with no
    brackets (`_args_0`, `transforms.transforms1`): the bracketed path is tried too."""
    config = OmegaConf.create(node)
    for path in (full_key, re.sub(r"(?<=\D)(\d+)(?=\.|$)", r"[\1]", full_key)):
        target = OmegaConf.select(config, f"{path}._target_", default=None)
        if target is not None:
            return path, target
    return full_key, None


def call_built(factory: Callable[..., Any], node: dict[str, Any], key: str, building: str, **more: Any) -> Any:
    """factory(**more), where `factory` is instantiate_node's partial of `node` (so pinsweep can read the
    callable's signature before calling it); what it raises is one line, as instantiate_node's."""
    try:
        return factory(**more)
    except Exception as error:
        raise ConfigError(_failure(f"{key}._target_={node.get('_target_')}", building, error)) from error


def _failure(what: str, building: str, error: BaseException) -> str:
    """`what` failed to import or raised: the line says which, with the real cause under Hydra's wrapping
    (the import's own error, e.g. `No module named 'nope'`, or what the callable itself raised)."""
    from hydra.errors import InstantiationException

    cause = error
    while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, ImportError) and str(cause).startswith("Error loading") and cause.__cause__ is not None:
        return f"{what}: does not import ({_one_line(cause.__cause__)}): give an importable dotted path"
    return f"{what}: building {building} raised {_one_line(cause)}"


def _one_line(error: BaseException) -> str:
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    text = text.replace(", set env var HYDRA_FULL_ERROR=1 to see chained exception.", "")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
