"""What pinsweep calls for this pipeline (train.step, train.count): everything else it keeps itself."""

from __future__ import annotations

from typing import Any

import torch


def step(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    """train.step: the model computes its own loss; pinsweep does backward and the optimizer step."""
    ids, targets = batch
    _, loss = model(ids, targets)
    return loss


def count_tokens(batch: Any) -> int:
    """train.count: a (B, T) batch trains on B x T next-character predictions: tokens, not sequences."""
    ids, _ = batch
    return ids.numel()
