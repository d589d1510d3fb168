"""A folder the user cannot write (issue 32): every command refuses in one line naming the folder and the
permission, exits 1, and writes nothing; `pinsweep.summarize` still prints the tables of a read-only sweep.

The tests run as root here, and root passes any mode bits, so a read-only folder is made as root can feel
it: `chattr +i` (an immutable folder: EPERM), else a read-only bind mount (EROFS); under another user,
`chmod 0555` (EACCES). Where none of them can be made, the test skips, saying why. Each case is one
command called in this process (sys.argv or argv), one in a real subprocess for the command line.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

import pinsweep.__main__ as cli
from pinsweep import report, summarize
from pinsweep.sweep import lock
from pinsweep.sweep import resume as resume_module

OLD_SWEEP = Path(__file__).parent / "data" / "sweep_0.1.0"
SAVED_SWEEP = """hydra:
  overrides:
    task: [data=synthetic]
    hydra: []
  runtime:
    cwd: /
    config_sources: []
"""


def _try(*command: str) -> bool:
    return shutil.which(command[0]) is not None and subprocess.run(command, capture_output=True).returncode == 0


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], Path]]:
    """read_only(folder) -> folder, made read-only for this process until the test ends."""
    undo: list[tuple[str, ...]] = []

    def make(folder: Path) -> Path:
        if os.geteuid() != 0:
            folder.chmod(0o555)
            undo.append(("chmod", "0755", str(folder)))
        elif _try("chattr", "+i", str(folder)):
            undo.append(("chattr", "-i", str(folder)))
        elif _try("mount", "--bind", str(folder), str(folder)):
            undo.append(("umount", str(folder)))
            if not _try("mount", "-o", "remount,ro,bind", str(folder)):
                pytest.skip(f"root here, and neither chattr +i nor a read-only bind mount works on {folder}")
        else:
            pytest.skip(f"root here, and neither chattr +i nor a bind mount works on {folder}")
        return folder

    yield make
    for command in reversed(undo):
        subprocess.run(command, check=True)


def _snapshot(folder: Path) -> dict[str, int]:
    """Every path under `folder` with its modification time: what a command wrote, it changed."""
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in [folder, *folder.rglob("*")]}


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def no_sweep_starts(monkeypatch):
    """pinsweep's main() past the folder check would start Hydra in pytest's process: fail at once instead."""

    def reached(*args, **kwargs):
        raise AssertionError("the folder was not refused before the sweep's start-up")

    monkeypatch.setattr(cli, "refuse_if_in_use", reached)


# ---- the command line's folder, before Hydra starts: one case a command line -----------------------------

# (arguments, the folder named, the folder to create (or None), the override the line advises); {ro} is a
# read-only folder, {file} a plain file, and a command line without a folder runs in {ro} (Hydra's defaults)
MAIN_CASES = [
    ("-m data=synthetic hydra.sweep.dir={ro}/sweep", "{ro}", "{ro}/sweep", "hydra.sweep.dir"),
    ("-m data=synthetic hydra.sweep.dir={ro}", "{ro}", None, "hydra.sweep.dir"),  # a re-run into a finished sweep
    ("--multirun hydra.sweep.dir={ro}/a/b/s_${{now:%H}}", "{ro}", "{ro}/a/b", "hydra.sweep.dir"),
    ("hydra.mode=MULTIRUN hydra.sweep.dir='{ro}/x'", "{ro}", "{ro}/x", "hydra.sweep.dir"),
    ("-m data=synthetic", "{ro}", "multirun", "hydra.sweep.dir"),  # conf/config.yaml's multirun/<time>
    ("experiment=autotune", "{ro}", "multirun", "hydra.sweep.dir"),  # a search is a sweep without -m
    ("data=synthetic hydra.run.dir={ro}/run", "{ro}", "{ro}/run", "hydra.run.dir"),  # a single run
    ("data=synthetic", "{ro}", "outputs", "hydra.run.dir"),  # conf/config.yaml's outputs/<time>
]


@pytest.mark.parametrize(("arguments", "named", "created", "key"), MAIN_CASES)
def test_pinsweep_refuses_a_folder_it_cannot_write(
    arguments, named, created, key, tmp_path, read_only, monkeypatch, capsys, no_sweep_starts
):
    (tmp_path / "ro").mkdir()
    ro = read_only(tmp_path / "ro")
    before = _snapshot(tmp_path)
    monkeypatch.chdir(ro)
    monkeypatch.setattr(sys, "argv", ["pinsweep", *arguments.format(ro=ro).split()])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    line = str(exited.value.code)
    folder = named.format(ro=ro)
    target = f" (to create {created.format(ro=ro)})" if created else ""
    assert line.startswith(f"pinsweep: cannot write {folder}{target}: ")
    assert line.endswith(f": choose another {key}=")
    assert "\n" not in line and ", running as " in line  # the permission: mode, owner, this user
    assert _snapshot(tmp_path) == before  # nothing written, no folder made


def test_a_file_in_the_path_is_named(tmp_path, monkeypatch, no_sweep_starts):
    (tmp_path / "f").write_text("")
    monkeypatch.setattr(sys, "argv", ["pinsweep", "-m", f"hydra.sweep.dir={tmp_path}/f/sweep"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == (
        f"pinsweep: cannot write {tmp_path}/f (to create {tmp_path}/f/sweep): Not a directory "
        f"({tmp_path}/f is a file): choose another hydra.sweep.dir="
    )


# (arguments, what output_folder finds): where each command line writes, with nothing on disk consulted
FOLDER_CASES = [
    ([], ("outputs", "hydra.run.dir")),
    (["-m"], ("multirun", "hydra.sweep.dir")),
    (["experiment=autotune"], ("multirun", "hydra.sweep.dir")),
    (["experiment=quick", "hydra.run.dir=r"], ("r", "hydra.run.dir")),
    (["-m", "hydra.sweep.dir='/a b'"], ("/a b", "hydra.sweep.dir")),
    (["-m", "++hydra.sweep.dir=s_${now:%H}"], (".", "hydra.sweep.dir")),
    (["-m", "hydra.sweep.dir=x/${now:%H}/y", "hydra.sweep.dir=z"], ("z", "hydra.sweep.dir")),  # the last wins
    (["--cfg", "job", "-m"], None),  # Hydra only prints
    (["--help"], None),
]


@pytest.mark.parametrize(("arguments", "found"), FOLDER_CASES)
def test_the_folder_a_command_line_writes(arguments, found):
    assert cli.output_folder(arguments) == found


# ---- cannot_write itself ---------------------------------------------------------------------------------


def test_a_writable_folder_passes_and_keeps_nothing(tmp_path):
    assert lock.cannot_write(tmp_path) is None
    assert lock.cannot_write(tmp_path / "new" / "deeper") is None  # its nearest existing parent is writable
    assert list(tmp_path.iterdir()) == []  # the probe removed again, nothing made


def test_the_probe_answers_where_access_says_yes(tmp_path, read_only, monkeypatch):
    """NFS root_squash, FUSE and some ACLs: os.access says writable, the write is refused."""
    ro = read_only(tmp_path)
    monkeypatch.setattr(lock.os, "access", lambda *args, **kwargs: True)
    line = lock.cannot_write(ro)
    assert line is not None and line.startswith(f"cannot write {ro}: ")
    assert any(f": {os.strerror(code)} (" in line for code in (errno.EPERM, errno.EROFS, errno.EACCES))


def test_permission_denied_names_the_mode_and_the_user(tmp_path, monkeypatch):
    """Another user's folder, as a user other than root sees it (os.access says no, the mode bits decide)."""
    tmp_path.chmod(0o555)
    monkeypatch.setattr(lock.os, "access", lambda *args, **kwargs: False)
    monkeypatch.setattr(lock.os, "geteuid", lambda: 65534)
    line = lock.cannot_write(tmp_path / "sweep")
    owner = lock._user(tmp_path.stat().st_uid)
    assert line == (
        f"cannot write {tmp_path} (to create {tmp_path}/sweep): Permission denied "
        f"(dr-xr-xr-x {owner}, running as {lock._user(65534)})"
    )
    tmp_path.chmod(0o755)


def test_a_sweep_folder_set_in_a_config_file_is_refused_as_the_sweep_starts(tmp_path, read_only, capsys):
    ro = read_only(tmp_path)
    with pytest.raises(SystemExit) as exited:
        lock.hold_until_exit(ro / "sweep")
    assert exited.value.code == 1
    assert _one_line(capsys.readouterr().err).endswith(": choose another hydra.sweep.dir=")
    assert not (ro / "sweep").exists()


# ---- the commands on a read-only finished sweep: one case a command --------------------------------------


@pytest.fixture
def finished_sweep(tmp_path) -> Path:
    sweep = tmp_path / "sweep"
    shutil.copytree(OLD_SWEEP, sweep)
    (sweep / "multirun.yaml").write_text(SAVED_SWEEP)
    (sweep / "0" / "row.csv").touch()  # newer than summary.csv: a command would summarize again
    return sweep


# (command, the end of its one line on stderr, whether it prints the tables)
COMMAND_CASES = [
    (summarize.main, "summary.csv and effects.csv not written (the tables above are printed only); to keep "
     "them, copy the folder somewhere writable and summarize the copy", True),
    (report.main, "the report and plots are written into the sweep folder; copy it somewhere writable and "
     "report the copy (python -m pinsweep.summarize {sweep} prints the tables without writing)", False),
    (resume_module.main, "a resume writes into the sweep's own folder; copy it somewhere writable (cp -r) and "
     "resume the copy", False),
]  # fmt: skip


@pytest.mark.parametrize(("command", "ending", "tables"), COMMAND_CASES, ids=["summarize", "report", "resume"])
def test_a_command_on_a_read_only_sweep(command, ending, tables, finished_sweep, read_only, capsys, monkeypatch):
    started = SimpleNamespace(run=lambda *args, **kwargs: pytest.fail("resume started a sweep"))
    monkeypatch.setattr(resume_module, "subprocess", started)
    sweep = read_only(finished_sweep)
    before = _snapshot(sweep)
    assert command([str(sweep)]) == 1
    out, err = capsys.readouterr()
    line = _one_line(err)
    assert line.startswith(f"pinsweep.{command.__module__.split('.')[-1]}: cannot write {sweep}: ")
    assert line.endswith(ending.format(sweep=sweep))
    assert ("per-axis effects" in out) == tables
    assert _snapshot(sweep) == before


def test_a_read_only_folder_without_rows_says_so_first(tmp_path, read_only, capsys):
    empty = read_only(tmp_path)
    assert summarize.main([str(empty)]) == 2
    assert "no job rows" in _one_line(capsys.readouterr().err)


def test_the_command_line_refuses_before_torch(tmp_path, read_only, run_pinsweep):
    """The real command line, once: one line on stderr, exit 1, in about a second (no torch, no Hydra)."""
    ro = read_only(tmp_path)
    done = run_pinsweep("-m", "data=synthetic", f"hydra.sweep.dir={ro}/sweep", cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    assert _one_line(done.stderr).startswith(f"pinsweep: cannot write {ro} (to create {ro}/sweep): ")
    assert done.stdout == ""
