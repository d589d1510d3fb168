"""train.step, train.count and train.eval_step of the dict-batch pipeline."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """train.step: cross entropy of the class logits."""
    return F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])


def count_real_tokens(batch: dict[str, torch.Tensor]) -> int:
    """train.count: the tokens the model reads, padding left out (pinsweep counts the host batch)."""
    return int(batch["attention_mask"].sum())


def accuracy(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """train.eval_step: percent of labels right (test_accuracy); averaged over the split by token count."""
    logits = model(batch["input_ids"], batch["attention_mask"])
    return {"accuracy": (logits.argmax(1) == batch["labels"]).float().mean() * 100}
