"""Datasets and the DataLoader under study.

Four sources (CIFAR-10 through torchvision, synthetic data of the same shape, folders of JPEG files in
ImageFolder layout, your own Dataset) and three input pipelines that show what the input path costs:

- `pil`: per-sample PIL image + ToTensor in the loader, as the notebook (and torchvision) do it.
- `tensor`: the split decoded once into a uint8 tensor; the loader gathers whole batches by index
  and the float conversion happens on the device.
- `device`: the whole split resident on the device; no DataLoader, no copy: the input-path ceiling.

JPEG folders (`data=imagefolder`) decode each file with `data.decoder`: PIL, torchvision.io.decode_jpeg
on the CPU, or nvJPEG on the GPU, where the loader carries the encoded bytes and the training process
decodes a whole batch at once (`EncodedBatch`, which moves itself: its `.to(device)` is that decode).
The loaders that serve these datasets, and the device-resident split, are built in pinsweep.input.loader.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets, transforms
from torchvision.datasets.utils import check_integrity
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms import v2

from pinsweep.config import ConfigError, call_built, instantiate_node, plain
from pinsweep.input import prefetch

log = logging.getLogger(__name__)

CIFAR_FOLDER = "cifar-10-batches-py"


class DatasetUnavailable(RuntimeError):
    """The dataset is not where the config says and cannot be fetched; the message says what to do."""


class SyntheticCIFAR10(Dataset):
    """CIFAR-10-shaped data made offline: uint8 NHWC images, int labels, the same PIL + ToTensor path.

    Each class has its own colour pattern under the noise, so a model can learn it and test accuracy
    still tells a working run from a broken one. `sample_delay_ms` sleeps per sample to mimic a slow
    disk or decoder: the situation in which worker processes pay off.
    """

    def __init__(self, size: int, seed: int, train: bool, sample_delay_ms: float = 0.0, num_classes: int = 10):
        # one colour per class, shared by both splits; labels and noise differ per split
        class_patterns = np.random.default_rng(seed).integers(0, 256, size=(num_classes, 1, 1, 3))
        rng = np.random.default_rng([seed, int(train)])
        self.targets = rng.integers(0, num_classes, size=size).tolist()
        noise = rng.integers(-64, 64, size=(size, 32, 32, 3))
        self.data = np.clip(class_patterns[self.targets] + noise, 0, 255).astype(np.uint8)
        self.transform = transforms.ToTensor()
        self.sample_delay_s = sample_delay_ms / 1000.0

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.sample_delay_s:
            time.sleep(self.sample_delay_s)
        # the same steps as torchvision's CIFAR10.__getitem__, so the loader costs what CIFAR-10 costs
        image = Image.fromarray(self.data[index])
        return self.transform(image), self.targets[index]


def _cifar10(root: str, train: bool, download: bool) -> datasets.CIFAR10:
    folder = os.path.join(os.path.abspath(root), CIFAR_FOLDER)
    try:
        return datasets.CIFAR10(root=root, train=train, transform=transforms.ToTensor(), download=download)
    except RuntimeError as error:
        # torchvision verifies every file's MD5 before unpickling it, and raises when one is
        # missing or does not match; say which, and what to do about it.
        if not os.path.isdir(folder):
            raise DatasetUnavailable(
                f"CIFAR-10 not found: looked in {folder}. Set data.root to the folder that holds "
                f"{CIFAR_FOLDER}/, allow data.download=true with internet, or run offline with data=synthetic"
            ) from error
        split = datasets.CIFAR10.train_list if train else datasets.CIFAR10.test_list
        meta = datasets.CIFAR10.meta
        for name, md5 in [*split, (meta["filename"], meta["md5"])]:
            if not check_integrity(os.path.join(folder, name), md5):
                raise DatasetUnavailable(
                    f"CIFAR-10 file {os.path.join(folder, name)} is missing or fails its MD5 checksum "
                    f"(not loaded): delete {folder} and download it again, or run offline with data=synthetic"
                ) from error
        raise
    except OSError as error:  # a download attempt with no network
        raise DatasetUnavailable(
            f"CIFAR-10 not found in {folder} and the download failed ({error}). Copy {CIFAR_FOLDER}/ "
            "there, point data.root at it, or run offline with data=synthetic"
        ) from error


def _first(dataset: Any, size: int | None) -> Any:
    """Keep the first `size` samples (quick CIFAR-10 runs); the arrays stay aligned for `tensor`."""
    if size is None or size >= len(dataset):
        return dataset
    dataset.data = dataset.data[:size]
    dataset.targets = list(dataset.targets)[:size]
    return dataset


# ---------------------------------------------------------------------------------------- JPEG folders


def imagenet_transforms(image_size: int, train: bool) -> list[Any]:
    """torchvision's ImageNet recipe: random resized crop + flip to train, resize (by 256/224) + center crop
    to test. They work on PIL images and on uint8 tensors, on the CPU or the GPU, so every decoder gets
    the same augmentation."""
    if train:
        return [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
    return [v2.Resize(round(image_size * 256 / 224), antialias=True), v2.CenterCrop(image_size)]


def decode_rgb(data: torch.Tensor) -> torch.Tensor:
    """JPEG bytes -> uint8 CHW RGB with torchvision.io on the CPU (module level: picklable for workers)."""
    return decode_jpeg(data, mode=ImageReadMode.RGB)


@dataclass
class EncodedBatch:
    """A batch of undecoded JPEG files (data.decoder=nvjpeg): the loader carries bytes, and the training
    process decodes them all at once on the GPU, where they are needed. The files travel as one tensor
    (worker processes share each tensor through a file descriptor: one per file runs out of them)."""

    data: torch.Tensor  # the files' bytes, one after another
    lengths: list[int]
    image_size: int
    train: bool

    def pin_memory(self) -> EncodedBatch:  # DataLoader's pin_memory=true calls this on custom batches
        return EncodedBatch(self.data.pin_memory(), self.lengths, self.image_size, self.train)

    def __len__(self) -> int:  # the images it holds (train.count's default)
        return len(self.lengths)

    def files(self) -> list[torch.Tensor]:
        return list(torch.split(self.data, self.lengths))

    def to(self, device: torch.device, non_blocking: bool = False) -> torch.Tensor:
        """What moving this batch to the device means: decoding it there (pinsweep.input.batch.Mover)."""
        return self.decode(device)

    def decode(self, device: torch.device) -> torch.Tensor:
        """Batched nvJPEG decode, then the same crops and flips as the other decoders, on the device."""
        images = decode_jpeg(self.files(), mode=ImageReadMode.RGB, device=device)
        transform = v2.Compose(imagenet_transforms(self.image_size, self.train))
        batch = torch.stack([transform(image) for image in images])
        if device.type == "cuda":  # decoded off the current stream: kept until its crops have read them
            prefetch.DECODED.hold(images)
        return batch


def collate_encoded(samples: list[tuple[torch.Tensor, int]], image_size: int, train: bool):
    """collate_fn for data.decoder=nvjpeg: file bytes differ in length, so they stay a list."""
    files, labels = zip(*samples)
    return EncodedBatch(torch.cat(files), [len(f) for f in files], image_size, train), torch.as_tensor(labels)


def _imagefolder(data_cfg: Any, train: bool) -> datasets.ImageFolder | None:
    """One split of a JPEG folder tree, decoded as data.decoder says; uint8 images (the float conversion
    happens on the device, as for data.pipeline=tensor). None for a missing val/ folder."""
    split = "train" if train else "val"
    folder = os.path.join(os.path.abspath(data_cfg.root), split)
    if not os.path.isdir(folder):
        if not train:
            log.warning("no %s: no test split, so no test accuracy", folder)
            return None
        raise DatasetUnavailable(
            f"data=imagefolder needs {folder}/<class>/<image>.jpg: point data.root at a folder with train/ "
            f"(and val/), or write one with `python -m pinsweep.make_jpegs {data_cfg.root}`"
        )
    augment = imagenet_transforms(data_cfg.image_size, train)
    if data_cfg.decoder == "pil":  # ImageFolder's own loader: PIL.Image.open(...).convert("RGB")
        return datasets.ImageFolder(folder, transform=v2.Compose([*augment, v2.PILToTensor()]))
    if data_cfg.decoder == "torchvision":
        return datasets.ImageFolder(folder, loader=read_file, transform=v2.Compose([decode_rgb, *augment]))
    return datasets.ImageFolder(folder, loader=read_file)  # nvjpeg: bytes, see EncodedBatch


def build_datasets(data_cfg: Any) -> tuple[Dataset, Dataset | None]:
    """Train and test splits named by the config. Synthetic data is used only when asked for."""
    name = data_cfg.name
    if name == "imagefolder":
        train, test = _imagefolder(data_cfg, True), _imagefolder(data_cfg, False)
    elif name == "cifar10":
        train = _first(_cifar10(data_cfg.root, True, data_cfg.download), data_cfg.train_size)
        test = _first(_cifar10(data_cfg.root, False, False), data_cfg.test_size)
    elif name == "synthetic":
        train = SyntheticCIFAR10(data_cfg.train_size or 50000, data_cfg.seed, True, data_cfg.sample_delay_ms)
        test = SyntheticCIFAR10(data_cfg.test_size or 10000, data_cfg.seed, False)
    elif data_cfg._target_:
        train, test = _custom(data_cfg, "train"), _custom(data_cfg, "test")
    else:
        raise ConfigError(f"data.name={name}: choose data=cifar10, data=synthetic, or data=custom with data._target_")
    log.info("data: %s, train %s, test %s", name, _size(train), _size(test))
    return train, test


def _size(dataset: Any) -> str:
    """A split's size for the log, in samples whatever they are; a stream (no __len__) has none to ask."""
    if dataset is None:
        return "none"
    if not hasattr(dataset, "__len__"):
        return "streaming"
    return f"{len(dataset)} samples"


def _custom(data_cfg: Any, split: str) -> Any:
    """One split of data=custom: data._target_ (a class or any callable returning a dataset) called with
    data.kwargs, each key of data.<split>_kwargs replacing kwargs' whole (a split's transform is its own,
    not a blend of two), built as hydra.utils.instantiate builds them. data.split_arg (default `train`)
    adds <split_arg>=True / False; with split_arg=null the test split exists only where data.test_kwargs
    sets something. None: no test split (no test pass)."""
    own = data_cfg[f"{split}_kwargs"]
    if data_cfg.split_arg is None and split == "test" and not own:
        return None
    node = {"_target_": data_cfg._target_, **plain(data_cfg.kwargs), **plain(own)}

    def config_key(path: str) -> str:  # a nested node that fails, named where it was configured
        source = f"{split}_kwargs" if re.split(r"[.\[]", path)[0] in own else "kwargs"
        return f"data.{source}.{path}"

    factory = instantiate_node({**node, "_partial_": True}, "data", f"the {split} split", config_key)
    split_flag = {} if data_cfg.split_arg is None else {data_cfg.split_arg: split == "train"}
    if split_flag and not _takes(factory.func, data_cfg.split_arg):
        raise ConfigError(
            f"data.split_arg={data_cfg.split_arg}: {data_cfg._target_} takes no {data_cfg.split_arg} argument; "
            "set data.split_arg=null and give each split its own in data.train_kwargs and data.test_kwargs "
            "(e.g. +data.train_kwargs.root=... +data.test_kwargs.root=...; no test_kwargs, no test split)"
        )
    dataset = call_built(factory, node, "data", f"the {split} split", **split_flag)
    if not callable(getattr(dataset, "__getitem__", None)) and not callable(getattr(dataset, "__iter__", None)):
        raise ConfigError(
            f"data._target_={data_cfg._target_} returned a {type(dataset).__name__}, not a dataset (an object "
            "with __getitem__ and __len__, or an iterable one): name a class or function that returns one"
        )
    return dataset


def _takes(function: Any, name: str) -> bool:
    """Whether `function` accepts the keyword `name` (by name or through **kwargs); yes when unreadable."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return True
    return any((p.name == name and p.kind != p.POSITIONAL_ONLY) or p.kind == p.VAR_KEYWORD for p in parameters)


class BatchGatherDataset(Dataset):
    """A split decoded once into a uint8 NCHW tensor; the loader asks for whole batches at a time.

    DataLoader calls `__getitems__` with a batch of indices, so one tensor gather replaces
    batch_size PIL conversions; the float conversion is left to the device.
    """

    def __init__(self, source: Any):
        data = np.asarray(getattr(source, "data", None)) if hasattr(source, "targets") else None
        if data is None or data.dtype != np.uint8 or data.ndim != 4:
            raise ConfigError(
                f"data.pipeline=tensor|device needs a dataset with uint8 images in .data (N, H, W, C) and "
                f".targets, as CIFAR10 has; {type(source).__name__} has none: set data.pipeline=pil"
            )
        self.images = torch.from_numpy(np.asarray(source.data)).permute(0, 3, 1, 2).contiguous()
        self.labels = torch.as_tensor(source.targets, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index]


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 batches (tensor and device pipelines) become ToTensor's [0, 1] floats, on the device."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images
