"""Image pairs made per sample, as a real dataset decodes and crops each file in `__getitem__`:
a high-resolution texture (random gratings and blobs, seeded by the index) and its low-resolution
version (area downsampling by `scale`). DataLoader's default collate stacks them into two 4-D batches."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


class TexturePairs(Dataset):
    def __init__(self, size: int = 1024, image_size: int = 32, scale: int = 2, train: bool = True, seed: int = 0):
        self.size, self.image_size, self.scale = size, image_size, scale
        self.seed = seed * 2 + (0 if train else 1)  # the test split draws other textures

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        axis = torch.linspace(0, 1, self.image_size)
        y, x = torch.meshgrid(axis, axis, indexing="ij")
        image = torch.zeros(3, self.image_size, self.image_size)
        for _ in range(4):  # gratings: detail the network has to recover
            angle, frequency, phase = torch.rand(3, generator=generator) * torch.tensor([math.pi, 12.0, 6.3])
            wave = torch.sin(2 * math.pi * frequency * (x * torch.cos(angle) + y * torch.sin(angle)) + phase)
            image += torch.rand(3, 1, 1, generator=generator) * wave
        high = (image - image.amin()) / (image.amax() - image.amin() + 1e-6)
        low = F.avg_pool2d(high.unsqueeze(0), self.scale).squeeze(0)
        return low, high
