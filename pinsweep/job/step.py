"""What a training step is: your function of the model and a batch, and what pinsweep does around it.

    train.step=mypkg.train.step            # step(model, batch) -> loss, a scalar tensor
    train.count=mypkg.train.count          # count(batch) -> int: the items the batch holds
    train.unit=tokens                      # their name: throughput is tokens/s
    train.eval_step=mypkg.train.evaluate   # eval_step(model, batch) -> float | dict[str, float]

pinsweep keeps everything around the step (pinsweep.job.train.Trainer): the batch's copy to the
device, autocast under train.amp, zero_grad, backward through the AMP grad scaler, the optimizer's
step, the timer's marks. The defaults are the image classification pinsweep always ran: cross entropy
of the model's logits for `(images, labels)` batches, items counted as the batch's first dimension,
test accuracy. Every function is found by its dotted path; what each default means for your batch
is in the README ("Your own dataset and model").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import get_method
from omegaconf import OmegaConf

from pinsweep.config import ConfigError
from pinsweep.input.batch import first_dim
from pinsweep.record import CLASSIFICATION_STEP, configured_unit


def classification(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    """train.step's default: cross entropy of the model's logits for an `(images, labels)` batch."""
    images, labels = batch
    return F.cross_entropy(model(images), labels)


def accuracy(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    """The classification step's evaluation: the percentage of the batch's labels the logits get right
    (a tensor: averaged on the device, read once at the end)."""
    images, labels = batch
    return (model(images).argmax(dim=1) == labels).float().mean() * 100.0


def resolve(key: str, path: str) -> Callable:
    """The function a dotted path names, or a one-line ConfigError naming the key."""
    try:
        function = get_method(path)
    except Exception as error:
        raise ConfigError(
            f"{key}={path}: not an importable function ({type(error).__name__}); "
            "give the dotted path of a module-level function, e.g. mypkg.train.step"
        ) from error
    return function


def is_default_step(train_cfg: Any) -> bool:
    return train_cfg.step == CLASSIFICATION_STEP


def unit_of(cfg: Any) -> str:
    """train.unit, or its default: images for the shipped image datasets and for the classification
    step (whose batches are images by its contract), samples for everything else. One rule, the row's
    (pinsweep.record.configured_unit), so a job that failed before counting says the same unit."""
    keys = ("train.unit", "data.name", "train.step", "train.count")
    return configured_unit({key: OmegaConf.select(cfg, key) for key in keys})


def counter(train_cfg: Any) -> Callable[[Any], int]:
    """train.count, or its default: the first dimension of the batch's first tensor."""
    if not train_cfg.count:
        return first_dim
    count = resolve("train.count", train_cfg.count)

    def checked(batch: Any) -> int:
        items = count(batch)
        if isinstance(items, torch.Tensor):  # e.g. mask.sum(): on the host batch, no device sync
            items = items.item()
        if isinstance(items, float) and items.is_integer():
            items = int(items)
        if not isinstance(items, int) or items < 0:
            raise ConfigError(f"train.count={train_cfg.count} returned {items!r}: it must return an int >= 0")
        return items

    return checked


def check_loss(loss: Any, train_cfg: Any) -> None:
    """The step's result must be what backward() needs: one number, as a tensor with a graph."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        what = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ConfigError(
            f"train.step={train_cfg.step} returned {what}: it must return the loss as a scalar tensor "
            "(e.g. loss.mean())"
        )


class Evaluation:
    """The test split's figures, each averaged over the split's items (batches weighted by their count):
    train.eval_step's, the classification step's accuracy, or the mean loss of a custom step."""

    def __init__(self, train_cfg: Any, loss_of: Callable):
        if train_cfg.eval_step:
            function = resolve("train.eval_step", train_cfg.eval_step)
            self.name = function.__name__
        elif is_default_step(train_cfg):
            function, self.name = accuracy, "accuracy"
        else:
            function, self.name = loss_of, "loss"
        self.function = function
        self.eval_step = train_cfg.eval_step

    def figures(self, model: torch.nn.Module, batch: Any) -> dict[str, Any]:
        """This batch's figures, as {name: number or scalar tensor}."""
        value = self.function(model, batch)
        if isinstance(value, dict):
            return value
        return {self.name: value}

    def check(self, figures: dict[str, Any]) -> None:
        for name, value in figures.items():
            number = isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1)
            if not number:
                raise ConfigError(
                    f"train.eval_step={self.eval_step} returned {name}={type(value).__name__}: "
                    "each figure must be a number (or a one-element tensor)"
                )


def average(totals: dict[str, Any], items: int) -> dict[str, float]:
    """`test_<name>` columns: each figure's item-weighted sum over the split, divided by its items."""
    return {f"test_{name}": float(total) / items if items else math.nan for name, total in totals.items()}
