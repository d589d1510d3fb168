"""Write a folder of real JPEG files in torchvision's ImageFolder layout, so data=imagefolder runs offline.

    python -m pinsweep.make_jpegs /tmp/jpegs --count 512 --size 96 --classes 10

writes DIR/train/class_00/000000.jpg ... (`--count` images) and DIR/val/... (`--val-count`, by default
a fifth of that), encoded by PIL. Each class has its own colour and stripe direction under the noise,
so a model can learn it and test accuracy still tells a working run from a broken one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = ("train", "val")


def class_image(rng: np.random.Generator, label: int, classes: int, size: int) -> np.ndarray:
    """An RGB uint8 image of class `label`: its colour, stripes at its angle, and noise."""
    colour = 128 + 90 * np.cos(2 * np.pi * (label / classes + np.array([0, 1 / 3, 2 / 3])))  # a hue per class
    angle = np.pi * label / classes
    y, x = np.mgrid[0:size, 0:size] / size
    stripes = 40 * np.sin(2 * np.pi * 4 * (x * np.cos(angle) + y * np.sin(angle)))
    noise = rng.normal(0, 25, size=(size, size, 3))
    return np.clip(colour + stripes[..., None] + noise, 0, 255).astype(np.uint8)


def write_split(root: Path, split: str, count: int, size: int, classes: int, rng: np.random.Generator) -> None:
    for index in range(count):
        label = index % classes  # balanced classes
        folder = root / split / f"class_{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(class_image(rng, label, classes, size)).save(folder / f"{index:06d}.jpg", quality=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinsweep.make_jpegs", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to write train/ and val/ into")
    parser.add_argument("--count", type=int, default=1024, help="train images (default 1024)")
    parser.add_argument("--val-count", type=int, default=None, help="val images (default count / 5)")
    parser.add_argument("--size", type=int, default=256, help="side of each square image in pixels (default 256)")
    parser.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    val_count = max(args.count // 5, 1) if args.val_count is None else args.val_count
    for name, value, least in (("count", args.count, 1), ("size", args.size, 8), ("classes", args.classes, 1)):
        if value < least:
            parser.error(f"--{name}={value}: must be >= {least}")
    if val_count < 0:
        parser.error(f"--val-count={val_count}: must be >= 0")
    if any((args.root / split).exists() for split in SPLITS):
        parser.error(f"{args.root} already holds train/ or val/: choose an empty folder or delete them")
    rng = np.random.default_rng(args.seed)
    for split, count in zip(SPLITS, (args.count, val_count)):
        write_split(args.root, split, count, args.size, args.classes, rng)
    print(
        f"wrote {args.count} train and {val_count} val JPEGs ({args.size}x{args.size}, {args.classes} classes) "
        f"to {args.root}"
    )
    return 0
