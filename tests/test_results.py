"""The results flow one way, each step once: rows -> tables -> terminal, plots, report. Counted on a fixed
sweep folder (tests/data/sweep_0.1.0, copied), with every step spied on wherever a module holds it."""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pinsweep import record
from pinsweep import report as report_command
from pinsweep.analysis import summarize
from pinsweep.autotune import confirm
from pinsweep.present import advice, plots, report
from pinsweep.sweep.callbacks import SummarizeOnMultirunEnd
from pinsweep.sweep.interrupt import Interrupted, finish_interrupted

OLD_SWEEP = Path(__file__).parent / "data" / "sweep_0.1.0"
STEPS: dict[str, Callable] = {
    "read_rows": record.read_rows,  # the rows, from the job folders
    "summarize": summarize.summarize,  # the tables
    "read_tables": summarize.read_tables,  # the tables, read back from the CSVs
    "make_plots": plots.make_plots,
    "advise": advice.advise,
    "conclusion": report.conclusion,
    "read_outcome": confirm.read_outcome,  # an auto-tune's outcome file
    "write_report": report.write_report,
}


@pytest.fixture
def sweep(tmp_path) -> Path:
    folder = Path(shutil.copytree(OLD_SWEEP, tmp_path / "sweep"))
    for name in ("summary.csv", "effects.csv"):  # as a sweep ends: no tables yet
        (folder / name).unlink()
    return folder


@pytest.fixture
def calls(monkeypatch) -> Counter:
    """How often each step ran: each replaced by a counting wrapper in every pinsweep module that holds it
    (`from x import f` binds f in the importer too), so no route around the count exists."""
    counts: Counter = Counter()

    def counting(name: str, original: Callable) -> Callable:
        def spy(*args, **kwargs):
            counts[name] += 1
            return original(*args, **kwargs)

        return spy

    for name, original in STEPS.items():
        spy = counting(name, original)
        for module in [m for key, m in list(sys.modules.items()) if key.split(".")[0] == "pinsweep"]:
            for attribute, value in list(vars(module).items()):
                if value is original:
                    monkeypatch.setattr(module, attribute, spy)
    return counts


def _outcome(sweep_dir: Path) -> None:
    """An auto-tune's outcome beside the rows, so that the report quotes it."""
    config = {"loader.num_workers": "2"}
    baseline = {"loader.num_workers": "0"}
    outcome = confirm.Outcome(config, 500.0, baseline, [config], 3, config, False, True, speedup=1.5)
    confirm.write_outcome(sweep_dir, outcome)


def test_the_end_of_a_sweep_computes_the_summary_and_the_conclusion_once(sweep, calls, capsys):
    _outcome(sweep)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    SummarizeOnMultirunEnd().on_multirun_end(config)  # every job was ok: no SystemExit
    assert calls == {
        "read_rows": 1,
        "summarize": 1,
        "make_plots": 1,
        "advise": 1,
        "conclusion": 1,
        "read_outcome": 1,
        "write_report": 1,
    }
    printed = capsys.readouterr().out
    assert printed.count("pinsweep summary, fastest first") == 1 and printed.count("conclusion:") == 1
    assert printed.count("auto-tune:") == 1
    markdown = (sweep / "report.md").read_text()
    assert markdown.count("## Auto-tune: search pick and confirmed pick") == 1
    assert (sweep / "summary.csv").is_file() and (sweep / "effects.csv").is_file()


def test_a_stopped_sweep_summarizes_once(sweep, calls, capsys):
    assert finish_interrupted(Interrupted(15, str(sweep))) == 143
    assert calls["read_rows"] == calls["summarize"] == calls["conclusion"] == 1
    assert "resume with: python -m pinsweep.resume" in capsys.readouterr().err


def test_pinsweep_report_reads_the_rows_once(sweep, calls):
    assert report_command.main([str(sweep)]) == 0  # no summary.csv yet: summarizes first
    assert calls["read_rows"] == calls["summarize"] == calls["conclusion"] == 1
    assert calls["read_tables"] == 0
    calls.clear()
    assert report_command.main([str(sweep)]) == 0  # summary.csv now current: the tables read back
    assert calls["read_rows"] == calls["read_tables"] == calls["conclusion"] == 1
    assert calls["summarize"] == 0
