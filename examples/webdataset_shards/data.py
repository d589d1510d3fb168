"""Image shards in WebDataset's tar format, written offline, and the pipeline that streams them.

    python -m examples.webdataset_shards.data /tmp/shards --shards 4 --per-shard 128

writes /tmp/shards/train-000000.tar ... (`--shards` shards of `--per-shard` samples) and
test-000000.tar, test-000001.tar, each sample a JPEG (`.jpg`) and its class (`.cls`), as
`webdataset.ShardWriter` writes them. Each class has its own colour under the noise, so a model can
learn it and test accuracy tells a working run from a broken one.

`image_shards` is the pipeline exactly as webdataset's documentation builds one; pinsweep calls it once
per split with that split's keys (`data.train_kwargs` / `data.test_kwargs`, conf/data/shards.yaml).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from torchvision.transforms import v2

SPLITS = {"train": None, "test": 2}  # shards per split: train's from --shards; the test split has 2


def class_image(rng: np.random.Generator, label: int, classes: int, size: int) -> np.ndarray:
    """An RGB uint8 image of class `label`: a colour per class, and noise."""
    colour = 128 + 90 * np.cos(2 * np.pi * (label / classes + np.array([0, 1 / 3, 2 / 3])))
    return np.clip(colour + rng.normal(0, 30, size=(size, size, 3)), 0, 255).astype(np.uint8)


def write_shards(
    root: str | Path, shards: int = 4, per_shard: int = 128, size: int = 32, classes: int = 10, seed: int = 0
) -> list[Path]:
    """Writes `shards` train shards and 2 test shards of `per_shard` samples each; returns their paths."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, count in SPLITS.items():
        with wds.ShardWriter(str(root / f"{split}-%06d.tar"), maxcount=per_shard, verbose=0) as sink:
            for index in range((count or shards) * per_shard):
                label = int(rng.integers(classes))
                image = class_image(rng, label, classes, size)  # ShardWriter encodes it by its key's extension
                sink.write({"__key__": f"{split}{index:07d}", "jpg": image, "cls": label})
    return sorted(root.glob("*.tar"))


def image_shards(
    urls: str,
    shuffle: int = 0,
    shardshuffle: int | bool = False,
    augment: bool = False,
    empty_check: bool = True,
    seed: int | None = None,
) -> wds.WebDataset:
    """data._target_: the shards at `urls` (brace notation, `train-{000000..000003}.tar`) as
    `(image, label)` samples: float CHW images in [0, 1] and int labels.

    Shards are split across nodes (torch.distributed ranks) and then across DataLoader workers, so every
    sample is read once per epoch; `shardshuffle` shuffles the shard order (a buffer of that many shards,
    from `seed`, drawn once as the pipeline is built when None: every worker shuffles the same way, so
    that the split still gives each shard to one worker) and `shuffle` the samples (a buffer of that
    many). The pipeline has no `__len__`: pinsweep counts the samples as they stream. webdataset raises
    when a worker gets no shard (`empty_check`): fewer shards than workers; `empty_check=False` lets the
    idle worker yield nothing, and pinsweep names it."""
    steps = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if augment:
        steps.insert(0, v2.RandomHorizontalFlip())
    return (
        wds.WebDataset(
            urls,
            shardshuffle=shardshuffle,
            nodesplitter=wds.split_by_node,
            workersplitter=wds.split_by_worker,
            empty_check=empty_check,
            seed=seed,
        )
        .shuffle(shuffle)
        .decode("pil")
        .to_tuple("jpg", "cls")
        .map_tuple(v2.Compose(steps), int)
    )


def main(argv: list[str] | None = None) -> int:
    description = __doc__.splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m examples.webdataset_shards.data", description=description)
    parser.add_argument("root", type=Path, help="folder to write the shards into")
    parser.add_argument("--shards", type=int, default=4, help="train shards (default 4)")
    parser.add_argument("--per-shard", type=int, default=128, help="samples per shard (default 128)")
    parser.add_argument("--size", type=int, default=32, help="side of each square image in pixels (default 32)")
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args(argv)
    paths = write_shards(args.root, args.shards, args.per_shard, args.size, args.classes)
    print(f"wrote {len(paths)} shards to {args.root}; sweep them with:")
    root = args.root.resolve()
    command = f"pinsweep --config-dir examples/webdataset_shards/conf -m experiment=webdataset_shards data.root={root}"
    if args.shards != 4:  # conf/data/shards.yaml names 4 train shards
        command += f" data.train_kwargs.urls='{root}/train-{{000000..{args.shards - 1:06d}}}.tar'"
    print(f"  {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
