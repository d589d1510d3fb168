"""The rows' unit everywhere a throughput is said (tokens/s, clips/s, samples/s), never `images` by default:
the tables, the terminal, the report, also when no job counted anything (every job failed). Small fixed
rows, in process; auto-tune's sentences are tests/test_confirm.py's."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from pinsweep.analysis.summarize import Tables, summarize
from pinsweep.present import report, terminal
from pinsweep.present.plots import Plots
from pinsweep.record import configured_unit, with_throughput

IMAGE_WORDS = re.compile(r"image|img", re.IGNORECASE)


@pytest.mark.parametrize(
    ("config", "unit"),
    [
        ({"train.unit": "tokens", "data.name": "synthetic"}, "tokens"),  # said: whatever the data
        ({"train.unit": None, "data.name": "synthetic", "train.step": "pinsweep.job.step.classification"}, "images"),
        ({"data.name": "custom", "train.step": "pinsweep.job.step.classification", "train.count": None}, "images"),
        ({"data.name": "custom", "train.step": "my.step", "train.count": None}, "samples"),  # the user's own step
        ({"data.name": "custom", "train.step": "pinsweep.job.step.classification", "train.count": "my.n"}, "samples"),
        ({"status": "missing"}, "images"),  # a job folder with no config: as rows always said
    ],
)
def test_a_row_that_counted_nothing_has_its_configs_unit(config, unit):
    assert configured_unit(config) == unit


def _failed(unit: str) -> pd.DataFrame:
    """Two jobs that failed before counting anything: their rows hold the config, no `unit`."""
    return pd.DataFrame(
        [
            {"job.num": job, "loader.num_workers": workers, "train.unit": unit, "data.name": "custom"}
            | {"model.name": "mine", "status": "failed", "error": "ValueError: bad clip"}
            for job, workers in enumerate((0, 2))
        ]
    )


def test_a_table_of_only_failed_jobs_says_their_unit(capsys):
    rows = _failed("clips")
    assert with_throughput(rows)["unit"].tolist() == ["clips", "clips"]
    tables = Tables(*summarize(rows), rows)
    terminal.print_tables(tables)
    printed = capsys.readouterr().out
    assert "clips/s [95% CI]" in printed and "ratio of clips/s" in printed
    assert not IMAGE_WORDS.search(printed), printed
    markdown = report.render_markdown(report.build(Path("sweep"), tables, Plots()).blocks)
    assert "| num_workers | clips/s [95% CI] |" in markdown
    assert "num_workers: 0 -> 2 was not measured (unknown: no stratum ran both levels)" in markdown  # never "nanx"
    assert not IMAGE_WORDS.search(markdown), IMAGE_WORDS.findall(markdown)


def test_a_token_sweep_says_tokens_in_terminal_and_report(capsys):
    rows = pd.DataFrame(
        [
            {"job.num": job, "loader.num_workers": workers, "train.repeat": repeat, "status": "ok", "device": "cpu"}
            | {"unit": "tokens", "throughput": rate, "steady_s": 1.0, "data_wait_s": 0.3, "copy_s": 0.0}
            | {"compute_s": 0.7, "compute_ceiling_ips": 2 * rate, "compute_ceiling_ci_rel": 0.02}
            for job, (workers, repeat, rate) in enumerate([(0, 0, 100.0), (2, 0, 180.0), (0, 1, 104.0), (2, 1, 176.0)])
        ]
    )
    tables = Tables(*summarize(rows), rows)
    terminal.print_tables(tables)
    printed = capsys.readouterr().out
    assert "tokens/s [95% CI]" in printed and not IMAGE_WORDS.search(printed), printed
    composed = report.build(Path("sweep"), tables, Plots())
    markdown = report.render_markdown(composed.blocks)
    assert "Fastest: num_workers=2 at 178 [154, 205] tokens/s" in markdown
    assert not IMAGE_WORDS.search(markdown), IMAGE_WORDS.findall(markdown)
