"""train.step and train.eval_step of the super-resolution pipeline; items are images (the default count)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def step(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    """train.step: mean squared error of the upscaled image against the original."""
    low, high = batch
    return F.mse_loss(model(low), high)


def quality(model: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]:
    """train.eval_step: the batch's MSE and PSNR (images in [0, 1]): the test_mse and test_psnr columns."""
    low, high = batch
    error = F.mse_loss(model(low).clamp(0, 1), high)
    return {"mse": error, "psnr": -10 * torch.log10(error)}
