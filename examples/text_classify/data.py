"""Token sequences of varying length, one dict per sample, and the collate_fn that pads them.

Each sample is drawn from its index (seeded): 8 to `max_len` token ids and a label that depends on
them (whether most ids fall in the lower half of the vocabulary), so the classifier can learn it.
`sample_delay_ms` sleeps per sample, as tokenizing text read from slow storage costs per sample.
"""

from __future__ import annotations

import time

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

PAD = 0  # token id 0 is padding; real tokens are 1 .. vocab-1


class VariableLengthTexts(Dataset):
    def __init__(
        self,
        size: int = 2048,
        vocab: int = 1000,
        max_len: int = 128,
        sample_delay_ms: float = 0.0,
        train: bool = True,
        seed: int = 0,
    ):
        self.size, self.vocab, self.max_len = size, vocab, max_len
        self.delay_s = sample_delay_ms / 1000.0
        self.seed = seed * 2 + (0 if train else 1)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if self.delay_s:
            time.sleep(self.delay_s)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        length = int(torch.randint(8, self.max_len + 1, (), generator=generator))
        label = int(torch.randint(0, 2, (), generator=generator))
        low = torch.rand(length, generator=generator) < (0.7 if label else 0.3)  # the label's signal
        ids = torch.randint(1, self.vocab // 2, (length,), generator=generator)
        ids = torch.where(low, ids, ids + self.vocab // 2 - 1)
        return {"input_ids": ids, "label": label}


def pad_collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    """data.collate_fn: pad every sequence to the batch's longest; the mask says which tokens are real."""
    ids = pad_sequence([sample["input_ids"] for sample in samples], batch_first=True, padding_value=PAD)
    return {
        "input_ids": ids,
        "attention_mask": ids != PAD,
        "labels": torch.tensor([sample["label"] for sample in samples]),
    }
