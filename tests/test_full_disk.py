"""A disk that fills up at the end of a sweep: every row stays, every output that fits is written, each
one that does not is one line with the real error (no traceback, no half-written file, no guessed cause),
and the sweep exits non-zero. A bug is not a disk problem and is never reported as one."""

from __future__ import annotations

import errno
import itertools
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pinsweep import report as report_command
from pinsweep.app import run_and_record
from pinsweep.record import read_rows
from pinsweep.sweep.results import write_results
from tests.in_process import pinsweep_here

BLOCKED = ("breakdown.png", "report.html")
# the outputs are the point here, not the jobs: no ceilings, no evaluation, one epoch
LEAN = ("train.epochs=1", "train.ceiling_steps=0", "train.evaluate=false")


def _grid_rows(compose_cfg, tiny_job, sweep_dir: Path) -> Path:
    """The rows of a 2x2 sweep (num_workers 0,1 x pin_memory true,false: two axes, so every plot is
    drawn), each job run in this process as a sweep's job runs, into its own numbered folder; no outputs."""
    grid = itertools.product(
        ("loader.num_workers=0", "loader.num_workers=1"), ("loader.pin_memory=true", "loader.pin_memory=false")
    )
    for num, overrides in enumerate(grid):
        row = run_and_record(
            compose_cfg(*tiny_job, *LEAN, "isolate=false", *overrides), sweep_dir / str(num), num, " ".join(overrides)
        )
        assert row["status"] == "ok", row["error"]
    return sweep_dir


def test_an_output_that_cannot_be_written_is_one_line_and_the_others_are_written(
    compose_cfg, tiny_job, tmp_path, caplog
):
    sweep_dir = _grid_rows(compose_cfg, tiny_job, tmp_path / "sweep")
    for name in BLOCKED:  # a folder where the file should go: writing it fails with an OSError, as on a full disk
        (sweep_dir / name).mkdir()
    rows_before = read_rows(sweep_dir)

    with caplog.at_level(logging.INFO, logger="pinsweep"):
        problems = write_results(sweep_dir)

    assert problems == len(BLOCKED)  # no job failed: the two files not written make the sweep exit 1
    failures = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not [record for record in failures if record.exc_info], "a traceback for a file not written"
    lines = [record.getMessage() for record in failures]
    for name in BLOCKED:  # the system's own words, errno and the path, never a guess
        said = f"{name} not written: [Errno {errno.EISDIR}] Is a directory: '{sweep_dir / name}'"
        assert sum(said == line for line in lines) == 1, lines
    assert any(line.startswith("2 output(s) not written (breakdown.png, report.html)") for line in lines), lines
    assert not [line for line in lines if "free space" in line], lines
    for name in ("summary.csv", "effects.csv", "throughput.png", "report.md", "heatmap.png"):
        assert (sweep_dir / name).is_file(), name
    assert "breakdown.png" not in (sweep_dir / "report.md").read_text()  # the report shows only what was written
    assert read_rows(sweep_dir).equals(rows_before)

    assert report_command.main([str(sweep_dir)]) == 1  # the command too: a file it could not write
    for name in BLOCKED:
        (sweep_dir / name).rmdir()
    assert report_command.main([str(sweep_dir)]) == 0
    assert (sweep_dir / "breakdown.png").is_file() and (sweep_dir / "report.html").is_file()


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    folder.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]).returncode == 0


@pytest.mark.slow
def test_a_sweep_on_a_disk_that_fills_up_keeps_its_rows_and_exits_1(tmp_path, monkeypatch, tiny_job):
    """The real thing: the sweep folder on a 120 KB file system, which holds the rows, the tables and
    the markdown report but not every plot nor the self-contained report (plots embedded). The sweep's
    command line runs in this process (tests/in_process.py): what it writes, says and exits with is the
    point, not its process."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "120k"):
        pytest.skip("mounting a small tmpfs needs root; the test above fails the writes another way")
    try:
        sweep_dir = disk / "sweep"
        # the jobs in this process too (torch is imported here already; no fork server to start)
        sweep = ("-m", *tiny_job, *LEAN, "isolate=false", "loader.num_workers=0,1", f"hydra.sweep.dir={sweep_dir}")
        monkeypatch.chdir(tmp_path)
        result = pinsweep_here(*sweep)
        assert result.returncode == 1, result.stderr[-3000:]
        assert "Traceback" not in result.stderr and "Logging error" not in result.stderr, result.stderr[-3000:]
        said = re.compile(rf" not written: \[Errno {errno.ENOSPC}\] No space left on device: '(.+)'$")
        not_written = [found[1] for line in result.stderr.splitlines() if (found := said.search(line))]
        assert not_written, result.stderr[-3000:]
        for path in not_written:
            assert Path(path).parent == sweep_dir and not Path(path).exists(), f"{path}: a partial file was left"
        # nor any temporary file the writes went through (pinsweep.outputs.replacing)
        assert not [p.name for p in sweep_dir.glob(".*") if p.suffix in (".png", ".html", ".md", ".csv")]
        assert read_rows(sweep_dir)["status"].tolist() == ["ok", "ok"]
        assert (sweep_dir / "summary.csv").is_file()
    finally:
        subprocess.run(["umount", str(disk)], check=False)
