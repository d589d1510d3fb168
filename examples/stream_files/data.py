"""Feature vectors in `.npz` files, written offline, streamed by an IterableDataset.

    python -m examples.stream_files.data /tmp/npz --files 4 --per-file 256

writes /tmp/npz/train-0000.npz ... (`--files` files of `--per-file` samples) and test-0000.npz,
test-0001.npz, each holding `x` (float32, samples x features) and `y` (int64 classes). A class is a
direction in feature space plus noise, so a model can learn it.

`NpzStream` is an IterableDataset as torch documents one: in a DataLoader worker,
`torch.utils.data.get_worker_info()` says which worker this is of how many, and each worker reads every
num_workers-th file, so the workers together read each file once. `split_by_worker=False` leaves the
split out, the most common IterableDataset bug: every worker then streams every file, and an epoch at
num_workers=2 holds every sample twice.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

TEST_FILES = 2


def write_files(
    root: str | Path, files: int = 4, per_file: int = 256, features: int = 32, classes: int = 10, seed: int = 0
) -> list[Path]:
    """Writes `files` train files and 2 test files of `per_file` samples each; returns their paths."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, size=(classes, features))
    paths = []
    for split, count in (("train", files), ("test", TEST_FILES)):
        for index in range(count):
            y = rng.integers(classes, size=per_file)
            x = centres[y] + rng.normal(0, 1.0, size=(per_file, features))
            paths.append(root / f"{split}-{index:04d}.npz")
            np.savez(paths[-1], x=x.astype(np.float32), y=y.astype(np.int64))
    return paths


class NpzStream(IterableDataset):
    """`(features, label)` samples from `<root>/<split>-*.npz`, file after file, each worker its own files.

    `shuffle=True` shuffles the file order and the samples within each file, anew every epoch (an
    IterableDataset shuffles itself: DataLoader's shuffle does not apply to it)."""

    def __init__(self, root: str, split: str = "train", split_by_worker: bool = True, shuffle: bool = False):
        self.files = sorted(Path(root).glob(f"{split}-*.npz"))
        if not self.files:
            raise FileNotFoundError(
                f"no {split}-*.npz in {root}: write them with `python -m examples.stream_files.data {root}`"
            )
        self.split_by_worker, self.shuffle = split_by_worker, shuffle

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        worker = get_worker_info()
        # a seed new every epoch and the same in every worker (DataLoader gives worker i base_seed + i),
        # so that the workers split one shuffled file order between them
        seed = worker.seed - worker.id if worker is not None else int(torch.randint(2**62, ()))
        generator = torch.Generator().manual_seed(seed)
        files = list(self.files)
        if self.shuffle:
            files = [files[i] for i in torch.randperm(len(files), generator=generator)]
        if self.split_by_worker and worker is not None:
            files = files[worker.id :: worker.num_workers]  # this worker's share; fewer files than workers: none
        for path in files:
            with np.load(path) as arrays:
                x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
            order = torch.randperm(len(y), generator=generator) if self.shuffle else range(len(y))
            for index in order:
                yield x[index], int(y[index])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.stream_files.data", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to write the files into")
    parser.add_argument("--files", type=int, default=4, help="train files (default 4)")
    parser.add_argument("--per-file", type=int, default=256, help="samples per file (default 256)")
    parser.add_argument("--features", type=int, default=32, help="features per sample (default 32)")
    args = parser.parse_args(argv)
    paths = write_files(args.root, args.files, args.per_file, args.features)
    print(f"wrote {len(paths)} files to {args.root}; sweep them with:")
    command = "pinsweep --config-dir examples/stream_files/conf -m experiment=stream_files"
    print(f"  {command} data.root={args.root.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
