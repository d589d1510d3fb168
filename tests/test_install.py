"""pinsweep as a user installs it: a wheel built from this checkout, installed into a fresh virtual
environment, run by its commands from a folder outside the checkout, with the user's own experiment,
dataset and model kept in that folder; and the same checkout installed editable (`pip install -e .`),
as the README says. Either way Hydra finds pinsweep's plugins and configs in a process that never
imported pinsweep, its plugin scan imports nothing heavy, and a plain Hydra app still runs under -Werror.

The fresh environments reuse this interpreter's packages (torch included, so nothing is downloaded)
whether the suite runs in the base interpreter, a venv or a conda env: `--system-site-packages` would
reach only the base interpreter's, so each new venv gets a .pth file listing this interpreter's own
package folders instead (see `_reuse_packages`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
import pytest
from packaging.requirements import Requirement
from test_hydra_plugins import HEAVY, SCAN, write_user_app

from pinsweep.record import read_rows

# what the tests here look at is where things run from, not the job's figures: no ceilings, no evaluation
LEAN = ("train.ceiling_steps=0", "train.evaluate=false")

# the user's own project: a package with a Dataset and a model, and a config folder naming them
USER_FILES = {
    "mypkg/__init__.py": "",
    "mypkg/pipeline.py": """
import torch
from torch import nn
from torch.utils.data import Dataset


class Noise(Dataset):
    def __init__(self, size=256, train=True):
        self.size, self.offset = size, 0 if train else 10**6

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(self.offset + index)
        return torch.randn(3, 32, 32, generator=generator), index % 10


class Linear(nn.Module):
    def __init__(self, num_classes=10, scale=1.0):
        super().__init__()
        self.scale, self.net = scale, nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))

    def forward(self, images):
        return self.scale * self.net(images)
""",
    "sweeps/data/noise.yaml": "name: custom\n_target_: mypkg.pipeline.Noise\nkwargs:\n  size: 256\n",
    "sweeps/model/linear.yaml": "name: custom\n_target_: mypkg.pipeline.Linear\nkwargs:\n  scale: 0.5\n",
    "sweeps/experiment/my_sweep.yaml": """# @package _global_
defaults:
  - override /data: noise
  - override /model: linear
loader:
  batch_size: 64
train:
  epochs: 1
  ceiling_steps: 0
  evaluate: false
hydra:
  sweeper:
    params:
      loader.num_workers: 0,1
""",
}


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"{command} exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    return result


def _reuse_packages(venv: Path, repo_root: Path, env: dict[str, str]) -> None:
    """Make a new venv see the packages of the interpreter running this suite (base, venv or conda env
    alike): one .pth line per folder on that interpreter's own path, as a fresh process of it has it.
    Plain path lines only: the .pth files in those folders (an editable pinsweep's import hook) do not
    run in the venv, and nothing from the checkout is listed, so the venv's pinsweep is the one
    installed into it."""
    python = str(venv / "bin" / "python")
    probe = "import json, site, sys; print(json.dumps([sys.path, site.getsitepackages()]))"
    theirs, _ = json.loads(_run([sys.executable, "-c", probe], venv, env).stdout)
    ours, (site_packages, *_) = json.loads(_run([python, "-c", probe], venv, env).stdout)
    folders = [
        entry
        for entry in theirs
        if entry and Path(entry).is_dir() and entry not in ours and not Path(entry).resolve().is_relative_to(repo_root)
    ]
    Path(site_packages, "_pinsweep_test_reuse.pth").write_text("".join(f"{folder}\n" for folder in folders))


def _venv(root: Path, name: str, repo_root: Path, env: dict[str, str]) -> Path:
    """A fresh venv (its bin folder) that reuses this interpreter's packages and holds no pinsweep yet."""
    venv = root / name
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root, env)
    _reuse_packages(venv, repo_root.resolve(), env)
    return venv / "bin"


@pytest.fixture(scope="module")
def source(repo_root, tmp_path_factory) -> Path:
    """A copy of the files git would ship (tracked and new ones), so no stale build/ leaks in."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo_root, capture_output=True, check=True
    )
    source = tmp_path_factory.mktemp("source") / "pinsweep"
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (repo_root / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((repo_root / name).read_bytes())
    return source


def _no_build_isolation(repo_root: Path) -> list[str]:
    """`--no-build-isolation` (offline: this interpreter's setuptools builds pinsweep) where that setuptools
    meets pyproject.toml's build requirement; else [], pip's own isolated build, which fetches a new
    enough one, as the README's `pip install -e .` itself did (a fresh venv's bundled setuptools is older,
    or absent from Python 3.12 on)."""
    # [build-system]'s one requirement (tomllib is Python 3.11+; this suite runs on 3.10 too)
    backend = re.search(r'^requires = \["([^"]+)"\]', (repo_root / "pyproject.toml").read_text(), re.M)
    requirement = Requirement(backend.group(1))
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        return []
    return ["--no-build-isolation"] if requirement.specifier.contains(installed, prereleases=True) else []


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}


@pytest.fixture(scope="module")
def installed(repo_root, source, tmp_path_factory):
    """(bin folder of a venv holding only the built wheel, the user's folder, its environment)."""
    root = tmp_path_factory.mktemp("install")
    env = _clean_env()
    bin_dir = _venv(root, "venv", repo_root, env)
    # one pip: it builds the wheel from the source copy (PEP 517, as `pip wheel` does) and installs that wheel
    offline = _no_build_isolation(repo_root)
    install = [str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", *offline]
    install += ["--no-index"] if offline else []  # built by this interpreter's setuptools: nothing to fetch
    installing = _run([*install, str(source)], root, env)
    assert re.search(r"Building wheel for pinsweep|Created wheel for pinsweep", installing.stdout), installing.stdout
    user = root / "user"
    for name, text in USER_FILES.items():
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_text(text)
    return bin_dir, user, env


@pytest.fixture(scope="module")
def editable(repo_root, source, tmp_path_factory):
    """(bin folder of a venv holding the source copy installed editable, as the README's command 1)."""
    root = tmp_path_factory.mktemp("editable")
    env = _clean_env()
    bin_dir = _venv(root, "venv", repo_root, env)
    install = [str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", *_no_build_isolation(repo_root)]
    _run([*install, "-e", str(source)], root, env)
    return bin_dir, root, env


@pytest.fixture(scope="module")
def user_sweep(installed) -> Path:
    """ONE sweep from the user's folder, outside the checkout, by the wheel's `pinsweep` command: the
    user's experiment (their dataset and model, from their config folder) over the wheel's own configs
    (config.yaml, loader, train, the sweeper, the callbacks). Read by the two tests below; the resume test
    re-runs it into its folder, every job skipped."""
    bin_dir, user, env = installed
    sweep_dir = user / "multirun" / "mine"
    command = [str(bin_dir / "pinsweep"), "--config-dir", "sweeps", "-m", "experiment=my_sweep"]
    _run([*command, f"hydra.sweep.dir={sweep_dir}"], user, {**env, "PYTHONPATH": str(user)})
    return sweep_dir


@pytest.mark.slow
def test_the_wheel_ships_its_configs_and_runs_from_any_folder(installed, user_sweep, repo_root):
    bin_dir, user, env = installed
    # where the venv finds pinsweep and torch (the sweep imported torch from there: its jobs ran)
    find = "import importlib.util, pinsweep; print(pinsweep.__file__); print(importlib.util.find_spec('torch').origin)"
    pinsweep_file, torch_file = _run([str(bin_dir / "python"), "-c", find], user, env).stdout.split()
    assert pinsweep_file.startswith(str(bin_dir.parent)), pinsweep_file  # the wheel, not the checkout
    assert not torch_file.startswith(str(bin_dir.parent)), torch_file  # this interpreter's torch, not a download
    # every config file of the checkout's conf/, in the wheel's pinsweep/conf ...
    shipped = Path(pinsweep_file).parent / "conf"
    configs = sorted(str(path.relative_to(repo_root / "conf")) for path in (repo_root / "conf").rglob("*.yaml"))
    assert configs and [name for name in configs if not (shipped / name).is_file()] == []
    # ... composed from there where no config folder of the user's is named (the wheel's own data and model)
    composed = _run([str(bin_dir / "pinsweep"), "data=synthetic", "model=tiny", "--cfg", "job"], user, env).stdout
    assert "name: synthetic" in composed and "name: tiny" in composed, composed

    # the sweep the wheel's `pinsweep` ran from the user's folder: its rows and every output
    rows = read_rows(user_sweep)
    assert rows["status"].tolist() == ["ok", "ok"] and sorted(rows["loader.num_workers"]) == [0, 1]
    for name in ("summary.csv", "effects.csv", "throughput.png", "report.html", "report.md"):
        assert (user_sweep / name).is_file(), name
    summarized = _run([str(bin_dir / "pinsweep-summarize"), str(user_sweep)], user, env)
    assert "num_workers" in summarized.stdout and f"wrote {user_sweep / 'summary.csv'}" in summarized.stdout
    for tool in ("pinsweep-report", "pinsweep-resume"):
        assert "usage:" in _run([str(bin_dir / tool), "--help"], user, env).stdout


@pytest.mark.slow
def test_the_users_own_experiment_dataset_and_model_run_from_their_config_folder(installed, user_sweep):
    bin_dir, user, env = installed
    rows = read_rows(user_sweep)
    assert rows["status"].tolist() == ["ok", "ok"], rows.get("error")
    assert set(rows["data._target_"]) == {"mypkg.pipeline.Noise"}
    assert set(rows["model._target_"]) == {"mypkg.pipeline.Linear"}
    assert sorted(rows["loader.num_workers"]) == [0, 1]
    assert set(rows["data.kwargs"]) == {'{"size": 256}'} and set(rows["model.kwargs"]) == {'{"scale": 0.5}'}
    assert len(pd.read_csv(user_sweep / "summary.csv")) == 2
    # resume re-runs the sweep with its config folder (Hydra records --config-dir as a source, not an override)
    resumed = _run([str(bin_dir / "pinsweep-resume"), str(user_sweep)], user, {**env, "PYTHONPATH": str(user)})
    assert "--config-dir" in resumed.stderr and "resume: job #1 already has an ok row, skipped" in resumed.stderr


@pytest.mark.slow
@pytest.mark.parametrize("install", ["installed", "editable"])
def test_hydra_finds_the_plugins_and_configs_in_a_process_that_never_imported_pinsweep(install, request, source):
    bin_dir, where, env = request.getfixturevalue(install)[:3]
    python = str(bin_dir / "python")
    located = _run([python, "-c", "import pinsweep; print(pinsweep.__file__)"], where, env).stdout.strip()
    assert located.startswith(str(source if install == "editable" else bin_dir.parent)), located

    scan = json.loads(_run([python, "-c", SCAN], where, env).stdout)
    assert "PinsweepSweeper" in scan["sweepers"] and "LocalGpuLauncher" in scan["launchers"], scan
    heavy = [m for m in scan["modules"] if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]
    assert not heavy, f"the plugin scan imported {heavy[:10]}"
    print(f"{install}: plugin scan {scan['scan_s']:.3f} s")

    # a user's own app reaches the sweeper and launcher presets through pkg://pinsweep.conf
    app = write_user_app(where / "app", searchpath=True)
    shown = _run([python, str(app), "--cfg", "hydra", "hydra/sweeper=pinsweep", "hydra/launcher=local"], where, env)
    assert "hydra_plugins.pinsweep_sweeper.PinsweepSweeper" in shown.stdout
    assert "hydra_plugins.pinsweep_launcher.LocalGpuLauncher" in shown.stdout

    # and a plain Hydra app (the basic sweeper) runs a two-job multirun under -Werror
    plain = write_user_app(where / "plain")
    sweep = [python, "-Werror", str(plain), "-m", "x=1,2", f"hydra.sweep.dir={where / 'plain' / 'sweep'}"]
    ran = _run(sweep, where, env)
    assert "job 1" in ran.stdout and "job 2" in ran.stdout and "Hydra plugins scanner" not in ran.stderr


# what the process that runs the sweep imports, reported as it exits: the jobs import torch in the fork
# server's processes, so the sweep itself (Hydra, the config, the rows) must not
SWEEP_PROCESS = """
import atexit, runpy, sys
HEAVY = ("torch", "torchvision", "scipy", "optuna", "sqlalchemy", "matplotlib")
atexit.register(lambda: print("IMPORTED", sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY)), file=sys.stderr))
sys.argv = ["pinsweep", *sys.argv[1:]]
runpy.run_module("pinsweep", run_name="__main__", alter_sys=True)
"""


def _sweep_process_imports(tmp_path: Path, *arguments: str) -> list[str]:
    command = [sys.executable, "-c", SWEEP_PROCESS, *arguments]
    result = subprocess.run(command, cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("IMPORTED")]
    return json.loads(line.removeprefix("IMPORTED ").replace("'", '"'))


def test_composing_a_config_imports_no_torch(tmp_path):
    assert _sweep_process_imports(tmp_path, "data=synthetic", "model=tiny", "--cfg", "job") == []


@pytest.mark.slow
def test_the_process_that_runs_a_job_imports_no_torch(tmp_path, tiny_job):
    run = (*tiny_job, "train.epochs=1", *LEAN, f"hydra.run.dir={tmp_path / 'run'}")
    assert _sweep_process_imports(tmp_path, *run) == []
    assert read_rows(tmp_path / "run")["status"].tolist() == ["ok"]


def test_the_fork_server_preloads_no_pandas_nor_scipy_stats(tmp_path):
    """What every sweep's first job waits for: the fork server's imports (pinsweep.job.start.PRELOAD).
    pandas and scipy.stats would add about 0.2 s and 0.6 s to it; the job needs neither."""
    from pinsweep.job.start import PRELOAD

    code = f"import sys; import {', '.join(PRELOAD)}; print(sorted({{'pandas', 'scipy.stats'}} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
