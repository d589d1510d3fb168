"""pinsweep as a user installs it: a wheel built from this checkout, installed into a fresh virtual
environment (reusing this environment's torch through --system-site-packages), run by its commands from
a folder outside the checkout, with the user's own experiment, dataset and model kept in that folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pinsweep.record import read_rows

SMALL = ("model.width=8", "data.train_size=256", "data.test_size=64", "loader.batch_size=64", "train.ceiling_steps=2")

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
  ceiling_steps: 2
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


@pytest.fixture(scope="module")
def installed(repo_root, tmp_path_factory):
    """(bin folder of a venv holding only the built wheel, the user's folder, its environment)."""
    root = tmp_path_factory.mktemp("install")
    # build from a copy of the files git would ship (tracked and new ones), so no stale build/ leaks in
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo_root, capture_output=True, check=True
    )
    source = root / "source"
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (repo_root / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((repo_root / name).read_bytes())
    pip = [sys.executable, "-m", "pip"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source)], root, env)
    (wheel,) = (root / "dist").glob("pinsweep-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], root, env)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], root, env)
    user = root / "user"
    for name, text in USER_FILES.items():
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_text(text)
    return venv / "bin", user, env


@pytest.mark.slow
def test_the_wheel_ships_its_configs_and_runs_from_any_folder(installed):
    bin_dir, user, env = installed
    where = _run([str(bin_dir / "python"), "-c", "import pinsweep; print(pinsweep.__file__)"], user, env)
    assert where.stdout.strip().startswith(str(bin_dir.parent)), where.stdout  # the wheel, not the checkout
    sweep_dir = user / "multirun" / "two-jobs"
    command = [str(bin_dir / "pinsweep"), "-m", "data=synthetic", "model=tiny", "train.epochs=1"]
    _run([*command, "loader.num_workers=0,2", *SMALL, f"hydra.sweep.dir={sweep_dir}"], user, env)

    rows = read_rows(sweep_dir)
    assert rows["status"].tolist() == ["ok", "ok"] and sorted(rows["loader.num_workers"]) == [0, 2]
    for name in ("summary.csv", "effects.csv", "throughput.png", "report.html", "report.md"):
        assert (sweep_dir / name).is_file(), name
    summarized = _run([str(bin_dir / "pinsweep-summarize"), str(sweep_dir)], user, env)
    assert "num_workers" in summarized.stdout and f"wrote {sweep_dir / 'summary.csv'}" in summarized.stdout
    for tool in ("pinsweep-report", "pinsweep-resume"):
        assert "usage:" in _run([str(bin_dir / tool), "--help"], user, env).stdout


@pytest.mark.slow
def test_the_users_own_experiment_dataset_and_model_run_from_their_config_folder(installed):
    bin_dir, user, env = installed
    sweep_dir = user / "multirun" / "mine"
    command = [str(bin_dir / "python"), "-m", "pinsweep", "--config-dir", "sweeps", "-m", "experiment=my_sweep"]
    _run([*command, f"hydra.sweep.dir={sweep_dir}"], user, {**env, "PYTHONPATH": str(user)})

    rows = read_rows(sweep_dir)
    assert rows["status"].tolist() == ["ok", "ok"], rows.get("error")
    assert set(rows["data._target_"]) == {"mypkg.pipeline.Noise"}
    assert set(rows["model._target_"]) == {"mypkg.pipeline.Linear"}
    assert sorted(rows["loader.num_workers"]) == [0, 1]
    assert set(rows["data.kwargs"]) == {'{"size": 256}'} and set(rows["model.kwargs"]) == {'{"scale": 0.5}'}
    assert len(pd.read_csv(sweep_dir / "summary.csv")) == 2
    # resume re-runs the sweep with its config folder (Hydra records --config-dir as a source, not an override)
    resumed = _run([str(bin_dir / "pinsweep-resume"), str(sweep_dir)], user, {**env, "PYTHONPATH": str(user)})
    assert "--config-dir" in resumed.stderr and "resume: job #1 already has an ok row, skipped" in resumed.stderr
