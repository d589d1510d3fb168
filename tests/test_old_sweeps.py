"""A sweep folder written by pinsweep 0.1.0 (rows, summary.csv and effects.csv as that version wrote
them, in tests/data/sweep_0.1.0) summarizes to the same tables and reports, and every place a person
reads a ratio spells it the same way."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from pinsweep import report as report_command
from pinsweep import summarize as summarize_command
from pinsweep.analysis.summarize import OVERALL, read_effects, read_summary
from pinsweep.present.wording import ratio_interval

OLD_SWEEP = Path(__file__).parent / "data" / "sweep_0.1.0"


@pytest.fixture
def old_sweep(tmp_path) -> Path:
    return Path(shutil.copytree(OLD_SWEEP, tmp_path / "sweep"))


def test_an_old_sweep_summarizes_to_the_tables_it_wrote(old_sweep):
    assert summarize_command.main([str(old_sweep)]) == 0
    written = read_summary(OLD_SWEEP / "summary.csv")
    summary = read_summary(old_sweep / "summary.csv")
    # new columns may be added, none changed but the verdicts that rested on an imprecise compute-only ceiling:
    # 0.1.0 called num_workers=2 compute-bound at 175% of a ceiling it beat, num_workers=0 contended against a
    # ceiling known to +-19% (its rows' compute_ceiling_ci_rel)
    same = [column for column in written.columns if column != "verdict"]
    pd.testing.assert_frame_equal(summary[same], written[same])
    assert written["verdict"].tolist() == ["contended", "compute-bound"]
    assert summary["verdict"].tolist() == ["ceiling imprecise", "ceiling imprecise"]
    assert summary["ceiling_imprecise"].tolist() == [True, True]
    assert summary["compute_ceiling_ci_rel"].round(2).tolist()[0] == 0.19
    written_effects = read_effects(OLD_SWEEP / "effects.csv")
    effects = read_effects(old_sweep / "effects.csv")
    pd.testing.assert_frame_equal(effects[written_effects.columns], written_effects)  # the same for effects


def test_terminal_table_and_report_spell_a_ratio_and_its_interval_one_way(old_sweep, capsys):
    assert summarize_command.main([str(old_sweep)]) == 0
    printed = capsys.readouterr().out
    assert report_command.main([str(old_sweep)]) == 0
    markdown = (old_sweep / "report.md").read_text()
    html = (old_sweep / "report.html").read_text()
    effect = read_effects(old_sweep / "effects.csv")
    effect = effect[effect["held_fixed"] == OVERALL].iloc[0]
    speedup = read_summary(old_sweep / "summary.csv").dropna(subset=["speedup_ci_low"]).iloc[0]
    for text in (
        ratio_interval(effect["ratio"], effect["ci_low"], effect["ci_high"]),
        ratio_interval(speedup["speedup"], speedup["speedup_ci_low"], speedup["speedup_ci_high"]),
    ):
        assert text.endswith("]") and "x [" in text  # `1.68x [0.01, 552.93]`
        assert text in printed and text in markdown and text in html, text
