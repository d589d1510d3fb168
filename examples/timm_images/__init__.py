"""A timm model over torchvision's ImageFolder with timm's own transform, swept by pinsweep with no code
of its own: `model._target_=timm.create_model`, `data._target_=torchvision.datasets.ImageFolder` built per
split (train/ and val/ roots), the transform a nested `_target_` (`timm.data.create_transform`). See
README.md, "Pipelines from the ecosystem".

    python -m pinsweep.make_jpegs /tmp/jpegs --count 512 --size 40      # a JPEG tree, offline
    pinsweep --config-dir examples/timm_images/conf -m experiment=timm_images data.root=/tmp/jpegs
"""
