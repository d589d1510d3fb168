"""A GPT in a few lines: token and position embeddings, causal self-attention blocks, a linear head.
`forward(ids, targets)` returns `(logits, loss)`, as most GPT implementations do; pinsweep's step for it
is in steps.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from examples.char_lm.data import VOCAB


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(dim, dim=2)
        q, k, v = (t.view(batch, steps, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, steps, dim))
        return x + self.mlp(self.norm2(x))


class TinyGPT(nn.Module):
    def __init__(self, block: int = 64, dim: int = 64, heads: int = 4, layers: int = 2, vocab_size: int = len(VOCAB)):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, dim)
        self.positions = nn.Embedding(block, dim)
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(layers)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None):
        positions = torch.arange(ids.shape[1], device=ids.device)
        logits = self.head(self.norm(self.blocks(self.tokens(ids) + self.positions(positions))))
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss
