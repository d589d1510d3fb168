"""train.step, train.count and train.eval_step for a transformers model and DataCollatorWithPadding's
batches (`BatchEncoding`: input_ids, token_type_ids, attention_mask, labels)."""

from __future__ import annotations

import torch


def step(model: torch.nn.Module, batch) -> torch.Tensor:
    """train.step: transformers models compute their own loss when the batch holds `labels`."""
    return model(**batch).loss


def count_real_tokens(batch) -> int:
    """train.count: the tokens the model reads, padding left out (pinsweep counts the host batch)."""
    return int(batch["attention_mask"].sum())


def accuracy(model: torch.nn.Module, batch) -> dict[str, torch.Tensor]:
    """train.eval_step: percent of labels right (test_accuracy), and the model's own loss (test_loss)."""
    output = model(**batch)
    return {"accuracy": (output.logits.argmax(-1) == batch["labels"]).float().mean() * 100, "loss": output.loss}
