"""A small sentiment dataset made offline, in Hugging Face's formats.

    python -m examples.hf_text.data /tmp/hf_text --size 2048

writes, under the folder:
- `tokenizer/`: a BERT WordPiece tokenizer over a vocabulary this module writes (`BertTokenizerFast`
  over a vocab file, then `save_pretrained`), so `AutoTokenizer.from_pretrained(<folder>/tokenizer)`
  loads it with no hub;
- `train/`, `test/`: `datasets.Dataset`s (`save_to_disk`) of reviews drawn from a small seeded grammar,
  tokenized as Hugging Face's examples do (`dataset.map(tokenize, batched=True)`): columns
  `input_ids`, `token_type_ids`, `attention_mask` and `label` (1 when the review is positive), of
  varying length, so DataCollatorWithPadding pads each batch to its longest.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SUBJECTS = ["the film", "this movie", "the plot", "the acting", "the music", "the ending", "the cast", "the story"]
LINKS = ["was", "is", "felt", "seemed", "looked"]
POSITIVE = ["great", "wonderful", "moving", "brilliant", "fun", "beautiful", "clever", "warm"]
NEGATIVE = ["dull", "awful", "boring", "weak", "messy", "flat", "slow", "cold"]
FILLERS = ["and", "but", "really", "quite", "very", "at", "times", "overall", "i", "think", "."]
VOCAB_SIZE = 128  # model.kwargs.config.vocab_size in conf/model/tiny_bert.yaml: at least the words below


def vocabulary() -> list[str]:
    words = {word for phrase in SUBJECTS for word in phrase.split()} | set(LINKS + POSITIVE + NEGATIVE + FILLERS)
    words = SPECIAL + sorted(words)
    assert len(words) <= VOCAB_SIZE, len(words)
    return words


def review(rng: random.Random, positive: bool) -> str:
    """One to six clauses; most of their adjectives carry the label, some the other one (noise)."""
    clauses = []
    for _ in range(rng.randint(1, 6)):
        side = POSITIVE if (rng.random() < 0.8) == positive else NEGATIVE
        adverb = rng.choice(["", "really ", "quite ", "very "])
        clauses.append(f"{rng.choice(SUBJECTS)} {rng.choice(LINKS)} {adverb}{rng.choice(side)}")
    return f"{' and '.join(clauses)} ."


def write_dataset(
    root: str | Path, size: int = 2048, test_size: int | None = None, max_length: int = 64, seed: int = 0
) -> Path:
    """Writes tokenizer/, train/ (`size` reviews) and test/ (`test_size`, default a quarter) under root."""
    from datasets import Dataset, disable_progress_bars
    from transformers import BertTokenizerFast

    disable_progress_bars()  # a few thousand short reviews: done before a bar would say anything

    root = Path(root)
    (root / "tokenizer").mkdir(parents=True, exist_ok=True)
    vocab_file = root / "vocab.txt"
    vocab_file.write_text("\n".join(vocabulary()) + "\n")
    # the vocab file positionally: transformers 4 names it vocab_file, 5 names it vocab (and takes
    # vocab_file= silently, into **kwargs, and then every word is [UNK])
    tokenizer = BertTokenizerFast(str(vocab_file), do_lower_case=True)
    tokenizer.save_pretrained(root / "tokenizer")

    def tokenize(batch):
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    rng = random.Random(seed)
    for split, count in (("train", size), ("test", test_size if test_size is not None else max(size // 4, 1))):
        labels = [rng.random() < 0.5 for _ in range(count)]
        texts = [review(rng, label) for label in labels]
        dataset = Dataset.from_dict({"text": texts, "label": [int(label) for label in labels]})
        dataset.map(tokenize, batched=True, remove_columns=["text"]).save_to_disk(root / split)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.hf_text.data", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to write tokenizer/, train/ and test/ into")
    parser.add_argument("--size", type=int, default=2048, help="train reviews (default 2048; test: a quarter)")
    args = parser.parse_args(argv)
    write_dataset(args.root, args.size)
    print(f"wrote a tokenizer and a {args.size}-review dataset to {args.root}; sweep it with:")
    print(f"  pinsweep --config-dir examples/hf_text/conf -m experiment=hf_text data.root={args.root.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
