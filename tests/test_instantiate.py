"""data=custom, model=custom and data.collate_fn built as hydra.utils.instantiate builds them (issue 26):
any callable as `_target_` (a class, a factory function), nested `_target_`s, `_partial_` and `_args_`,
plain dicts for your code; per-split arguments (data.train_kwargs / data.test_kwargs over data.kwargs);
a collate_fn node; an import or build failure as one ConfigError line with its real cause; what is built
reaches spawned DataLoader workers. The callables below are module level, so a spawned worker imports
them as it unpickles what was built."""

from __future__ import annotations

import functools
import logging
import pickle

import pytest
import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from pinsweep.app import run_and_record
from pinsweep.config import ConfigError, validate
from pinsweep.input.data import build_datasets
from pinsweep.input.loader import user_collate
from pinsweep.job.model import build_model

HERE = __name__


class Scale:
    """A transform: multiplies a sample by `factor`."""

    def __init__(self, factor: float):
        self.factor = factor

    def __call__(self, value: torch.Tensor) -> torch.Tensor:
        return value * self.factor


def shift(value: torch.Tensor, by: float) -> torch.Tensor:
    """A transform meant as a partial (`_partial_: true` with `by`)."""
    return value + by


class Numbers(Dataset):
    """Samples `first, first+1, ...` as 1-element tensors, transformed; `options` records how a nested
    dict arrives."""

    def __init__(self, size: int, first: int = 0, transform=None, options=None):
        self.size, self.first, self.transform, self.options = size, first, transform, options

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> torch.Tensor:
        value = torch.tensor([float(self.first + index)])
        return self.transform(value) if self.transform else value


def numbers(size: int, first: int = 0, transform=None) -> Numbers:
    """A factory function returning the dataset, as datasets.load_from_disk or a user's factory does."""
    return Numbers(size, first, transform)


class Stream(IterableDataset):
    """Three samples, and no __len__."""

    def __iter__(self):
        return iter(torch.arange(3.0).unsqueeze(1))


class Pad:
    """A collate_fn object with a nested part (as DataCollatorWithPadding holds a tokenizer)."""

    def __init__(self, filler: Scale, width: int):
        self.filler, self.width = filler, width

    def __call__(self, samples: list[torch.Tensor]) -> torch.Tensor:
        batch = torch.stack(samples)
        padding = self.filler(torch.ones(len(samples), self.width - batch.shape[1]))
        return torch.cat([batch, padding], dim=1)


def stack_plus(samples: list[torch.Tensor], plus: float) -> torch.Tensor:
    return torch.stack(samples) + plus


class Config:
    """A model's configuration object (as transformers' BertConfig)."""

    def __init__(self, width: int, settings: dict):
        self.width, self.settings = width, settings


class Net(nn.Module):
    def __init__(self, config: Config, num_classes: int = 3):
        super().__init__()
        self.config = config
        self.head = nn.Linear(config.width, num_classes)


def make_net(config: Config, **kwargs) -> Net:
    """A factory taking **kwargs, as timm.create_model does."""
    return Net(config, **kwargs)


def not_a_model() -> str:
    return "no network"


def forgets_to_return(size: int) -> None:
    Numbers(size)


def raises(size: int) -> Dataset:
    raise FileNotFoundError(f"no shard holds {size} samples")


def numbers_cfg(compose_cfg, *overrides: str) -> DictConfig:
    return compose_cfg("data=custom", f"data._target_={HERE}.numbers", "+data.kwargs.size=4", *overrides)


# --------------------------------------------------------------------------------------------- data


def test_a_factory_function_builds_each_split_with_its_own_arguments(compose_cfg, caplog):
    cfg = numbers_cfg(
        compose_cfg,
        "data.split_arg=null",
        f"+data.kwargs.transform={{_target_: {HERE}.Scale, factor: 2}}",
        "+data.test_kwargs.first=100",
        f"+data.test_kwargs.transform={{_target_: {HERE}.shift, _partial_: true, by: 0.5}}",
    )
    validate(cfg)
    with caplog.at_level(logging.INFO, logger="pinsweep.input.data"):
        train, test = build_datasets(cfg.data)
    # the train split: kwargs alone, its transform a Scale built from the nested node
    assert isinstance(train.transform, Scale) and [float(train[i]) for i in range(4)] == [0.0, 2.0, 4.0, 6.0]
    # the test split: test_kwargs' keys over kwargs', its transform replaced whole by a partial
    assert isinstance(test.transform, functools.partial) and test.transform.func is shift
    assert [float(test[i]) for i in range(4)] == [100.5, 101.5, 102.5, 103.5]
    assert "data: custom, train 4 samples, test 4 samples" in caplog.text


def test_split_arg_null_without_test_kwargs_has_no_test_split(compose_cfg):
    train, test = build_datasets(numbers_cfg(compose_cfg, "data.split_arg=null", "+data.train_kwargs.first=7").data)
    assert float(train[0]) == 7.0
    assert test is None


def test_split_arg_still_builds_both_splits_from_a_class(compose_cfg):
    cfg = compose_cfg(
        "data=custom",
        "data._target_=pinsweep.input.data.SyntheticCIFAR10",
        "+data.kwargs.size=4",
        "+data.kwargs.seed=0",
        "+data.test_kwargs.size=2",  # per-split arguments combine with the boolean
    )
    train, test = build_datasets(cfg.data)
    assert (len(train), len(test)) == (4, 2)


def test_your_code_receives_plain_dicts_and_lists(compose_cfg):
    cfg = numbers_cfg(compose_cfg, "data.split_arg=null", "+data.kwargs.options={depth: {levels: [1, 2]}}")
    cfg.data._target_ = f"{HERE}.Numbers"
    train, _ = build_datasets(cfg.data)
    assert type(train.options) is dict and type(train.options["depth"]["levels"]) is list


def test_a_stream_is_logged_without_asking_its_length(compose_cfg, caplog):
    cfg = compose_cfg("data=custom", f"data._target_={HERE}.Stream", "data.split_arg=null")
    with caplog.at_level(logging.INFO, logger="pinsweep.input.data"):
        train, test = build_datasets(cfg.data)
    assert isinstance(train, Stream) and test is None
    assert "data: custom, train streaming, test none" in caplog.text


# -------------------------------------------------------------------------------------------- model


def test_a_model_gets_a_nested_config_object_and_num_classes_by_name(compose_cfg):
    cfg = compose_cfg(
        "model=custom",
        f"model._target_={HERE}.Net",
        f"+model.kwargs.config={{_target_: {HERE}.Config, width: 5, settings: {{a: [1]}}}}",
        "model.num_classes=7",
    )
    model = build_model(cfg.model)
    assert type(model.config) is Config and type(model.config.settings) is dict
    assert (model.head.in_features, model.head.out_features) == (5, 7)  # num_classes: Net names it


def test_num_classes_given_in_args_or_kwargs_is_not_added_again(compose_cfg):
    config = f"{{_target_: {HERE}.Config, width: 2, settings: {{}}}}"
    positional = compose_cfg("model=custom", f"model._target_={HERE}.Net", f"+model.kwargs._args_=[{config}, 4]")
    assert build_model(positional.model).head.out_features == 4
    named = compose_cfg(
        "model=custom", f"model._target_={HERE}.Net", f"+model.kwargs.config={config}", "+model.kwargs.num_classes=6"
    )
    assert build_model(named.model).head.out_features == 6


def test_a_factory_with_kwargs_gets_num_classes_only_when_asked(compose_cfg, caplog):
    overrides = ("model=custom", f"model._target_={HERE}.make_net", "+model.kwargs.config._target_=" + f"{HERE}.Config")
    overrides += ("+model.kwargs.config.width=2", "+model.kwargs.config.settings={}", "model.num_classes=9")
    with caplog.at_level(logging.INFO, logger="pinsweep.job.model"):
        unasked = build_model(compose_cfg(*overrides).model)
    assert unasked.head.out_features == 3  # the factory's own default: not model.num_classes, unasked
    assert "+model.kwargs.num_classes=9 passes it" in caplog.text
    assert build_model(compose_cfg(*overrides, "+model.kwargs.num_classes=9").model).head.out_features == 9


# ------------------------------------------------------------------------------------------ collate


def test_a_collate_node_is_built_with_its_nested_parts(compose_cfg):
    cfg = compose_cfg("data=custom", f"data.collate_fn={{_target_: {HERE}.Pad, width: 3, filler: {{_target_: "
                      f"{HERE}.Scale, factor: -1}}}}")  # fmt: skip
    validate(cfg)
    collate = user_collate(cfg.data)
    assert collate([torch.tensor([1.0]), torch.tensor([2.0])]).tolist() == [[1, -1, -1], [2, -1, -1]]


def test_a_partial_collate_is_a_plain_partial_of_the_function(compose_cfg):
    cfg = compose_cfg("data=custom", f"+data.collate_fn={{_target_: {HERE}.stack_plus, _partial_: true, plus: 1}}")
    collate = user_collate(cfg.data)
    assert type(collate) is functools.partial and collate.func is stack_plus
    assert collate([torch.tensor([1.0])]).tolist() == [[2.0]]
    assert user_collate(compose_cfg("data=custom", f"data.collate_fn={HERE}.stack_plus").data) is stack_plus


def test_what_is_built_reaches_a_spawned_worker(compose_cfg):
    """A dataset and a collate_fn built from nested `_target_`s pickle, and a worker started by spawn (a
    fresh interpreter: it imports every class as it unpickles) yields the batches the main process does."""
    cfg = numbers_cfg(
        compose_cfg,
        "data.split_arg=null",
        f"+data.kwargs.transform={{_target_: {HERE}.Scale, factor: 3}}",
        f"data.collate_fn={{_target_: {HERE}.Pad, width: 2, filler: {{_target_: {HERE}.Scale, factor: 0}}}}",
    )
    train, _ = build_datasets(cfg.data)
    collate = user_collate(cfg.data)
    assert pickle.loads(pickle.dumps(train))[3].tolist() == [9.0]
    in_process = [batch.tolist() for batch in DataLoader(train, batch_size=2, collate_fn=collate)]
    spawned = DataLoader(train, batch_size=2, collate_fn=collate, num_workers=1, multiprocessing_context="spawn")
    assert [batch.tolist() for batch in spawned] == in_process == [[[0, 0], [3, 0]], [[6, 0], [9, 0]]]


# -------------------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (("data._target_=nope.Nope",), ["data._target_=nope.Nope: does not import", "No module named 'nope'"]),
        (
            ("data.split_arg=null", "+data.train_kwargs.transform._target_=nope.T"),
            ["data.train_kwargs.transform._target_=nope.T: does not import", "No module named 'nope'"],
        ),
        (
            (f"+data.kwargs.transform={{_target_: {HERE}.Scale, factr: 2}}",),
            [f"data.kwargs.transform._target_={HERE}.Scale: building the train split raised TypeError", "factr"],
        ),
        (
            (f"data._target_={HERE}.raises",),
            [f"data._target_={HERE}.raises: building the train split raised FileNotFoundError: no shard holds 4"],
        ),
        (
            (f"data._target_={HERE}.Numbers", "data.split_arg=train"),  # the default, which Numbers does not take
            ["data.split_arg=train:", "takes no train argument", "data.split_arg=null", "data.test_kwargs"],
        ),
        (
            (f"data._target_={HERE}.forgets_to_return",),
            [f"data._target_={HERE}.forgets_to_return returned a NoneType, not a dataset"],
        ),
        (("data.collate_fn=nope.collate",), ["data.collate_fn=nope.collate: not an importable function", "'nope'"]),
        (("+data.collate_fn._target_=nope.Collate",), ["data.collate_fn._target_=nope.Collate: does not import"]),
        ((f"+data.collate_fn={{_target_: {HERE}.Config, width: 1, settings: {{}}}}",), ["cannot be called"]),
    ],
)
def test_a_data_callable_that_does_not_import_or_build_is_one_line_with_its_cause(compose_cfg, overrides, words):
    cfg = numbers_cfg(compose_cfg, "data.split_arg=null", *overrides)
    validate(cfg)
    with pytest.raises(ConfigError) as caught:
        build_datasets(cfg.data)
        user_collate(cfg.data)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (("model._target_=nope.Net",), ["model._target_=nope.Net: does not import", "No module named 'nope'"]),
        (
            (f"model._target_={HERE}.Net", f"+model.kwargs.config={{_target_: {HERE}.Config, width: 2}}"),
            [f"model.kwargs.config._target_={HERE}.Config: building the model raised TypeError", "settings"],
        ),
        ((f"model._target_={HERE}.not_a_model",), [f"{HERE}.not_a_model returned a str, not a torch.nn.Module"]),
    ],
)
def test_a_model_that_does_not_import_or_build_is_one_line_with_its_cause(compose_cfg, overrides, words):
    with pytest.raises(ConfigError) as caught:
        build_model(compose_cfg("model=custom", *overrides).model)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (("data=custom", "+data.kwargs._target_=x.Y"), ["data.kwargs._target_:", "remove data.kwargs._target_"]),
        (
            ("model=custom", "+model.kwargs._partial_=true"),
            ["model.kwargs._partial_:", "remove model.kwargs._partial_"],
        ),
        (("data=custom", "+data.test_kwargs.train=false"), ["data.test_kwargs.train: data.split_arg=train already"]),
        (("data=custom", "data.collate_fn=3"), ["data.collate_fn=3: give the dotted path of a function", "_target_"]),
        (("data=custom", "data.collate_fn={size: 3}"), ["data.collate_fn={'size': 3}: give the dotted path"]),
        (("data=synthetic", "+data.train_kwargs.size=3"), ["data.train_kwargs builds your own data", "data=custom"]),
        (("model=tiny", "model._target_=x.Net"), ["model._target_ builds your own model", "model=custom"]),
    ],
)
def test_combinations_that_cannot_mean_anything_are_refused_by_validate(compose_cfg, overrides, words):
    with pytest.raises(ConfigError) as caught:
        validate(compose_cfg(*overrides))
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


def test_a_dataset_that_does_not_import_is_an_invalid_row_with_the_cause(compose_cfg, tiny_job, tmp_path):
    row = run_and_record(compose_cfg(*tiny_job, "isolate=false", "data=custom", "data._target_=nope.Nope"), tmp_path)
    assert row["status"] == "invalid"
    assert row["error"] == (
        "ConfigError: data._target_=nope.Nope: does not import (ModuleNotFoundError: No module named 'nope'): "
        "give an importable dotted path"
    )
