"""The text, made offline: sentences drawn from a small grammar with a seed, as characters.

A real corpus works the same way (`path=` a UTF-8 text file; characters outside VOCAB become spaces).
Each sample is one block of BLOCK characters and the same block shifted by one, the next-character
targets: `(x, y)`, two LongTensors, which DataLoader's default collate stacks into `(B, T)` batches.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from torch.utils.data import Dataset

VOCAB = " abcdefghijklmnopqrstuvwxyz.,\n"  # every character the model knows; the index is the token id
INDEX = {char: i for i, char in enumerate(VOCAB)}

SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the robot", "a small bird", "the teacher"]
VERBS = ["sees", "likes", "finds", "carries", "paints", "follows", "remembers"]
OBJECTS = ["a red ball", "the river", "an open door", "the last train", "a quiet garden", "the moon"]
ENDINGS = [".", ", and then it rains.", ", slowly.", " every morning.", " again."]


def sentences(characters: int, seed: int) -> str:
    """About `characters` characters of grammatical nonsense, the same for the same seed."""
    rng = random.Random(seed)
    parts, length = [], 0
    while length < characters:
        sentence = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(ENDINGS)}"
        sentence += "\n" if rng.random() < 0.2 else " "
        parts.append(sentence)
        length += len(sentence)
    return "".join(parts)[:characters]


def encode(text: str) -> torch.Tensor:
    return torch.tensor([INDEX.get(char, 0) for char in text.lower()], dtype=torch.long)


class CharBlocks(Dataset):
    """Non-overlapping blocks of `block` characters: (ids, ids shifted by one). The test split is text
    drawn with another seed (or the last tenth of the file at `path`)."""

    def __init__(self, characters: int = 100_000, block: int = 64, seed: int = 0, train: bool = True, path=None):
        if path is not None:
            text = Path(path).read_text(encoding="utf-8")
            cut = int(len(text) * 0.9)
            text = text[:cut] if train else text[cut:]
        else:
            text = sentences(characters if train else characters // 10, seed if train else seed + 1)
        self.ids = encode(text)
        self.block = block

    def __len__(self) -> int:
        return (len(self.ids) - 1) // self.block

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = index * self.block
        chunk = self.ids[start : start + self.block + 1]
        return chunk[:-1], chunk[1:]


if __name__ == "__main__":  # python -m examples.char_lm.data corpus.txt: the generated text, to read or reuse
    import sys

    Path(sys.argv[1]).write_text(sentences(100_000, 0), encoding="utf-8")
