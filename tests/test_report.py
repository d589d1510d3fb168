"""The end of a sweep: plots, report and its conclusion.

The conclusion is tested on small fixed summary/effects frames with exact sentences; the plots and
report on a real 2x2 sweep run in a subprocess (slow): conftest.py's `grid_sweep`, shared with test_sweep.py.
"""

from __future__ import annotations

import html
import logging
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pinsweep import report as report_command
from pinsweep.analysis.summarize import OVERALL, Tables, read_effects, read_summary
from pinsweep.present import plots, report, wording
from pinsweep.record import read_rows

NAN = math.nan
EFFECT_COLUMNS = ["axis", "level", "reference", "held_fixed", "ratio", "ci_low", "ci_high", "effect"]


def config(
    levels, ips, ci, speedup, speedup_ci, significant, efficiency, wait, verdict, n=3, n_failed=0, best=None
) -> dict:
    """One summary row as summarize() writes it; intervals are (low, high) or None; baseline: significant "base";
    best: could_be_fastest."""
    ci, speedup_ci = ci or (NAN, NAN), speedup_ci or (NAN, NAN)
    return {
        **levels,
        "baseline": significant == "base",
        "n": n,
        "n_failed": n_failed,
        "ips_median": ips,
        "ips_geomean": ips,
        "ips_ci_low": ci[0],
        "ips_ci_high": ci[1],
        "speedup": speedup,
        "speedup_ci_low": speedup_ci[0],
        "speedup_ci_high": speedup_ci[1],
        "significant": None if significant == "base" else significant,
        "efficiency": efficiency,
        "data_wait_frac": wait,
        "copy_frac": 0.0,
        "compute_frac": 1.0 - wait,
        "verdict": verdict,
        "could_be_fastest": best,
        "note": "",
    }


def effects_of(records: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(records, columns=EFFECT_COLUMNS)


NW, PM, PIPE = "loader.num_workers", "loader.pin_memory", "data.pipeline"
INACTIVE = "none: inactive without an accelerator"


def test_conclusion_names_the_axis_that_matters_and_the_inactive_one():
    summary = pd.DataFrame(
        [
            config({NW: "0", PM: "false"}, 1000, (950, 1050), 1.0, (0.9, 1.1), "base", 0.50, 0.45, "loader-bound"),
            config({NW: "0", PM: "true"}, 1010, (960, 1060), 1.01, (0.97, 1.05), False, 0.5, 0.44, "loader-bound"),
            config(
                {NW: "2", PM: "false"},
                1800,
                (1700, 1900),
                1.8,
                (1.6, 2.0),
                True,
                0.95,
                0.02,
                "compute-bound",
                best=True,
            ),
            config(
                {NW: "2", PM: "true"},
                1790,
                (1690, 1890),
                1.79,
                (1.6, 1.98),
                True,
                0.94,
                0.02,
                "compute-bound",
                best=True,
            ),
        ]
    )
    effects = effects_of(
        [
            (NW, "2", "0", "loader.pin_memory=false", 1.80, 1.60, 2.00, "faster"),
            (NW, "2", "0", "loader.pin_memory=true", 1.77, 1.62, 1.95, "faster"),
            (NW, "2", "0", OVERALL, 1.78, 1.60, 2.00, "faster"),
            (PM, "true", "false", "loader.num_workers=0", 1.01, 0.97, 1.05, INACTIVE),
            (PM, "true", "false", "loader.num_workers=2", 0.99, 0.96, 1.03, INACTIVE),
            (PM, "true", "false", OVERALL, 1.00, 0.96, 1.05, INACTIVE),
        ]
    )
    assert report.conclusion(Tables(summary, effects)) == [
        "num_workers is what matters here: 0 -> 2 is 1.78x [1.60, 2.00].",
        "pin_memory changes nothing on this machine: it is inactive without an accelerator, so the measured "
        "false -> true ratio, 1.00x [0.96, 1.05], is noise or drift.",
        # pin_memory cannot act on a CPU: never part of a finding, though a pin_memory=true config is a contender
        "Fastest: num_workers=2 at 1800 [1700, 1900] images/s, 1.80x [1.60, 2.00] the baseline (num_workers=0).",
        "No other config can be the fastest at 95% confidence: num_workers=2 is the fastest here.",
        "It reaches 95% of the compute-only ceiling and is compute-bound: the model's compute is the limit, so a "
        "faster input pipeline would not help.",
        "Recommended: num_workers=2, 1.80x [1.60, 2.00] the baseline: torch.utils.data.DataLoader(train_set, "
        "batch_size=256, shuffle=True, num_workers=2, pin_memory=False, persistent_workers=False); as Hydra "
        "overrides: loader.num_workers=2.",
    ]


def test_conclusion_reports_an_interaction_and_ranks_axes_by_effect_size():
    summary = pd.DataFrame(
        [
            config({NW: "0", PIPE: "pil"}, 1000, (950, 1050), 1.0, (0.9, 1.1), "base", 0.30, 0.60, "loader-bound"),
            config({NW: "0", PIPE: "tensor"}, 3000, (2900, 3100), 3.0, (2.8, 3.2), True, 0.80, 0.25, "loader-bound"),
            config({NW: "2", PIPE: "pil"}, 1200, (1150, 1250), 1.2, (1.1, 1.3), True, 0.36, 0.50, "loader-bound"),
            config({NW: "2", PIPE: "tensor"}, 2850, (2700, 3000), 2.85, (2.6, 3.1), True, 0.76, 0.05, "contended"),
        ]
    )
    effects = effects_of(
        [
            (NW, "2", "0", "data.pipeline=pil", 1.20, 1.10, 1.30, "faster"),
            (NW, "2", "0", "data.pipeline=tensor", 0.95, 0.90, 1.01, "none: not significant"),
            (NW, "2", "0", OVERALL, 1.08, 0.90, 1.30, "none: not significant"),
            (PIPE, "tensor", "pil", "loader.num_workers=0", 3.00, 2.80, 3.20, "faster"),
            (PIPE, "tensor", "pil", "loader.num_workers=2", 2.38, 2.20, 2.60, "faster"),
            (PIPE, "tensor", "pil", OVERALL, 2.69, 2.20, 3.20, "faster"),
        ]
    )
    assert report.conclusion(Tables(summary, effects)) == [
        "pipeline is what matters here: pil -> tensor is 2.69x [2.20, 3.20].",
        "num_workers has no consistent effect (0 -> 2 is 1.08x [0.90, 1.30] overall), but it depends on pipeline: "
        "at data.pipeline=pil 0 -> 2 is 1.20x [1.10, 1.30] (faster).",
        "Fastest: num_workers=0, pipeline=tensor at 3000 [2900, 3100] images/s, 3.00x [2.80, 3.20] the baseline "
        "(num_workers=0, pipeline=pil).",
        "It reaches 80% of the compute-only ceiling and is loader-bound: 25% of its step time goes to waiting for "
        "the next batch, so the input pipeline is the limit.",
        # the advice never names what the sweep measured: more workers, at this config's pipeline, were no faster
        "Not more loader.num_workers: the sweep measured it as no faster (num_workers 0 -> 2 at data.pipeline=tensor: "
        "0.95x [0.90, 1.01], none: not significant).",
        "CPU contention, not too few workers, limits this machine: num_workers=2, pipeline=tensor (verdict "
        "contended). The budget is the "
        "machine's cores shared by num_workers worker processes and the training process with its intra-op threads "
        "(torch.get_num_threads(); set by OMP_NUM_THREADS or torch.set_num_threads): keep num_workers plus the "
        "training threads within the cores (or fewer threads to give workers cores) rather than adding workers.",
        "Recommended: num_workers=0, pipeline=tensor, 3.00x [2.80, 3.20] the baseline: "
        "torch.utils.data.DataLoader(train_set, batch_size=256, shuffle=True, num_workers=0, pin_memory=False, "
        "persistent_workers=False); as Hydra overrides: loader.num_workers=0 data.pipeline=tensor.",
    ]


def test_conclusion_with_one_run_per_config_a_failed_config_and_a_mismeasured_ceiling():
    summary = pd.DataFrame(
        [
            config({NW: "0"}, 1000, None, 1.0, None, "base", 1.2, 0.05, "compute-bound", n=1),
            config({NW: "2"}, 600, None, 0.6, None, None, 0.7, 0.02, "contended", n=1),
            config({NW: "4"}, NAN, None, NAN, None, None, NAN, NAN, "", n=0, n_failed=1),
        ]
    )
    effects = effects_of(
        [
            (NW, "2", "0", "(none)", 0.6, NAN, NAN, "unknown: needs train.repeat >= 2"),
            (NW, "2", "0", OVERALL, 0.6, NAN, NAN, "unknown: needs train.repeat >= 2"),
        ]
    )
    assert report.conclusion(Tables(summary, effects)) == [
        "num_workers: 0 -> 2 measured 0.60x, but without a confidence interval (a config with fewer than 2 "
        "successful runs) that cannot be told from noise.",
        "The fastest config is the baseline, num_workers=0, at 1000 images/s.",
        # beaten by 20%: the ceiling was mismeasured, so no compute-bound finding (tests/test_precision_words.py)
        "It hardly waits for data or copies, but its compute-only ceiling is imprecise (the config runs at 120% of "
        "it), so neither its efficiency (120%) nor whether compute or contention for the CPU limits it is a "
        "finding: raise train.ceiling_steps or train.ceiling_budget_s for a precise ceiling.",
        "CPU contention, not too few workers, limits this machine: num_workers=2 (verdict contended). The budget "
        "is the "
        "machine's cores shared by num_workers worker processes and the training process with its intra-op threads "
        "(torch.get_num_threads(); set by OMP_NUM_THREADS or torch.set_num_threads): keep num_workers plus the "
        "training threads within the cores (or fewer threads to give workers cores) rather than adding workers.",
        "With one run per config no difference can be told from noise: rerun with train.repeat=0,1,2 for "
        "confidence intervals.",
        "1 job failed (see Failed jobs); no successful run for num_workers=4.",
    ]


def test_conclusion_when_nothing_matters():
    PW = "loader.persistent_workers"
    bound = "compute-bound"
    summary = pd.DataFrame(
        [
            config({PM: "false", PW: "false"}, 1000, (980, 1020), 1.0, (0.97, 1.03), "base", 0.97, 0.01, bound),
            config({PM: "false", PW: "true"}, 1020, (990, 1050), 1.02, (0.98, 1.05), False, 0.97, 0.01, bound),
            config({PM: "true", PW: "false"}, 990, (970, 1010), 0.99, (0.96, 1.02), False, 0.96, 0.01, bound),
            config({PM: "true", PW: "true"}, 1005, (985, 1025), 1.0, (0.97, 1.04), False, 0.97, 0.01, bound),
        ]
    )
    effects = effects_of(
        [
            (PM, "true", "false", "loader.persistent_workers=false", 0.99, 0.96, 1.02, "none: not significant"),
            (PM, "true", "false", "loader.persistent_workers=true", 0.99, 0.96, 1.03, "none: not significant"),
            (PM, "true", "false", OVERALL, 0.99, 0.96, 1.03, "none: not significant"),
            (PW, "true", "false", "loader.pin_memory=false", 1.02, 0.98, 1.05, "none: not significant"),
            (PW, "true", "false", "loader.pin_memory=true", 1.02, 0.70, 1.40, "none: not significant"),
            (PW, "true", "false", OVERALL, 1.02, 0.70, 1.40, "none: not significant"),
        ]
    ).assign(repeats_needed=[NAN, NAN, 40, NAN, NAN, 12])  # as summarize() plans them, for non-findings
    assert report.conclusion(Tables(summary, effects)) == [
        "No swept setting changes throughput measurably here.",
        "persistent_workers changes nothing measurable at any pin_memory (false -> true is 1.02x [0.70, 1.40]); "
        "about 12 repeats (train.repeat=0,...,11) would resolve a difference of this size.",
        "pin_memory changes nothing measurable at any persistent_workers (false -> true is 0.99x [0.96, 1.03]); "
        "against this machine's noise, over 30 repeats would be needed to resolve it: treat it as no difference.",
        "Fastest: pin_memory=false, persistent_workers=true at 1020 [990, 1050] images/s, 1.02x [0.98, 1.05] the "
        "baseline (pin_memory=false, persistent_workers=false), not significantly different.",
        "It reaches 97% of the compute-only ceiling and is compute-bound: the model's compute is the limit, so a "
        "faster input pipeline would not help.",
        "The defaults are fine here: no config beats the baseline (pin_memory=false, persistent_workers=false) "
        "significantly; that would change with a slower input pipeline per sample (heavier decoding; "
        "data.sample_delay_ms mimics one).",
    ]


def test_table_cells_sort_fastest_first_and_name_failure_kinds():
    summary = pd.DataFrame(
        [
            config({NW: "0"}, 1000, (900, 1100), 1.0, (0.9, 1.1), "base", 0.5, 0.4, "loader-bound", n=2),
            config({NW: "2"}, 1500, None, 1.5, None, None, 0.8, 0.1, "loader-bound", n=1, n_failed=1),
        ]
    )
    rows = pd.DataFrame({NW: [0, 0, 2, 2], "status": ["ok", "ok", "ok", "oom"]})
    cells = wording.table_cells(summary, rows)
    assert cells.to_dict("records") == [
        {"num_workers": "2", "images/s [95% CI]": "1500", "speedup [95% CI]": "1.50x", "significant": "-",
         "efficiency": "80%", "verdict": "loader-bound", "status": "1 ok, 1 oom"},
        {"num_workers": "0", "images/s [95% CI]": "1000 [900, 1100]", "speedup [95% CI]": "1.00x [0.90, 1.10]",
         "significant": "baseline", "efficiency": "50%", "verdict": "loader-bound", "status": "2 ok"},
    ]  # fmt: skip


def test_report_on_a_folder_without_rows_exits_with_one_line(tmp_path, capsys):
    assert report_command.main([str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "no job rows" in error and str(tmp_path) in error


# --------------------------------------------------------------------------------- a real small sweep

GRID = {"0": ("true", "false"), "2": ("true", "false")}  # num_workers -> pin_memory levels of grid_sweep


@pytest.fixture
def sweep(grid_sweep) -> Path:
    return grid_sweep.dir


@pytest.mark.slow
def test_sweep_end_prints_the_table_and_the_conclusion(grid_sweep):
    out = grid_sweep.result.stdout
    assert "pinsweep summary, fastest first" in out and "images/s [95% CI]" in out and "efficiency" in out
    assert "conclusion:" in out and "report.html" in out


@pytest.mark.slow
def test_sweep_end_writes_pngs_of_the_expected_size(sweep):
    for name in ("throughput", "breakdown"):
        with Image.open(sweep / f"{name}.png") as image:
            assert image.format == "PNG"
            assert image.size == plots.figure_px(4)  # 4 configs
            assert len(image.convert("L").getcolors()) > 20  # drawn, not blank
    with Image.open(sweep / "heatmap.png") as image:
        assert image.size == (round(plots.HEATMAP_SIZE_IN[0] * plots.DPI), round(plots.HEATMAP_SIZE_IN[1] * plots.DPI))


@pytest.mark.slow
def test_report_names_every_config_embeds_the_plots_and_states_the_conclusion(sweep):
    markdown = (sweep / "report.md").read_text()
    page = (sweep / "report.html").read_text()
    for workers, pins in GRID.items():
        for pin in pins:  # the summary table's row for each config: its axis cells come first
            assert re.search(rf"^\| {workers} \| {pin} \| \d+", markdown, re.MULTILINE), (workers, pin)
            assert re.search(rf"<tr><td class=num>{workers}</td><td>{pin}</td>", page), (workers, pin)
    assert page.count('src="data:image/png;base64,') == 3  # self-contained: no file beside it needed
    for name in ("throughput", "heatmap", "breakdown"):
        assert f"]({name}.png)" in markdown
    summary, effects = read_summary(sweep / "summary.csv"), read_effects(sweep / "effects.csv")
    sentences = report.conclusion(Tables(summary, effects, read_rows(sweep)))
    assert any(s.startswith("pin_memory changes nothing on this machine") for s in sentences)
    for sentence in sentences:
        assert f"- {sentence}" in markdown
        assert html.escape(sentence) in page
    assert "```bash\npython -m pinsweep -m train.repeat=0,1,2" in markdown  # the next sweep, ready to run
    for heading in ("Summary", "Next sweep", "Per-axis effects", "Environment", "Failed jobs"):
        assert f"## {heading}" in markdown
    cpu = read_rows(sweep)["env.cpu_model"].iloc[0]
    assert f"model tiny, data synthetic (pil pipeline), batch 64 | CPU: {cpu}" in markdown  # what was measured


@pytest.mark.slow
def test_report_failure_at_sweep_end_keeps_the_summary(sweep, monkeypatch, tmp_path, caplog):
    from omegaconf import OmegaConf

    from pinsweep.sweep.callbacks import SummarizeOnMultirunEnd

    sweep = shutil.copytree(sweep, tmp_path / "sweep")  # the shared sweep stays as it ran
    for written in ("summary.csv", "report.html"):
        (sweep / written).unlink()

    def broken(*args, **kwargs):
        raise AttributeError("'str' object has no attribute 'unknown'")  # a bug, as pandas 3's once was

    monkeypatch.setattr(report, "write_report", broken)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    # every job was ok: the broken report is logged, not raised, and the sweep exits 1 for the missing report
    with caplog.at_level(logging.INFO, logger="pinsweep"), pytest.raises(SystemExit) as exited:
        SummarizeOnMultirunEnd().on_multirun_end(config)
    assert exited.value.code == 1
    assert len(pd.read_csv(sweep / "summary.csv")) == 4  # the summary stands alone
    assert not (sweep / "report.html").exists()
    # said as what it is, with its traceback: never a file not written, never "free space"
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.getMessage() for record in errors] == [
        "report not made: AttributeError: 'str' object has no attribute 'unknown', an error in pinsweep, not the "
        "disk (summary.csv and effects.csv are written); please report it with this traceback"
    ]
    assert errors[0].exc_info is not None

    def unreadable(*args, **kwargs):  # an OSError that is not about writing a file: said as itself, one line
        raise FileNotFoundError(2, "No such file or directory", str(sweep / "throughput.png"))

    monkeypatch.setattr(report, "write_report", unreadable)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pinsweep"), pytest.raises(SystemExit):
        SummarizeOnMultirunEnd().on_multirun_end(config)
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [(record.getMessage(), record.exc_info) for record in errors] == [
        (
            f"report not made: [Errno 2] No such file or directory: '{sweep / 'throughput.png'}' (summary.csv and "
            "effects.csv are written)",
            None,
        )
    ]
