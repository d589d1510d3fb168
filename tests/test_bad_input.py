"""Bad input: one clear line that names the key and the fix, a non-zero exit, and no `ok` row.

Most cases run as the jobs of ONE sweep (a config group with one option per bad input), so that the
real command line is tested without paying a Python start-up per case (the sweep's command line runs in
this process: tests/in_process.py); the single-run line, the type and key errors refused before any job,
and the summarizer's are each run as the user would type them, in a process of their own.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.datasets import CIFAR10

from pinsweep import summarize as summarize_command
from pinsweep.record import ROW_FILE, read_row
from tests.in_process import pinsweep_here

pytestmark = pytest.mark.slow

CUDA = torch.cuda.is_available()
FAST_JOB = (
    "data=synthetic",
    "model=tiny",
    "model.width=8",
    "data.train_size=256",
    "data.test_size=64",  # no loader.* here: a command-line override would win over the bad option's value
    "train.epochs=1",
    "train.ceiling_steps=2",
    "train.ceiling_budget_s=0.2",  # the one job that runs (pin_memory's warning) needs a ceiling, not a precise one
    "train.threads=1",  # two threads on two shared cores wait for each other at every op (tests/conftest.py)
    "isolate=false",  # validation fails within the sweep's own process: no job process to start
)

# option name -> (config it sets, words its error must contain: the key, and the fix)
BAD = {
    "negative_workers": ("loader:\n  num_workers: -1\n", ["loader.num_workers=-1", "must be >= 0"]),
    "zero_batch": ("loader:\n  batch_size: 0\n", ["loader.batch_size=0", "must be >= 1", "loader.batch_size=256"]),
    "prefetch_without_workers": (
        "loader:\n  prefetch_factor: 2\n",
        ["loader.prefetch_factor=2", "set loader.num_workers >= 1", "loader.prefetch_factor=null"],
    ),
    "persistent_without_workers": (
        "loader:\n  persistent_workers: true\n",
        ["loader.persistent_workers=true", "set loader.num_workers >= 1", "loader.persistent_workers=false"],
    ),
    "missing_dataset": (
        "data:\n  name: cifar10\n  root: nowhere\n  download: false\n",
        ["CIFAR-10 not found", "nowhere/cifar-10-batches-py", "Set data.root", "data=synthetic"],
    ),
    "corrupted_cifar": (
        "data:\n  name: cifar10\n  root: corrupted\n  download: false\n",
        ["fails its MD5 checksum (not loaded)", "download it again", "data=synthetic"],
    ),
}
if not CUDA:
    BAD["cuda_without_cuda"] = ("train:\n  device: cuda\n", ["train.device=cuda", "use train.device=auto or cpu"])
# not an error: a warning in the job's log, and the row says pin_memory did not act
PIN_WITHOUT_ACCELERATOR = "loader:\n  pin_memory: true\n"
PIN_WARNING = "loader.pin_memory=true has no effect without an accelerator"


class Tripwire:
    """Unpickling this leaves a folder behind: a data file that holds it proves it was never unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def _write_corrupted_cifar(root: Path, marker: Path) -> None:
    """Every file CIFAR-10 has, by name, in CIFAR's format (pickled), with contents that fail the MD5
    checksums torchvision knows."""
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)
    for name, _md5 in [*CIFAR10.train_list, *CIFAR10.test_list, (CIFAR10.meta["filename"], None)]:
        (folder / name).write_bytes(pickle.dumps(Tripwire(marker)))


@pytest.fixture(scope="module")
def bad_sweep(tmp_path_factory):
    """One sweep whose jobs each get one bad input (and one the pin_memory warning)."""
    home = tmp_path_factory.mktemp("bad_input")
    group = home / "conf" / "bad"
    group.mkdir(parents=True)
    options = {**{name: body for name, (body, _words) in BAD.items()}}
    if not CUDA:
        options["pin_without_accelerator"] = PIN_WITHOUT_ACCELERATOR
    for name, body in options.items():
        (group / f"{name}.yaml").write_text(f"# @package _global_\n{body}")
    marker = home / "unpickled"
    _write_corrupted_cifar(home / "corrupted", marker)
    sweep_dir = home / "sweep"
    with contextlib.chdir(home):  # data.root=nowhere and corrupted are relative: to where the user typed it
        result = pinsweep_here(
            "-m",
            *FAST_JOB,
            f"hydra.searchpath=[file://{home / 'conf'}]",
            "+bad=" + ",".join(options),
            f"hydra.sweep.dir={sweep_dir}",
        )
    rows = {}
    for job_dir in sweep_dir.iterdir():
        if job_dir.name.isdigit():
            overrides = (job_dir / ".hydra" / "overrides.yaml").read_text()
            option = next(name for name in options if f"+bad={name}\n" in overrides)
            rows[option] = read_row(job_dir) | {"job.dir": str(job_dir)}
    return {"result": result, "rows": rows, "home": home, "sweep_dir": sweep_dir, "marker": marker}


def test_the_bad_sweep_exits_non_zero_and_writes_its_summary(bad_sweep):
    assert bad_sweep["result"].returncode == 1, bad_sweep["result"].stderr[-3000:]
    assert (bad_sweep["sweep_dir"] / "summary.csv").exists()


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_input_is_one_clear_line_naming_the_key_and_the_fix(bad_sweep, case):
    row = bad_sweep["rows"][case]
    assert row["status"] == "invalid", row
    error = row["error"]
    assert "\n" not in error
    for words in BAD[case][1]:
        assert words in error, (words, error)
    # the same line is what the sweep logged for the job
    assert sum(error in line for line in bad_sweep["result"].stderr.splitlines()) == 1


def test_a_corrupted_cifar_file_is_never_unpickled(bad_sweep, tmp_path):
    assert bad_sweep["rows"]["corrupted_cifar"]["status"] == "invalid"
    assert not bad_sweep["marker"].exists()
    # the tripwire works: files made the same way leave their marker when unpickled
    _write_corrupted_cifar(tmp_path, tmp_path / "unpickled")
    pickle.loads((tmp_path / CIFAR10.base_folder / CIFAR10.train_list[0][0]).read_bytes())
    assert (tmp_path / "unpickled").is_dir()


@pytest.mark.skipif(CUDA, reason="pin_memory acts with an accelerator")
def test_pin_memory_without_an_accelerator_is_a_recorded_warning_not_an_error(bad_sweep):
    row = bad_sweep["rows"]["pin_without_accelerator"]
    assert row["status"] == "ok"
    assert bool(row["loader.pin_memory"]) and not bool(row["pin_memory_active"])
    job_log = (Path(row["job.dir"]) / "app.log").read_text()
    assert f"[WARNING] - {PIN_WARNING}" in job_log


def test_a_single_run_with_bad_input_prints_one_line_and_exits_non_zero(tmp_path):
    result = subprocess.run(
        # as a user runs it: the job in its own process (isolate=true), whose error the parent logs once
        [
            sys.executable,
            "-m",
            "pinsweep",
            *FAST_JOB,
            "isolate=true",
            "loader.num_workers=-1",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "[ERROR]" in lines[0] and "loader.num_workers=-1: must be >= 0" in lines[0]
    assert read_row(tmp_path / "run")["status"] == "invalid"


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("loader.num_workers=abc", ["loader.num_workers=abc", "could not be converted to Integer"]),
        ("loader.pin_memory=maybe", ["loader.pin_memory=maybe", "is not a valid bool"]),
        # an unknown key (a typo): pinsweep names it and the nearest real one (tests/test_bad_config.py has more)
        ("loader.num_wrokers=2", ["loader.num_wrokers: not a loader setting", "did you mean loader.num_workers?"]),
    ],
)
def test_a_wrong_type_or_an_unknown_key_is_refused_before_any_job(tmp_path, override, words):
    result = subprocess.run(
        [sys.executable, "-m", "pinsweep", "-m", *FAST_JOB, override, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    for word in words:
        assert word in result.stderr, result.stderr
    assert not list(tmp_path.rglob(ROW_FILE))  # Hydra refused the config: no job ran


def test_summarize_on_a_folder_without_rows(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pinsweep.summarize", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "no job rows found: point at a sweep folder that holds <job>/row.csv files" in result.stderr


@pytest.mark.parametrize(
    ("baseline", "words"),
    [
        ("loader.num_workers=7", ["--baseline loader.num_workers=7: not swept; its levels are -1, 0"]),
        ("loader.shuffle=false", ["--baseline loader.shuffle: not a swept axis; the axes are", "loader.num_workers"]),
    ],
)
def test_summarize_with_a_baseline_that_matches_no_group(bad_sweep, capsys, baseline, words):
    assert summarize_command.main([str(bad_sweep["sweep_dir"]), "--baseline", baseline]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    for word in words:
        assert word in error, error
