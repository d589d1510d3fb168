"""A worked example of plugging your own Dataset and nn.Module into pinsweep.

    python -m pinsweep -m data=custom data._target_=examples.my_pipeline.StripesDataset \
        +data.kwargs.size=2048 model=custom model._target_=examples.my_pipeline.SmallMLP \
        +model.kwargs.hidden=256 train.epochs=2 loader.num_workers=0,2

The dataset decodes each sample in `__getitem__` (here: draws stripes), as a real image dataset
decodes JPEGs, so the loader settings matter for it just as they do for CIFAR-10. It runs under the
default classification step (`(image, label)` samples, a model returning logits); the three folders
beside this file show other batches and steps (README, "Your own dataset and model").
"""

import torch
from torch import nn
from torch.utils.data import Dataset


class StripesDataset(Dataset):
    """Images of horizontal or vertical stripes at one of five frequencies: ten classes."""

    def __init__(self, size: int = 2048, train: bool = True, image_size: int = 32):
        self.size = size
        self.image_size = image_size
        self.offset = 0 if train else 10**6  # the test split draws different samples

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        generator = torch.Generator().manual_seed(self.offset + index)
        label = int(torch.randint(0, 10, (), generator=generator))
        frequency, vertical = label % 5 + 1, label >= 5
        line = torch.sin(torch.linspace(0, 2 * torch.pi * frequency, self.image_size))
        image = line.expand(self.image_size, -1)
        image = image.T if vertical else image
        noise = 0.3 * torch.randn(3, self.image_size, self.image_size, generator=generator)
        return (image.unsqueeze(0).expand(3, -1, -1) + noise).float(), label


class SmallMLP(nn.Module):
    """Flatten, one hidden layer, logits."""

    def __init__(self, num_classes: int = 10, hidden: int = 128, image_size: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(3 * image_size * image_size, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)
