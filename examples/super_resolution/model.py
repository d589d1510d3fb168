"""ESPCN (Shi et al., 2016): convolutions at low resolution, then a sub-pixel (PixelShuffle) upsampling."""

from __future__ import annotations

import torch
from torch import nn


class ESPCN(nn.Module):
    def __init__(self, scale: int = 2, width: int = 32, channels: int = 3):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(width, width // 2, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(width // 2, channels * scale**2, 3, padding=1),
            nn.PixelShuffle(scale),
        )

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        return self.body(low)
