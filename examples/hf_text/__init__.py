"""A Hugging Face pipeline swept by pinsweep as its users write it: a `datasets.Dataset` loaded per split
with `datasets.load_from_disk`, padded by `transformers.DataCollatorWithPadding` (a `_target_` node with
the tokenizer nested) and a `BertForSequenceClassification` built from a nested `BertConfig`; the step
is `model(**batch).loss`, the unit real tokens. Everything is made locally (no hub). See README.md,
"Pipelines from the ecosystem".

    python -m examples.hf_text.data /tmp/hf_text       # tokenizer, vocabulary and dataset, offline
    pinsweep --config-dir examples/hf_text/conf -m experiment=hf_text data.root=/tmp/hf_text
"""
