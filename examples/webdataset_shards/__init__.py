"""WebDataset tar shards swept by pinsweep: a factory function returns the `wds.WebDataset` pipeline
(shards split by node and by worker, shuffled in a buffer, decoded, as tuples), used as `data._target_`
with no adapter class and no `__len__`: an epoch is the stream. See README.md, "Pipelines from the
ecosystem".

    python -m examples.webdataset_shards.data /tmp/shards        # writes the shards offline
    pinsweep --config-dir examples/webdataset_shards/conf -m experiment=webdataset_shards data.root=/tmp/shards
"""
