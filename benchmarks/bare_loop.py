"""The reference for the harness-overhead benchmark: a hand-written training loop, no harness.

It does exactly the work of `python -m pinsweep data=synthetic model=tiny train.ceiling_steps=0
train.evaluate=false` with the same sizes: the same dataset class and model class (imported from
pinsweep, so they cannot drift apart), the same DataLoader settings, Adam, the same seeds in the same
order, both splits built (pinsweep builds the test split even when it does not evaluate). It times
itself as pinsweep times `train_s`: from before the first epoch to after the last.

    python benchmarks/bare_loop.py --train-size 8192 --test-size 256 --epochs 3

Prints one JSON line: train_s, per-epoch seconds and the final loss (equal to pinsweep's row's
final_loss when the work is identical). `--runs 4` does it all (seeds, data, model, training) 4 times in
this one process: what a sweep of 4 jobs would cost with no harness and no process per job.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import models

from pinsweep.input.data import SyntheticCIFAR10
from pinsweep.job.model import TinyCNN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, required=True)
    parser.add_argument("--test-size", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--model", choices=("tiny", "resnet18"), default="tiny")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.runs):
        train(args)


def train(args: argparse.Namespace) -> None:
    # pinsweep's order: seeds, datasets, loader, model; the model's initialisation and the
    # sampler's shuffles then draw the same random numbers in both
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    train_set = SyntheticCIFAR10(args.train_size, args.data_seed, True)
    SyntheticCIFAR10(args.test_size, args.data_seed, False)  # built, unused: as pinsweep with evaluate=false
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, num_workers=args.num_workers)
    model = TinyCNN(10, args.width) if args.model == "tiny" else models.resnet18(weights=None, num_classes=10)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    epoch_times = []
    start = time.perf_counter()
    for _ in range(args.epochs):
        epoch_start = time.perf_counter()
        for images, labels in loader:
            model.train()
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        epoch_times.append(time.perf_counter() - epoch_start)
    train_s = time.perf_counter() - start

    print(json.dumps({"train_s": train_s, "epoch_times_s": epoch_times, "final_loss": float(loss.detach())}))


if __name__ == "__main__":
    main()
