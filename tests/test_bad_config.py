"""Every config mistake is one line naming the key and the fix, before anything trains (issue 32): the
table below is the promise, case by case. Each case composes the real conf/ and validates it (or, for a
misspelt key, asks the check `python -m pinsweep` makes before Hydra starts); none trains a model. The
last table holds jobs whose mistake shows at the first batch: each runs in process, up to that batch."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from pinsweep.app import run_and_record
from pinsweep.config import ConfigError, misspelt_override, validate

# (overrides, words the one line must hold): each a typed value that cannot run
REFUSED = [
    (["loader.batch_size=0"], "loader.batch_size=0: must be >= 1"),
    (["loader.batch_size=-3"], "loader.batch_size=-3: must be >= 1"),
    (["loader.num_workers=-1"], "loader.num_workers=-1: must be >= 0"),
    (["loader.persistent_workers=true"], "loader.persistent_workers=true needs worker processes"),
    (["loader.prefetch_factor=2"], "loader.prefetch_factor=2 needs worker processes"),
    (["loader.num_workers=1", "loader.prefetch_factor=0"], "loader.prefetch_factor=0: must be >= 1"),
    (["loader.device_prefetch=-1"], "loader.device_prefetch=-1: must be >= 0"),
    (["loader.worker_type=thread"], "use loader.engine=nodes for threads"),
    (["loader.engine=nodes", "loader.num_workers=1", "loader.persistent_workers=true"], "no persistent workers"),
    (["loader.engine=nodes", "loader.worker_threads=2"], "use it with loader.engine=dataloader"),
    (["loader.worker_threads=0"], "loader.worker_threads=0: must be >= 1 thread"),
    (["train.epochs=0"], "train.epochs=0: must be >= 1"),
    (["train.epochs=-2"], "train.epochs=-2: must be >= 1"),
    (["train.lr=0"], "train.lr=0.0: must be a positive finite learning rate"),
    (["train.lr=-0.1"], "train.lr=-0.1: must be a positive finite learning rate"),
    (["train.lr=nan"], "train.lr=nan: must be a positive finite learning rate"),
    (["train.lr=inf"], "train.lr=inf: must be a positive finite learning rate"),
    (["train.seed=-1"], "train.seed=-1: must be in 0 .. 2**32 - 1"),
    (["train.seed=4294967296"], "train.seed=4294967296: must be in 0 .. 2**32 - 1"),
    (["train.device=tpu"], "train.device=tpu: use auto, cpu, cuda or cuda:N"),
    (["train.device=cuda:x"], "train.device=cuda:x: use auto, cpu, cuda or cuda:N"),
    (["train.device=gpu"], "train.device=gpu: use auto, cpu, cuda or cuda:N"),
    (["train.timeout_s=-5"], "train.timeout_s=-5.0: seconds in (0, 1e+08)"),
    (["train.timeout_s=0"], "train.timeout_s=0.0: seconds in (0, 1e+08)"),
    (["train.timeout_s=1e30"], "train.timeout_s=1e+30: seconds in (0, 1e+08)"),
    (["train.warmup_steps=-1"], "train.warmup_steps=-1: must be >= 0"),
    (["train.max_steps_per_epoch=0"], "train.max_steps_per_epoch=0: must be >= 1"),
    (["train.target_ci=0"], "train.target_ci=0.0: a relative half-width in (0, 1)"),
    (["train.target_ci=1.5"], "train.target_ci=1.5: a relative half-width in (0, 1)"),
    (["train.ceiling_target_ci=-0.1"], "train.ceiling_target_ci=-0.1: a relative half-width in (0, 1)"),
    (["train.budget_s=0"], "train.budget_s=0.0: must be > 0 seconds"),
    (["train.ceiling_budget_s=-1"], "train.ceiling_budget_s=-1.0: must be > 0 seconds"),
    (["train.min_steps=0"], "train.min_steps=0: must be >= 1"),
    (["train.ceiling_steps=-1"], "train.ceiling_steps=-1: must be >= 0"),
    (["train.ranks=0"], "train.ranks=0: must be >= 1"),
    (["train.threads=0"], "train.threads=0: must be >= 1 thread"),
    (["train.threads=-4"], "train.threads=-4: must be >= 1 thread"),
    (["train.fault_rank=1"], "train.fault_rank=1: must name a rank, 0 .. 0"),
    (["train.ranks=2", "train.fault_rank=2"], "train.fault_rank=2: must name a rank, 0 .. 1"),
    (["train.inject_fault=kill_worker"], "train.inject_fault=kill_worker needs a worker to kill"),
    (["train.ranks=2", "data.pipeline=device"], "the resident split is not sharded between ranks"),
    (["~train.optimizer._target_"], "train.optimizer needs a _target_"),
    (["data.train_size=0"], "data.train_size=0: must be >= 1 or null"),
    (["data.test_size=-5"], "data.test_size=-5: must be >= 1 or null"),
    (["data.sample_delay_ms=-1"], "data.sample_delay_ms=-1.0: must be >= 0 milliseconds"),
    (["data.sample_delay_ms=nan"], "data.sample_delay_ms=nan: must be >= 0 milliseconds"),
    (["data.image_size=0"], "data.image_size=0: must be >= 1"),
    (["data.decoder=torchvision"], "data.decoder=torchvision decodes JPEG files: use it with data=imagefolder"),
    (["data.decoder=nvjpeg"], "data.decoder=nvjpeg decodes JPEG files: use it with data=imagefolder"),
    (["data.pipeline=tensor", "data.collate_fn=mypkg.collate"], "use data.pipeline=pil with a collate_fn"),
    (["data=imagefolder", "data.decoder=nvjpeg", "data.collate_fn=mypkg.collate"], "set data.collate_fn=null"),
    (["model.num_classes=0"], "model.num_classes=0: must be >= 1"),
    (["model.width=-1"], "model.width=-1: channels of the tiny CNN's first layer, must be >= 1"),
    (["model.width=0"], "model.width=0: channels of the tiny CNN's first layer, must be >= 1"),
    (["+loader.batchsize=64"], "loader.batchsize: not a loader setting; did you mean loader.batch_size?"),
    (["+train.epoch=2"], "train.epoch: not a train setting; did you mean train.epochs?"),
    (["+data.trainsize=64"], "data.trainsize: not a data setting; did you mean data.train_size?"),
    (["+model.widht=4"], "model.widht: not a model setting; did you mean model.width?"),
]

# what `python -m pinsweep` refuses before Hydra composes anything: a misspelt key and its nearest real one
MISSPELT = [
    ("loader.batchsize=64", "loader.batchsize: not a loader setting; did you mean loader.batch_size?"),
    ("loader.numworkers=0,2", "loader.numworkers: not a loader setting; did you mean loader.num_workers?"),
    ("loader.pinmemory=true", "loader.pinmemory: not a loader setting; did you mean loader.pin_memory?"),
    ("loader.prefetch=2", "loader.prefetch: not a loader setting; did you mean loader.prefetch_factor?"),
    ("train.epoch=2", "train.epoch: not a train setting; did you mean train.epochs?"),
    ("train.learning_rate=1", "train.learning_rate: not a train setting; the train keys are in pinsweep/config.py"),
    ("data.trainsize=3", "data.trainsize: not a data setting; did you mean data.train_size?"),
    ("model.widht=3", "model.widht: not a model setting; did you mean model.width?"),
    ("loader.zzz=2", "loader.zzz: not a loader setting; the loader keys are in pinsweep/config.py"),
]
# what is Hydra's to judge, not a misspelt key
PASSED_ON = [
    "loader.batch_size=64",
    "model=tiny",
    "experiment=quick",
    "+data.kwargs.size=4",
    "data.kwargs.size=4",
    "~train.timeout_s",
    "hydra.sweep.dir=/tmp/x",
    "hydra/launcher=local",
    "-m",
    "--config-dir=conf",
    "isolate=false",
]


@pytest.mark.parametrize(("overrides", "words"), REFUSED, ids=[" ".join(o) for o, _ in REFUSED])
def test_each_config_that_cannot_run_is_one_line_naming_the_key_and_the_fix(compose_cfg, overrides, words):
    cfg = compose_cfg("data=synthetic", "model=tiny", *overrides)
    with pytest.raises(ConfigError) as refused:
        validate(cfg)
    line = str(refused.value)
    assert words in line and "\n" not in line


@pytest.mark.parametrize(("argument", "line"), MISSPELT)
def test_a_misspelt_key_is_refused_with_the_nearest_real_one(argument, line):
    assert misspelt_override(argument) == line


@pytest.mark.parametrize("argument", PASSED_ON)
def test_group_choices_appends_and_hydras_own_keys_are_left_to_hydra(argument):
    assert misspelt_override(argument) is None


def test_the_command_refuses_a_misspelt_key_at_once_in_one_line_not_with_hydras_plus_advice(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pinsweep", "-m", "loader.batchsize=64", "loader.num_workers=0,2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "pinsweep: loader.batchsize: not a loader setting; did you mean loader.batch_size?"
    assert not (tmp_path / "multirun").exists()  # refused before Hydra made a sweep folder


# ----------------------------------------------------------------------------- found at the first batch


def none_collate(samples):
    return None


class EmptySplit(torch.utils.data.Dataset):
    def __init__(self, train=True):
        pass

    def __len__(self):
        return 0

    def __getitem__(self, index):
        raise IndexError(index)


class TextSamples(EmptySplit):
    def __len__(self):
        return 64

    def __getitem__(self, index):
        return "some text", 1


class NoParameters(torch.nn.Module):
    def forward(self, images):
        return images.flatten(1)[:, :10]


# (overrides, words): a job that cannot train, found before or at its first step, is an invalid row
FIRST_BATCH = [
    ([f"data.collate_fn={__name__}.none_collate"], "made a batch of None: a collate_fn must return the batch"),
    (["data=custom", f"data._target_={__name__}.EmptySplit"], "the train split of data=custom has no samples"),
    (["data=custom", f"data._target_={__name__}.TextSamples"], "takes (images, labels) batches of tensors"),
    (["model=custom", f"model._target_={__name__}.NoParameters"], "has no parameter to train"),
    (["model.num_classes=2"], "model.num_classes=2: the batch holds label 9"),
    (["data.train_size=100", "loader.batch_size=128"], "loader.batch_size=128 is larger than the train split's 100"),
]


@pytest.mark.parametrize(("overrides", "words"), FIRST_BATCH, ids=[" ".join(o) for o, _ in FIRST_BATCH])
def test_a_job_that_cannot_train_is_an_invalid_row_naming_the_key(compose_cfg, tiny_job, tmp_path, overrides, words):
    row = run_and_record(compose_cfg(*tiny_job, "isolate=false", "train.ceiling_steps=0", *overrides), tmp_path)
    assert row["status"] == "invalid" and words in row["error"], row["error"]
