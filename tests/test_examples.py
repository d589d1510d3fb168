"""The three worked examples in examples/ (issue 18, acceptance 1), each swept end to end as a user runs
it, `pinsweep --config-dir examples/<name>/conf -m experiment=<name>` (its own num_workers=0,2 grid; the
command line run in this process): two ok rows with the breakdown, both ceilings and a finite loss, and
every output in the pipeline's unit. Made small here (tiny models, a few steps); the README runs them at
their own sizes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib.axes
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pinsweep.analysis.summarize import read_tables
from pinsweep.present.plots import make_plots
from pinsweep.record import read_rows
from tests.in_process import Ran, pinsweep_here

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
CHEAP = ("train.ceiling_steps=2", "train.ceiling_budget_s=0.2", "train.threads=1")

# name -> (unit, test figures, overrides that keep it to seconds)
CASES = {
    "char_lm": (
        "tokens",
        ("test_loss",),
        ("data.kwargs.characters=12000", "model.kwargs.dim=32", "model.kwargs.layers=1", "loader.batch_size=16"),
    ),
    "super_resolution": (
        "images",
        ("test_psnr", "test_mse"),
        ("data.kwargs.size=128", "data.kwargs.image_size=16", "model.kwargs.width=8", "loader.batch_size=16"),
    ),
    "text_classify": (
        "tokens",
        ("test_accuracy",),
        ("data.kwargs.size=192", "+data.kwargs.max_len=32", "+model.kwargs.dim=16", "loader.batch_size=16"),
    ),
}


def sweep_example(name: str, folder: Path, *overrides: str) -> Ran:
    """The example's own sweep, its command line as a user types it, run in this process
    (tests/in_process.py: no new interpreter to import Hydra, torch, pandas and matplotlib again) with
    isolate=false (no job process: the example's modules import once). The examples import as the
    repository root's package, as they do once installed."""
    command = ["--config-dir", str(EXAMPLES / name / "conf"), "-m", f"experiment={name}", "isolate=false"]
    return pinsweep_here(*command, *overrides, f"hydra.sweep.dir={folder}")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_each_example_sweeps_to_two_ok_rows_in_its_unit(name, tmp_path, monkeypatch):
    unit, figures, small = CASES[name]
    sweep = tmp_path / "sweep"
    result = sweep_example(name, sweep, *small, *CHEAP)
    assert result.returncode == 0, result.stderr[-3000:]

    rows = read_rows(sweep)
    assert len(rows) == 2 and (rows["status"] == "ok").all(), rows[["status", "error"]]
    assert sorted(rows["loader.num_workers"]) == [0, 2] and (rows["unit"] == unit).all()
    for _, row in rows.iterrows():
        assert row["loss_finite"] and math.isfinite(row["final_loss"])
        parts = row["data_wait_s"] + row["copy_s"] + row["compute_s"]
        assert parts == pytest.approx(row["steady_s"], rel=0.01)  # the breakdown tiles the window
        assert row["compute_ceiling_ips"] > 0 and row["loader_ceiling_ips"] > 0
        assert row["throughput"] == pytest.approx(row["items_timed"] / row["steady_s"])
        assert all(math.isfinite(row[figure]) for figure in figures)
        assert ("images_per_s" in rows) == (unit == "images")  # the image columns only where items are images

    summary = pd.read_csv(sweep / "summary.csv")
    assert len(summary) == 2 and (summary["unit"] == unit).all() and (summary["throughput"] > 0).all()
    rate = f"{unit}/s"
    assert f"{rate} [95% CI]" in result.stdout  # the terminal table's header
    report = (sweep / "report.md").read_text()
    assert f"| {rate} [95% CI] |" in report  # the report's table
    assert re.search(rf"at \d[\d,]*( \[[^\]]*\])? {re.escape(rate)}", report)  # its conclusion's sentence
    if unit != "images":
        assert "images/s" not in report and "images/s" not in result.stdout

    labels: list[str] = []  # what the plots write on their axes, drawn again from the same tables
    set_xlabel = matplotlib.axes.Axes.set_xlabel

    def record(ax, text, *args, **kwargs):
        labels.append(text)
        return set_xlabel(ax, text, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_xlabel", record)
    (tmp_path / "plots").mkdir()
    plots = make_plots(read_tables(sweep), tmp_path / "plots")
    assert {"throughput", "breakdown"} <= set(plots.written)
    assert any(rate in label for label in labels), labels


def test_each_example_config_folder_sets_only_what_differs_from_the_schema():
    """As tests/test_config.py checks conf/: a default lives in one place, the schema."""
    from pinsweep.config import Config

    for group in ("data", "model"):
        defaults = OmegaConf.to_container(OmegaConf.structured(Config)[group], throw_on_missing=False)
        for path in sorted(EXAMPLES.glob(f"*/conf/{group}/*.yaml")):
            option = OmegaConf.to_container(OmegaConf.load(path))
            repeated = [key for key, value in option.items() if key in defaults and value == defaults[key]]
            assert not repeated, f"{path} repeats the schema's default of {group}.{', '.join(repeated)}"
