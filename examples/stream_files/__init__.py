"""An IterableDataset streaming `.npz` files, each DataLoader worker its own files (plain torch, no
`__len__`), and the most common IterableDataset bug reproduced on purpose: `split_by_worker=false`
makes every worker read every file. See README.md, "Pipelines from the ecosystem".

    python -m examples.stream_files.data /tmp/npz        # writes the files offline
    pinsweep --config-dir examples/stream_files/conf -m experiment=stream_files data.root=/tmp/npz
"""
