"""Dict batches of variable length: a text classifier whose dataset returns `{"input_ids", "label"}` per
sample, padded into `{"input_ids", "attention_mask", "labels"}` by its own collate_fn, throughput in real
(non-padding) tokens/s. See README.md, "Your own dataset and model".

    pinsweep --config-dir examples/text_classify/conf -m experiment=text_classify
"""
