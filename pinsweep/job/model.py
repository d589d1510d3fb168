"""The network: torchvision's ResNets (the notebook's architecture), a tiny CNN for CPU runs, or yours
(model=custom: any nn.Module, built from model._target_ and model.kwargs as hydra.utils.instantiate
builds them: a class, a factory such as timm.create_model, nested `_target_`s such as a BertConfig)."""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

from torch import nn
from torchvision import models

from pinsweep.config import ConfigError, call_built, instantiate_node, plain

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


def takes_num_classes(factory: functools.partial, model_cfg: Any) -> bool:
    """Whether model=custom gets num_classes=model.num_classes: only where the callable names a
    num_classes parameter (a classifier; a language model or a U-Net needs no dummy argument) and the
    configured arguments do not already give it (model.kwargs.num_classes, or a positional one in
    `_args_`). A callable that takes **kwargs, such as timm.create_model, is not given it unasked: it may
    pass it on, or not (set +model.kwargs.num_classes=10)."""
    if "num_classes" in factory.keywords:
        return False
    try:
        signature = inspect.signature(factory.func)
    except (TypeError, ValueError):  # a callable whose signature Python cannot read: pass what is configured
        return False
    parameter = signature.parameters.get("num_classes")
    if parameter is None or parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
        if any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
            log.info(
                "model: %s takes **kwargs, no num_classes by name: model.num_classes=%d is not passed "
                "(+model.kwargs.num_classes=%d passes it)",
                model_cfg._target_,
                model_cfg.num_classes,
                model_cfg.num_classes,
            )
        return False
    try:
        given = signature.bind_partial(*factory.args, **factory.keywords).arguments
    except TypeError:  # arguments that do not fit: calling it says so, in the callable's own words
        return False
    return "num_classes" not in given


def build_custom(model_cfg: Any) -> nn.Module:
    """model=custom: model._target_ called with model.kwargs (nested nodes built), plus num_classes where
    it takes it; whatever does not import, build, or return an nn.Module is one ConfigError line."""
    node = {"_target_": model_cfg._target_, **plain(model_cfg.kwargs)}
    factory = instantiate_node({**node, "_partial_": True}, "model", "the model", lambda path: f"model.kwargs.{path}")
    extra = {"num_classes": model_cfg.num_classes} if takes_num_classes(factory, model_cfg) else {}
    model = call_built(factory, node, "model", "the model", **extra)
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model._target_={model_cfg._target_} returned a {type(model).__name__}, not a torch.nn.Module: "
            "name a class or function that returns the network"
        )
    return model


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
        model = build_custom(model_cfg)
    else:
        raise ConfigError(f"model.name={name}: choose resnet34, resnet18, tiny, or model=custom with model._target_")
    parameters = sum(p.numel() for p in model.parameters())
    log.info("model: %s, %.2fM parameters", name, parameters / 1e6)
    return model
