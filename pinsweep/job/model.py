"""The network: torchvision's ResNets (the notebook's architecture), a tiny CNN for CPU runs, or yours
(model=custom: any nn.Module, built from model.kwargs)."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from hydra.utils import get_class
from torch import nn
from torchvision import models

from pinsweep.config import ConfigError

log = logging.getLogger(__name__)


class TinyCNN(nn.Module):
    """Two convolutions and a linear head: enough to train and time on a CPU in seconds."""

    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, images):
        return self.head(self.features(images).flatten(1))


def custom_arguments(model_class: type, model_cfg: Any) -> dict[str, Any]:
    """model=custom: the class is built from model.kwargs, plus model.num_classes only where its
    __init__ has a parameter of that name (a classifier), so a language model or a U-Net needs no
    dummy argument; a num_classes in kwargs wins."""
    arguments = dict(model_cfg.kwargs)
    try:
        takes = "num_classes" in inspect.signature(model_class).parameters
    except (TypeError, ValueError):  # a class whose signature Python cannot read: pass what is configured
        takes = False
    if takes and "num_classes" not in arguments:
        arguments["num_classes"] = model_cfg.num_classes
    return arguments


def build_model(model_cfg: Any) -> nn.Module:
    """An untrained model named by the config (the shipped ones return class logits)."""
    name = model_cfg.name
    if name == "resnet34":
        # the notebook's ResNet-34 derives from torchvision's; on 32x32 inputs layer4 ends at 1x1,
        # so torchvision's adaptive average pool is the identity the notebook relied on
        model = models.resnet34(weights=None, num_classes=model_cfg.num_classes)
    elif name == "resnet18":
        model = models.resnet18(weights=None, num_classes=model_cfg.num_classes)
    elif name == "tiny":
        model = TinyCNN(model_cfg.num_classes, model_cfg.width)
    elif model_cfg._target_:
        model_class = get_class(model_cfg._target_)
        model = model_class(**custom_arguments(model_class, model_cfg))
    else:
        raise ConfigError(f"model.name={name}: choose resnet34, resnet18, tiny, or model=custom with model._target_")
    parameters = sum(p.numel() for p in model.parameters())
    log.info("model: %s, %.2fM parameters", name, parameters / 1e6)
    return model
