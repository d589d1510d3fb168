"""Config composition from the real conf/: every group option, typed overrides, validate()."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ValidationError

from pinsweep.config import GROUP_SCHEMAS, Config, ConfigError, validate
from pinsweep.input.data import SyntheticCIFAR10, build_datasets
from pinsweep.job.model import TinyCNN, build_model
from pinsweep.record import flatten_config

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def test_default_config_is_the_notebooks_setup(compose_cfg):
    cfg = compose_cfg()
    assert cfg.model.name == "resnet34"
    assert cfg.data.name == "cifar10"
    assert (cfg.data.root, cfg.data.download) == ("data", True)
    assert OmegaConf.to_container(cfg.loader) == {
        "batch_size": 256,
        "num_workers": 0,
        "pin_memory": False,
        "non_blocking": False,
        "persistent_workers": False,
        "prefetch_factor": None,
        "shuffle": True,
        "drop_last": False,
        # what the notebook did not have, at what it did: a DataLoader, copies inside the step
        "in_order": True,
        "device_prefetch": 0,
        "engine": "dataloader",
        "worker_type": "process",
        "worker_threads": None,
    }
    train = cfg.train
    assert (train.epochs, train.lr, train.seed, train.device) == (10, 0.001, 1, "auto")
    assert train.deterministic is True and train.evaluate is True and train.train_accuracy_pass is False
    assert cfg.resume is True
    validate(cfg)


def test_every_group_is_typed_by_its_schema(compose_cfg):
    cfg = compose_cfg()
    for group in ("model", "data", "loader", "train"):
        assert OmegaConf.get_type(cfg[group]).__name__ == f"{group.capitalize()}Config"


@pytest.mark.parametrize("name", ["resnet34", "resnet18", "tiny"])
def test_model_options_compose(compose_cfg, name):
    cfg = compose_cfg(f"model={name}")
    assert cfg.model.name == name
    assert cfg.model.num_classes == 10


@pytest.mark.parametrize(
    ("name", "expected_class"), [("resnet34", "ResNet"), ("resnet18", "ResNet"), ("tiny", "TinyCNN")]
)
def test_model_options_build_a_ten_class_network(compose_cfg, name, expected_class):
    model = build_model(compose_cfg(f"model={name}").model)
    assert type(model).__name__ == expected_class
    head = model.fc if expected_class == "ResNet" else model.head
    assert head.out_features == 10


def test_resnet_depths_differ(compose_cfg):
    # torchvision's ResNet-34 has 3-4-6-3 basic blocks, ResNet-18 has 2-2-2-2
    resnet34 = build_model(compose_cfg("model=resnet34").model)
    resnet18 = build_model(compose_cfg("model=resnet18").model)
    assert [len(resnet34.get_submodule(f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert [len(resnet18.get_submodule(f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]


def test_custom_model_is_built_from_its_target(compose_cfg):
    cfg = compose_cfg("model=custom", "model._target_=pinsweep.job.model.TinyCNN", "+model.kwargs.width=4")
    assert cfg.model.name == "custom"
    model = build_model(cfg.model)
    assert isinstance(model, TinyCNN)
    assert model.features[0].out_channels == 4


def test_custom_model_without_a_target_says_what_to_set(compose_cfg):
    with pytest.raises(ConfigError, match=r"model\._target_"):
        build_model(compose_cfg("model=custom").model)


@pytest.mark.parametrize("name", ["cifar10", "synthetic"])
def test_data_options_compose(compose_cfg, name):
    assert compose_cfg(f"data={name}").data.name == name


def test_synthetic_data_defaults_to_cifar10_sizes(compose_cfg):
    data = compose_cfg("data=synthetic").data
    assert (data.train_size, data.test_size) == (50000, 10000)


def test_custom_data_builds_both_splits_from_its_target(compose_cfg):
    cfg = compose_cfg(
        "data=custom",
        "data._target_=pinsweep.input.data.SyntheticCIFAR10",
        "+data.kwargs.size=16",
        "+data.kwargs.seed=3",
    )
    train, test = build_datasets(cfg.data)
    assert isinstance(train, SyntheticCIFAR10) and isinstance(test, SyntheticCIFAR10)
    assert (len(train), len(test)) == (16, 16)
    # split_arg=train: the two calls differ only in train=True/False, so their samples differ
    assert (train.data != test.data).any()


def test_custom_data_without_a_target_says_what_to_set(compose_cfg):
    with pytest.raises(ConfigError, match=r"data\._target_"):
        build_datasets(compose_cfg("data=custom").data)


def test_custom_data_with_no_split_builds_one_split(compose_cfg):
    cfg = compose_cfg(
        "data=custom",
        "data._target_=pinsweep.input.data.SyntheticCIFAR10",
        "data.split_arg=null",
        "+data.kwargs.size=8",
        "+data.kwargs.seed=0",
        "+data.kwargs.train=true",
    )
    train, test = build_datasets(cfg.data)
    assert len(train) == 8
    assert test is None


def test_notebook_experiment_is_the_notebooks_protocol(compose_cfg):
    cfg = compose_cfg("experiment=notebook")
    assert (cfg.model.name, cfg.data.name) == ("resnet34", "cifar10")
    assert (cfg.train.epochs, cfg.loader.batch_size, cfg.train.train_accuracy_pass) == (10, 256, True)


def test_command_line_wins_over_an_experiment(compose_cfg):
    cfg = compose_cfg("experiment=notebook", "model=tiny", "train.epochs=2")
    assert (cfg.model.name, cfg.train.epochs) == ("tiny", 2)
    assert cfg.train.train_accuracy_pass is True


def test_quick_experiment_is_small_and_declares_its_sweep(repo_root):
    with initialize_config_dir(version_base="1.3", config_dir=str(repo_root / "conf")):
        cfg = compose(config_name="config", overrides=["experiment=quick"], return_hydra_config=True)
    assert (cfg.model.name, cfg.data.name) == ("tiny", "synthetic")
    assert (cfg.data.train_size, cfg.data.test_size, cfg.train.epochs) == (3072, 512, 1)
    assert dict(cfg.hydra.sweeper.params) == {"loader.num_workers": "0,2", "loader.pin_memory": "true,false"}
    # rounds until the answer is known (pinsweep/sweep/rounds.py), within a budget
    sweeper = cfg.hydra.sweeper
    assert (sweeper.rounds.value, sweeper.min_rounds, sweeper.max_rounds, sweeper.budget_s) == ("auto", 2, 4, 40)


def test_overrides_are_converted_to_their_schema_types(compose_cfg):
    cfg = compose_cfg("loader.num_workers=4", "loader.pin_memory=true", "loader.prefetch_factor=2", "train.lr=1e-2")
    assert cfg.loader.num_workers == 4 and isinstance(cfg.loader.num_workers, int)
    assert cfg.loader.pin_memory is True
    assert cfg.loader.prefetch_factor == 2
    assert cfg.train.lr == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("loader.num_workers=abc", "loader.num_workers", "abc"),
        ("loader.pin_memory=maybe", "loader.pin_memory", "maybe"),
        ("loader.batch_size=1.5", "loader.batch_size", "1.5"),
        ("train.epochs=ten", "train.epochs", "ten"),
    ],
)
def test_wrong_types_are_rejected_while_composing(compose_cfg, override, key, value):
    with pytest.raises(ConfigCompositionException) as raised:
        compose_cfg(override)
    cause = raised.value.__cause__
    assert isinstance(cause, ValidationError)
    assert cause.full_key == key
    assert value in str(cause)


def test_unknown_keys_are_rejected(compose_cfg):
    with pytest.raises(ConfigCompositionException) as raised:
        compose_cfg("loader.num_wrokers=2")
    assert isinstance(raised.value.__cause__, ConfigAttributeError)
    assert "num_wrokers" in str(raised.value.__cause__)


def test_unknown_group_option_is_rejected(compose_cfg):
    with pytest.raises(Exception, match="model/nope"):
        compose_cfg("model=nope")


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["loader.num_workers=-1"], "loader.num_workers"),
        (["loader.batch_size=0"], "loader.batch_size"),
        (["loader.prefetch_factor=2"], "loader.prefetch_factor"),
        (["loader.persistent_workers=true"], "loader.persistent_workers"),
        (["loader.num_workers=2", "loader.prefetch_factor=0"], "loader.prefetch_factor"),
        (["data.train_size=0"], "data.train_size"),
        (["train.epochs=0"], "train.epochs"),
        (["train.target_ci=1.5"], "train.target_ci"),
    ],
)
def test_validate_rejects_unrunnable_values_naming_the_key(compose_cfg, overrides, key):
    cfg = compose_cfg("model=tiny", "data=synthetic", *overrides)
    with pytest.raises(ConfigError) as raised:
        validate(cfg)
    message = str(raised.value)
    assert key in message
    assert "\n" not in message  # one line


@pytest.mark.parametrize(
    ("override", "choices"),
    [
        ("data.pipeline=gpu", "[pil, tensor, device]"),
        ("train.mode=fast", "[epochs, adaptive]"),
        ("train.inject_fault=explode", "[raise, oom, kill_worker, hang, kill]"),
    ],
)
def test_a_value_outside_a_keys_choices_is_refused_while_composing(compose_cfg, override, choices):
    with pytest.raises(ConfigCompositionException, match=override) as refused:
        compose_cfg(override)
    assert f"expected one of {choices}" in str(refused.value.__cause__)


def test_a_choice_lands_in_the_row_as_the_word_typed(compose_cfg):
    flat = flatten_config(compose_cfg("data.pipeline=tensor", "train.inject_fault=raise"))
    assert (flat["data.pipeline"], flat["train.mode"], flat["train.inject_fault"]) == ("tensor", "epochs", "raise")
    assert pd.DataFrame([flat])[["data.pipeline", "train.inject_fault"]].to_csv(index=False) == (
        "data.pipeline,train.inject_fault\ntensor,raise\n"
    )


def test_group_files_hold_only_what_differs_from_the_schema():
    """A default lives in one place, the schema; a group's YAML file sets only what it changes."""
    for group in GROUP_SCHEMAS:
        defaults = OmegaConf.to_container(OmegaConf.structured(Config)[group], throw_on_missing=False)
        for path in sorted((CONF_DIR / group).glob("*.yaml")):
            option = OmegaConf.to_container(OmegaConf.load(path))
            repeated = [key for key, value in option.items() if key in defaults and value == defaults[key]]
            assert not repeated, f"{path.name} repeats the schema's default of {group}.{', '.join(repeated)}"


def test_validate_accepts_worker_options_with_workers(compose_cfg):
    validate(compose_cfg("loader.num_workers=2", "loader.prefetch_factor=4", "loader.persistent_workers=true"))


def test_wrong_type_on_the_command_line_fails_before_any_job(run_pinsweep, tmp_path):
    result = run_pinsweep("loader.num_workers=abc", cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert "loader.num_workers" in result.stderr
    assert "abc" in result.stderr
    assert "Traceback" not in result.stderr  # Hydra's one clear message, not a stack trace
    assert list(tmp_path.iterdir()) == []  # no job folder, no row: nothing ran


def test_a_key_added_with_plus_outside_the_schema_is_rejected(compose_cfg):
    cfg = compose_cfg("+loader.num_worker=4")  # misspelt: Hydra's `+` adds it, validate() must not
    with pytest.raises(ConfigError, match=r"loader\.num_worker: not a loader setting"):
        validate(cfg)
