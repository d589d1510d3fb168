"""Advice from the evidence: crafted summary/effects frames for the four situations a sweep ends in, each
checked for the advice it gives, the configuration it recommends, and next-sweep commands that compose as
this app's overrides."""

from __future__ import annotations

import copy
import math
import shlex

import pandas as pd
import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from pinsweep.analysis.summarize import OVERALL, Tables
from pinsweep.config import validate
from pinsweep.present.advice import advise

NAN = math.nan
NW, PM, PIPE = "loader.num_workers", "loader.pin_memory", "data.pipeline"
NOT_SIGNIFICANT, INACTIVE = "none: not significant", "none: inactive without an accelerator"
EFFECT_COLUMNS = ["axis", "level", "reference", "held_fixed", "ratio", "ci_low", "ci_high", "effect", "repeats_needed"]


def config(levels, ips, speedup, ci, significant, verdict, wait=0.1, compute=0.9, ceiling=NAN, best=True, needed=NAN):
    """One summary row as summarize() writes it; significant "base" marks the baseline."""
    return {
        **levels,
        "baseline": significant == "base",
        "n": 3,
        "ips_geomean": ips,
        "speedup": speedup,
        "speedup_ci_low": ci[0],
        "speedup_ci_high": ci[1],
        "significant": None if significant == "base" else significant,
        "repeats_needed": needed,
        "inactive": False,
        "could_be_fastest": best,
        "efficiency": ips / ceiling if ceiling == ceiling else NAN,
        "data_wait_frac": wait,
        "copy_frac": 0.0 if verdict != "copy-bound" else 0.3,
        "compute_frac": compute,
        "compute_ceiling_ips": ceiling,
        "verdict": verdict,
    }


def rows_of(summary: pd.DataFrame, cores: int, device: str = "cpu", **fixed) -> pd.DataFrame:
    """Three ok job rows per config, with the job's fixed settings, as read_rows returns them."""
    axes = [c for c in summary.columns if c.startswith(("loader.", "data.", "model.", "train."))]
    settings = {"model.name": "tiny", "data.name": "synthetic", "data.train_size": 4096, "loader.batch_size": 256}
    settings |= {"train.epochs": 3, "train.inject_fault": None, "env.cpu_count": cores, "device": device, **fixed}
    records = []
    for _, r in summary.iterrows():
        for repeat in range(3):
            records.append({**settings, **{a: r[a] for a in axes}, "train.repeat": repeat, "status": "ok"})
    return pd.DataFrame(records)


@pytest.fixture(scope="module")
def composes(compose_cfg):
    """composes(command): every job of the command (each round's the same: train.repeat aside), composed as
    this app's config and validated: the group choices composed by Hydra, the other overrides applied to
    that config as Hydra applies them."""
    groups_composed = {}

    def _check(command: str) -> None:
        tokens = shlex.split(command)
        assert tokens[:4] == ["python", "-m", "pinsweep", "-m"]
        parser = OverridesParser.create()
        overrides = parser.parse_overrides(tokens[4:])
        assert any(o.key_or_group == "train.repeat" for o in overrides)
        (jobs,) = BasicSweeper.split_arguments([o for o in overrides if o.key_or_group != "train.repeat"], None)
        for job in jobs:
            groups = tuple(o for o in job if "." not in o.split("=", 1)[0])
            if groups not in groups_composed:
                groups_composed[groups] = compose_cfg(*groups)
            cfg = copy.deepcopy(groups_composed[groups])
            OmegaConf.set_struct(cfg, True)
            rest = parser.parse_overrides([o for o in job if o not in groups])
            ConfigLoaderImpl._apply_overrides_to_config(rest, cfg)
            validate(cfg)

    return _check


def quick_like() -> tuple[pd.DataFrame, pd.DataFrame]:
    """experiment=quick on 2 cores: workers slower (not significantly), pin_memory inactive, compute slowed."""
    summary = pd.DataFrame(
        [
            config({NW: "0", PM: "false"}, 3876, 1.0, (NAN, NAN), "base", "loader-bound", 0.20, 0.79, 5486),
            config({NW: "0", PM: "true"}, 2697, 0.70, (0.38, 1.26), False, "loader-bound", 0.16, 0.84, 3597),
            config(
                {NW: "2", PM: "false"}, 2727, 0.70, (0.37, 1.32), False, "loader-bound", 0.11, 0.89, 5108, needed=16
            ),
            config({NW: "2", PM: "true"}, 2175, 0.56, (0.30, 1.05), False, "contended", 0.08, 0.91, 4923, False, 6),
        ]
    )
    summary.loc[1, "inactive"] = True
    effects = pd.DataFrame(
        [
            (NW, "2", "0", "loader.pin_memory=false", 0.70, 0.37, 1.32, NOT_SIGNIFICANT, 16),
            (NW, "2", "0", "loader.pin_memory=true", 0.81, 0.43, 1.52, NOT_SIGNIFICANT, 42),
            (NW, "2", "0", OVERALL, 0.75, 0.48, 1.18, NOT_SIGNIFICANT, 12),
            (PM, "true", "false", "loader.num_workers=0", 0.70, 0.38, 1.26, INACTIVE, NAN),
            (PM, "true", "false", "loader.num_workers=2", 0.80, 0.44, 1.45, INACTIVE, NAN),
            (PM, "true", "false", OVERALL, 0.74, 0.49, 1.14, INACTIVE, NAN),
        ],
        columns=EFFECT_COLUMNS,
    )
    return summary, effects


def test_contention_names_the_budget_and_never_advises_more_workers(composes):
    summary, effects = quick_like()
    advice = advise(Tables(summary, effects, rows_of(summary, cores=2)))
    text = " ".join(advice.sentences)
    assert "more loader.num_workers could help" not in text
    assert (
        "Not more loader.num_workers: the sweep measured it as no faster (num_workers 0 -> 2 at "
        "loader.pin_memory=false: 0.70x [0.37, 1.32], none: not significant)" in advice.sentences
    )
    contention = next(s for s in advice.sentences if s.startswith("CPU contention"))
    # the rows it rests on: more processes than cores, and compute below its ceiling. pin_memory cannot act on a
    # CPU: its two num_workers=2 configs are one, cited once, with one row's figures (the pin_memory=false row's:
    # the other's 'verdict contended' and its own compute share are not that row's)
    assert "num_workers=2 (2 workers + the training process on 2 cores, compute at 60% of its ceiling)." in contention
    assert contention.count("num_workers=2 (") == 1 and "pin_memory" not in contention.split(". The budget")[0]
    assert "verdict contended" not in contention
    assert "OMP_NUM_THREADS" in contention and "num_workers <= 1" in contention
    assert advice.recommendation is None
    assert any(s.startswith("The defaults are fine here") for s in advice.sentences)
    settle, explore = advice.commands
    fixed = "model=tiny data=synthetic data.train_size=4096 loader.batch_size=256 train.epochs=3"
    assert settle.command == f"python -m pinsweep -m train.repeat={','.join(map(str, range(12)))} {fixed} {NW}=0,2"
    # "Not more loader.num_workers" above: no more workers below either, only the axis the verdict points at
    assert explore.command == f"python -m pinsweep -m train.repeat=0,1,2 {fixed} {NW}=0 {PIPE}=pil,tensor"
    for command in advice.commands:
        composes(command.command)


def test_the_budget_is_the_cores_the_jobs_had_not_the_machines(composes):
    """On an 8-core machine with train.cpus=0-1, every number in the advice is about the 2 cores."""
    summary, effects = quick_like()
    advice = advise(Tables(summary, effects, rows_of(summary, cores=8, **{"cpu_cores": 2, "train.cpus": "0-1"})))
    contention = next(s for s in advice.sentences if s.startswith("CPU contention"))
    assert "num_workers=2 (2 workers + the training process on 2 cores" in contention
    assert "The budget is 2 cores" in contention and "num_workers <= 1 with one training thread" in contention
    _, explore = advice.commands
    assert f"{NW}=0 " in explore.command and "train.cpus=0-1" in explore.command  # no more workers, as pinned
    composes(explore.command)


def test_workers_that_help_a_starved_loader_are_recommended_with_their_dataloader_call(composes):
    summary = pd.DataFrame(
        [
            config({NW: "0"}, 500, 1.0, (NAN, NAN), "base", "loader-bound", 0.6, 0.4, 1300, best=False),
            config({NW: "2"}, 1000, 2.0, (1.8, 2.2), True, "loader-bound", 0.2, 0.8, 1300, best=True),
        ]
    )
    effects = pd.DataFrame([(NW, "2", "0", lvl, 2.0, 1.8, 2.2, "faster", NAN) for lvl in ("(none)", OVERALL)],
                           columns=EFFECT_COLUMNS)  # fmt: skip
    rows = rows_of(summary, cores=8, **{"data.sample_delay_ms": 2.0, PM: False})
    advice = advise(Tables(summary, effects, rows))
    recommended = advice.recommendation
    assert recommended.overrides == (f"{NW}=2",) and recommended.speedup == "2.00x [1.80, 2.20]"
    assert recommended.dataloader == (
        "torch.utils.data.DataLoader(train_set, batch_size=256, shuffle=True, num_workers=2, pin_memory=False, "
        "persistent_workers=False)"
    )
    assert any(s.startswith("Recommended: num_workers=2, 2.00x [1.80, 2.20] the baseline") for s in advice.sentences)
    assert not any(s.startswith("CPU contention") for s in advice.sentences)
    # the best is the top level and workers fit the 8 cores: more workers are open, and the next sweep goes beyond
    assert any("more loader.num_workers or data.pipeline=tensor could help" in s for s in advice.sentences)
    (explore,) = advice.commands
    assert f"{NW}=1,2,4 " in explore.command and "data.sample_delay_ms=2" in explore.command
    composes(explore.command)


def test_a_starved_jpeg_folder_loader_is_pointed_at_the_faster_decoder_not_the_tensor_pipeline():
    summary = pd.DataFrame(
        [
            config({NW: "0"}, 500, 1.0, (NAN, NAN), "base", "loader-bound", 0.6, 0.4, 1300, best=False),
            config({NW: "2"}, 1000, 2.0, (1.8, 2.2), True, "loader-bound", 0.2, 0.8, 1300, best=True),
        ]
    )
    effects = pd.DataFrame([(NW, "2", "0", lvl, 2.0, 1.8, 2.2, "faster", NAN) for lvl in ("(none)", OVERALL)],
                           columns=EFFECT_COLUMNS)  # fmt: skip
    # ImageFolder has no in-memory arrays: data.pipeline=tensor cannot run on it, torchvision's decoder can
    rows = rows_of(summary, cores=8, **{"data.name": "imagefolder", "data.decoder": "pil", PM: False})
    advice = advise(Tables(summary, effects, rows))
    assert any("more loader.num_workers or data.decoder=torchvision could help" in s for s in advice.sentences)
    assert not any("data.pipeline=tensor" in s for s in advice.sentences)


def test_nothing_significant_keeps_the_defaults_and_plans_the_repeats(composes):
    summary = pd.DataFrame(
        [
            config({NW: "0"}, 1000, 1.0, (NAN, NAN), "base", "compute-bound", 0.02, 0.98, 1020),
            config({NW: "4"}, 1040, 1.04, (0.95, 1.14), False, "compute-bound", 0.02, 0.98, 1080, needed=9),
        ]
    )
    effects = pd.DataFrame([(NW, "4", "0", lvl, 1.04, 0.95, 1.14, NOT_SIGNIFICANT, 9) for lvl in ("(none)", OVERALL)],
                           columns=EFFECT_COLUMNS)  # fmt: skip
    advice = advise(Tables(summary, effects, rows_of(summary, cores=16)))
    assert advice.recommendation is None
    assert (
        "The defaults are fine here: no config beats the baseline (num_workers=0) significantly; that would change "
        "with about 9 repeats showing num_workers=4's 1.04x [0.95, 1.14] is real or a slower input pipeline per "
        "sample (heavier decoding; data.sample_delay_ms mimics one) or an accelerator, where pin_memory and "
        "non_blocking can act"
    ) in advice.sentences
    settle = advice.commands[0]
    assert f"train.repeat={','.join(map(str, range(9)))} " in settle.command and settle.command.endswith(f"{NW}=0,4")
    for command in advice.commands:
        composes(command.command)


def test_copy_bound_on_a_gpu_suggests_pinned_asynchronous_copies_unless_measured_as_no_faster(composes):
    summary = pd.DataFrame(
        [
            config({NW: "0"}, 900, 1.0, (NAN, NAN), "base", "loader-bound", 0.3, 0.7, 2000, best=False),
            config({NW: "4"}, 1500, 1.67, (1.5, 1.8), True, "copy-bound", 0.05, 0.65, 2000),
        ]
    )
    effects = pd.DataFrame([(NW, "4", "0", lvl, 1.67, 1.5, 1.8, "faster", NAN) for lvl in ("(none)", OVERALL)],
                           columns=EFFECT_COLUMNS)  # fmt: skip
    advice = advise(Tables(summary, effects, rows_of(summary, cores=16, device="cuda:0", **{PM: False})))
    assert any("loader.pin_memory=true with loader.non_blocking=true could help" in s for s in advice.sentences), (
        advice.sentences
    )
    explore = advice.commands[-1]
    assert f"{PM}=false,true" in explore.command and "loader.non_blocking=false,true" in explore.command
    composes(explore.command)

    # the same sweep with pin_memory measured, and no faster at the fastest config's num_workers
    swept = pd.DataFrame(
        [
            {**summary.iloc[0].to_dict(), PM: "false"},
            {**summary.iloc[1].to_dict(), PM: "false"},
            {**summary.iloc[1].to_dict(), PM: "true", "ips_geomean": 1450, "speedup": 1.61, "could_be_fastest": True},
        ]
    )
    swept = swept[[NW, PM, *[c for c in swept.columns if c not in (NW, PM)]]]
    measured = pd.concat(
        [
            effects.assign(held_fixed=["loader.pin_memory=false", OVERALL]),
            pd.DataFrame(
                [(PM, "true", "false", "loader.num_workers=4", 0.97, 0.9, 1.05, NOT_SIGNIFICANT, 40)],
                columns=EFFECT_COLUMNS,
            ),
        ]
    )
    advice = advise(Tables(swept, measured, rows_of(swept, cores=16, device="cuda:0")))
    assert not any("loader.pin_memory=true" in s and "could help" in s for s in advice.sentences)
    assert (
        "Not loader.pin_memory=true: the sweep measured it as no faster (pin_memory false -> true at "
        "loader.num_workers=4: 0.97x [0.90, 1.05], none: not significant)"
    ) in advice.sentences
