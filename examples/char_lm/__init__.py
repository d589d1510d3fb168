"""A character-level GPT language model swept by pinsweep: `(x, y)` LongTensor batches of token ids, a
model that returns `(logits, loss)`, throughput in tokens/s. See README.md, "Your own dataset and model".

    pinsweep --config-dir examples/char_lm/conf -m experiment=char_lm
"""
