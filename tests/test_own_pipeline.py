"""Your own pipeline (issue 18): any batch structure reaches your step on the device, counted in your
unit; the optimizer, the evaluation and the model's arguments are yours; options that cannot act on
your batch are refused; a planted per-sample cost in a dict-batch pipeline is found as the data wait."""

from __future__ import annotations

import math
import os
from collections import namedtuple
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from pinsweep.analysis.summarize import OVERALL, Effect, Tables, summarize
from pinsweep.app import run_and_record
from pinsweep.config import ConfigError, validate
from pinsweep.input.batch import Mover, PinAll, PinnableCollate, first_dim, holds_dataclass, tensors
from pinsweep.input.data import build_datasets
from pinsweep.input.loader import build_input
from pinsweep.job import step as steps
from pinsweep.job.model import build_model
from pinsweep.job.train import Trainer, train
from pinsweep.present.advice import advise
from pinsweep.record import read_rows

CPU = torch.device("cpu")
SIZE, BATCH = 32, 8


@dataclass
class Extras:
    """A dataclass of tensors inside the batch: DataLoader's own pinning passes over it."""

    weights: torch.Tensor
    offsets: torch.Tensor


class Indices(Dataset):
    """Samples are their indices; the collate_fn below builds the structured batch from them."""

    def __init__(self, size: int = SIZE, train: bool = True):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


def structured_collate(indices: list[int]) -> dict:
    """A batch holding a dict, a list and a dataclass of tensors."""
    index = torch.tensor(indices)
    return {
        "features": {"x": torch.randn(len(indices), 4), "y": index.float()},
        "parts": [torch.ones(len(indices), 2), index],
        "extras": Extras(torch.rand(len(indices)), index * 2),
    }


SEEN: list[dict] = []  # what each step received (the job runs in this process: isolate=false)


def structured_step(model: nn.Module, batch: dict) -> torch.Tensor:
    SEEN.append(
        {
            "types": (type(batch), type(batch["features"]), type(batch["parts"]), type(batch["extras"])),
            "devices": {t.device.type for t in tensors(batch)},
        }
    )
    prediction = model(batch["features"]["x"]).squeeze(1)
    return ((prediction - batch["features"]["y"]) ** 2 * batch["extras"].weights).mean()


def structured(*overrides: str) -> tuple[str, ...]:
    return (
        "data=custom",
        f"data._target_={__name__}.Indices",
        f"data.collate_fn={__name__}.structured_collate",
        "model=custom",
        "model._target_=torch.nn.Linear",  # takes no num_classes: built from kwargs alone
        "+model.kwargs.in_features=4",
        "+model.kwargs.out_features=1",
        f"train.step={__name__}.structured_step",
        f"loader.batch_size={BATCH}",
        "train.epochs=2",
        "train.ceiling_steps=2",
        "train.ceiling_budget_s=0.2",
        "isolate=false",
        *overrides,
    )


def test_a_batch_of_dicts_lists_and_dataclasses_reaches_the_step_on_the_device(compose_cfg, tmp_path):
    SEEN.clear()
    row = run_and_record(compose_cfg(*structured("train.device=cpu", "loader.num_workers=2")), tmp_path)
    assert row["status"] == "ok", row["error"]
    assert SEEN and all(seen["types"] == (dict, dict, list, Extras) for seen in SEEN)
    assert all(seen["devices"] == {"cpu"} for seen in SEEN)
    # custom data under a custom step: samples, counted as the first dimension of the first tensor
    assert row["unit"] == "samples" and "images_per_s" not in row
    assert row["items_timed"] == row["steps_timed"] * BATCH
    assert row["throughput"] == pytest.approx(row["items_timed"] / row["steady_s"])
    assert row["compute_ceiling_ips"] > 0 and row["loader_ceiling_ips"] > 0
    # no eval_step: the test split's figure is the mean loss of the step itself
    assert math.isfinite(row["test_loss"]) and "test_accuracy" not in row


def test_the_compute_ceiling_runs_on_a_whole_batch_not_an_epochs_short_last_one(compose_cfg):
    cfg = compose_cfg(*structured("train.device=cpu", "+data.kwargs.size=36", "train.epochs=1"))
    train_set, _ = build_datasets(cfg.data)
    trainer = Trainer(build_model(cfg.model), cfg, CPU)
    _, batch = train(trainer, build_input(train_set, cfg.data, cfg.loader, CPU, True, 0), cfg)
    assert batch["features"]["x"].shape[0] == BATCH  # 36 samples = 4 x 8 + 4: not the last 4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; this machine has no GPU")
def test_with_pin_memory_every_tensor_of_a_structured_batch_is_pinned(compose_cfg, tmp_path, monkeypatch):
    SEEN.clear()
    pinned = []
    move = Trainer.to_device

    def watch(self, batch):
        pinned.append([t.is_pinned() for t in tensors(batch)])
        return move(self, batch)

    monkeypatch.setattr(Trainer, "to_device", watch)
    cfg = compose_cfg(*structured("loader.pin_memory=true", "loader.non_blocking=true", "loader.num_workers=2"))
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["pin_memory_active"] is True
    assert len(pinned) >= row["steps"] and all(len(flags) == 6 and all(flags) for flags in pinned)
    assert SEEN and all(seen["types"] == (dict, dict, list, Extras) for seen in SEEN)
    assert all(seen["devices"] == {"cuda"} for seen in SEEN)


# ------------------------------------------------------------------------------------------ the walk

Pair = namedtuple("Pair", "first second")


class MovesItself:
    """An object that moves itself: the walk calls its .to and keeps what it returns."""

    def __init__(self):
        self.calls = []

    def to(self, device, non_blocking=False):
        self.calls.append((device, non_blocking))
        return "moved"


def test_the_mover_keeps_every_structure_and_asks_objects_to_move_themselves():
    mover = Mover(CPU, non_blocking=True, channels_last=True)
    itself = MovesItself()
    batch = {
        "pair": Pair(torch.zeros(2, 3, 4, 5), torch.zeros(2, 3, 4, 5, dtype=torch.long)),
        "tuple": (torch.zeros(2, 5),),
        "extras": Extras(torch.zeros(2, 3, 4, 5), torch.zeros(2)),
        "object": itself,
        "text": "kept",
    }
    moved = mover(batch)
    assert isinstance(moved["pair"], Pair) and isinstance(moved["extras"], Extras) and type(moved["tuple"]) is tuple
    assert moved["text"] == "kept" and moved["object"] == "moved" and itself.calls == [(CPU, True)]
    # channels_last: 4-D floating tensors only (images); integer ids and other shapes keep their layout
    assert moved["pair"].first.is_contiguous(memory_format=torch.channels_last)
    assert not moved["pair"].first.is_contiguous()
    assert moved["pair"].second.is_contiguous() and moved["extras"].weights.is_contiguous(
        memory_format=torch.channels_last
    )
    assert batch["extras"].weights.is_contiguous()  # the host batch is not changed in place


def test_the_default_count_is_the_first_dimension_of_the_first_tensor():
    assert first_dim({"input_ids": torch.zeros(5, 7), "labels": torch.zeros(5)}) == 5
    assert first_dim([Extras(torch.zeros(3), torch.zeros(9))]) == 3
    with pytest.raises(ConfigError, match=r"train\.count"):
        first_dim({"text": "no tensor"})


def test_only_batches_holding_dataclasses_travel_to_the_pin_thread_wrapped():
    collate = PinnableCollate(structured_collate)
    assert isinstance(collate([0, 1]), PinAll)
    assert holds_dataclass([Extras(torch.zeros(1), torch.zeros(1))])
    plain = PinnableCollate(lambda samples: (torch.zeros(2), torch.zeros(2)))([0, 1])
    assert isinstance(plain, tuple)  # DataLoader's own pinning handles it as before
    wrapped = PinAll({"x": torch.zeros(2)})
    assert Mover(CPU, False, False)(wrapped)["x"].shape == (2,)  # never pinned: the batch inside moves


# ------------------------------------------------------------------------------- what is configurable


def test_the_optimizer_is_a_hydra_partial_with_train_lr(compose_cfg):
    cfg = compose_cfg(
        "model=tiny", "data=synthetic", "train.lr=0.05", "train.optimizer._target_=torch.optim.SGD",
        "+train.optimizer.momentum=0.9",
    )  # fmt: skip
    trainer = Trainer(build_model(cfg.model), cfg, CPU)
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    assert trainer.optimizer.defaults["lr"] == 0.05 and trainer.optimizer.defaults["momentum"] == 0.9
    own_lr = compose_cfg("model=tiny", "data=synthetic", "+train.optimizer.lr=0.2")
    assert Trainer(build_model(own_lr.model), own_lr, CPU).optimizer.defaults["lr"] == 0.2
    default = compose_cfg("model=tiny", "data=synthetic")
    assert type(Trainer(build_model(default.model), default, CPU).optimizer) is torch.optim.Adam
    missing = compose_cfg("model=tiny", "data=synthetic", "train.optimizer._target_=torch.optim.Nope")
    with pytest.raises(
        ConfigError, match=r"train\.optimizer\._target_=torch\.optim\.Nope: does not import \(ModuleNotFoundError"
    ):
        Trainer(build_model(missing.model), missing, CPU)  # the cause kept in the line, not cut after Hydra's


class TakesNumClasses(nn.Module):
    def __init__(self, num_classes: int, width: int = 2):
        super().__init__()
        self.head = nn.Linear(width, num_classes)


def test_a_custom_model_gets_num_classes_only_where_it_takes_it(compose_cfg):
    linear = compose_cfg("model=custom", "model._target_=torch.nn.Linear", "+model.kwargs.in_features=3",
                         "+model.kwargs.out_features=2")  # fmt: skip
    assert build_model(linear.model).out_features == 2
    classifier = compose_cfg("model=custom", f"model._target_={__name__}.TakesNumClasses", "model.num_classes=7")
    assert build_model(classifier.model).head.out_features == 7


def test_unit_defaults_follow_the_data_and_the_step(compose_cfg):
    assert steps.unit_of(compose_cfg("data=synthetic")) == "images"
    assert steps.unit_of(compose_cfg("data=custom")) == "images"  # the classification step's batches are images
    assert steps.unit_of(compose_cfg("data=custom", "train.step=mypkg.step")) == "samples"
    assert steps.unit_of(compose_cfg("data=custom", "train.step=mypkg.step", "train.unit=tokens")) == "tokens"


def test_a_function_that_cannot_be_imported_is_an_invalid_row(compose_cfg, tiny_job, tmp_path):
    row = run_and_record(compose_cfg(*tiny_job, "isolate=false", "train.step=nowhere.step"), tmp_path)
    assert row["status"] == "invalid"
    assert row["error"].startswith("ConfigError: train.step=nowhere.step: not an importable function")


def vector_loss(model: nn.Module, batch) -> torch.Tensor:
    images, labels = batch
    return nn.functional.cross_entropy(model(images), labels, reduction="none")  # one loss per sample


def test_a_step_that_returns_no_scalar_loss_is_an_invalid_row(compose_cfg, tiny_job, tmp_path):
    row = run_and_record(compose_cfg(*tiny_job, "isolate=false", f"train.step={__name__}.vector_loss"), tmp_path)
    assert row["status"] == "invalid"
    assert "returned a tensor of shape (64,): it must return the loss as a scalar tensor" in row["error"]


# ------------------------------------------------------------------------- options that cannot apply


TEXTS = (
    "data=custom",
    "data._target_=examples.text_classify.data.VariableLengthTexts",
    "+data.kwargs.size=64",
    "+data.kwargs.max_len=16",
    "model=custom",
    "model._target_=examples.text_classify.model.MeanPoolClassifier",
    "+model.kwargs.dim=8",
    "train.step=examples.text_classify.steps.step",
    "train.count=examples.text_classify.steps.count_real_tokens",
    "train.unit=tokens",
    "loader.batch_size=16",
    "train.epochs=1",
    "train.ceiling_steps=0",
    "train.evaluate=false",
    "isolate=false",
)


def test_channels_last_on_a_batch_without_images_is_an_invalid_row(compose_cfg, tmp_path):
    cfg = compose_cfg(*TEXTS, "data.collate_fn=examples.text_classify.data.pad_collate", "train.channels_last=true")
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "invalid"
    assert row["error"] == (
        "ConfigError: train.channels_last=true lays out 4-D image batches (N, C, H, W) and this batch holds none: "
        "set train.channels_last=false"
    )


@pytest.mark.parametrize("pipeline", ["tensor", "device"])
def test_the_tensor_pipelines_on_a_dataset_without_uint8_images_are_an_invalid_row(compose_cfg, tmp_path, pipeline):
    row = run_and_record(compose_cfg(*TEXTS, f"data.pipeline={pipeline}"), tmp_path)
    assert row["status"] == "invalid"
    assert "needs a dataset with uint8 images in .data (N, H, W, C) and .targets" in row["error"]
    assert row["error"].endswith("VariableLengthTexts has none: set data.pipeline=pil")
    with pytest.raises(ConfigError, match=r"use data\.pipeline=pil with a collate_fn, or set data\.collate_fn=null"):
        validate(compose_cfg(*TEXTS, f"data.pipeline={pipeline}", "data.collate_fn=mypkg.collate"))


# --------------------------------------------------------------------- a planted cost in dict batches

SAMPLE_DELAY_MS = 40.0  # as tests/test_ceilings.py: few, long sleeps hold on a busy 2-core machine
PLANTED_BATCH = 2
TOLERANCE = 0.08


@pytest.fixture
def one_intra_op_thread():
    """As in tests/test_ceilings.py: the planted cost is a sleep; one thread keeps the real work beside it
    from waiting on the other tests' threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.alone
def test_a_planted_loading_cost_in_dict_batches_is_the_data_wait_and_workers_hide_it(
    compose_cfg, tmp_path, one_intra_op_thread
):
    planted = (
        *TEXTS,
        "data.collate_fn=examples.text_classify.data.pad_collate",
        "data.kwargs.size=20",
        f"+data.kwargs.sample_delay_ms={SAMPLE_DELAY_MS}",
        f"loader.batch_size={PLANTED_BATCH}",
        # one epoch of 10 steps, the first 2 the warm-up (the workers start in them): the 8 timed steps of
        # two epochs of 8, at 10 steps' time, not 16, and one start of the workers a job, not two
        "train.epochs=1",
        "train.warmup_steps=2",
        "train.device=cpu",
    )
    jobs = [(r, w) for r in range(3) for w in (0, 2)]  # three rounds, both configs in each
    for num, (repeat, workers) in enumerate(jobs):
        cfg = compose_cfg(*planted, f"train.repeat={repeat}", f"loader.num_workers={workers}")
        row = run_and_record(cfg, tmp_path / str(num), num, f"loader.num_workers={workers} train.repeat={repeat}")
        assert row["status"] == "ok", row["error"]
        assert row["unit"] == "tokens" and row["items_timed"] > 0
        if workers == 0:  # every step waits for its samples, one after another, then pads them
            assert row["steps_timed"] == 8  # 10 steps, 2 of them the warm-up
            per_step = row["data_wait_s"] / row["steps_timed"]
            assert per_step == pytest.approx(PLANTED_BATCH * SAMPLE_DELAY_MS / 1000, rel=TOLERANCE)
    rows = read_rows(tmp_path)
    summary, effects = summarize(rows)
    assert list(summary["n"]) == [3, 3]
    workers = effects[(effects["axis"] == "loader.num_workers") & (effects["held_fixed"] == OVERALL)].iloc[0]
    if len(os.sched_getaffinity(0)) >= 2:  # two workers overlap the sleeps only where they can run at once
        assert workers["effect"] == Effect.FASTER and workers["ratio"] > 1.3, workers.to_dict()
    serial = summary[summary["loader.num_workers"] == "0"].iloc[0]
    assert serial["verdict"] == "loader-bound"
    # the advice for a loader-bound pipeline of your own never proposes what cannot act on it
    advice = advise(Tables(summary, effects, rows))
    words = " ".join([*advice.sentences, *(sweep.command for sweep in advice.commands)])
    assert "data.pipeline" not in words and "channels_last" not in words
