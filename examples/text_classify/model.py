"""A bag-of-embeddings classifier: token embeddings averaged over the real tokens, then an MLP."""

from __future__ import annotations

import torch
from torch import nn


class MeanPoolClassifier(nn.Module):
    def __init__(self, vocab: int = 1000, dim: int = 64, num_classes: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, num_classes))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.head(pooled)
