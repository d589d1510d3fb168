"""Every result file follows the user's umask (0666 & ~umask), as any file the user creates: a colleague
reads a sweep on a shared folder when the umask says so, and nobody does under 077. All of them go
through pinsweep.outputs.replacing, which also leaves no temporary file behind. Small fixed rows, the
results flow in process."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pinsweep.analysis.sequential import Stopping
from pinsweep.autotune.confirm import Outcome, write_outcome
from pinsweep.outputs import WriteError, replacing
from pinsweep.record import write_ranks, write_row
from pinsweep.sweep.results import write_results


@pytest.fixture(params=[(0o022, 0o644), (0o077, 0o600)], ids=["umask-022", "umask-077"])
def umask(request):
    """(umask set for the test, the mode every file must have); the process's own umask back after it."""
    mask, mode = request.param
    before = os.umask(mask)
    yield mask, mode
    os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _row(workers: int, repeat: int, ips: float) -> dict:
    return {
        "loader.num_workers": workers,
        "train.repeat": repeat,
        "status": "ok",
        "device": "cpu",
        "unit": "images",
        "throughput": ips,
        "steady_s": 1.0,
        "data_wait_s": 0.3,
        "copy_s": 0.0,
        "compute_s": 0.7,
        "compute_ceiling_ips": 2 * ips,
        "compute_ceiling_ci_rel": 0.02,
    }


def test_every_result_file_has_the_umasks_mode(umask, tmp_path):
    _, mode = umask
    sweep = tmp_path / "sweep"
    for job, (workers, repeat, ips) in enumerate([(0, 0, 100.0), (2, 0, 180.0), (0, 1, 104.0), (2, 1, 176.0)]):
        write_row(sweep / str(job), _row(workers, repeat, ips))
        write_ranks(sweep / str(job), [{"rank": 0, "steps": 8}])
    assert write_results(sweep) == 0  # summary.csv, effects.csv, the plots, report.html, report.md
    Stopping(rounds=2, state="resolved").write(sweep)  # rounds.json
    write_outcome(sweep, Outcome({}, 1.0, {}, [], 2, {}, True, True))  # autotune.yaml
    files = [path for path in sweep.rglob("*") if path.is_file() and path.name != ".summary.lock"]  # filelock's
    written = {path.relative_to(sweep).as_posix(): oct(_mode(path)) for path in files}
    assert sorted(written) == [
        *(f"{job}/{name}" for job in range(4) for name in ("ranks.csv", "row.csv")),
        *("autotune.yaml", "breakdown.png", "effects.csv", "report.html", "report.md", "rounds.json"),
        *("summary.csv", "throughput.png"),
    ]  # and no temporary file left
    assert written == dict.fromkeys(written, oct(mode))


def test_a_failed_write_names_the_file_meant_and_leaves_nothing(tmp_path, umask):
    target = tmp_path / "report.html"
    target.write_text("the earlier report\n")
    with pytest.raises(WriteError) as failed, replacing(target) as temporary:
        temporary.write_text("half a")
        raise OSError(28, "No space left on device")  # as a write on a full disk raises it
    assert str(failed.value) == f"[Errno 28] No space left on device: '{target}'"
    assert target.read_text() == "the earlier report\n" and os.listdir(tmp_path) == ["report.html"]
    with pytest.raises(KeyError), replacing(target):  # a bug passes through as itself
        raise KeyError("effect")
    assert os.listdir(tmp_path) == ["report.html"]
