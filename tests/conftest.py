"""Shared fixtures: the repository root, composing the real conf/ in process, running pinsweep in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from pinsweep.config import register_configs

REPO_ROOT = Path(__file__).resolve().parent.parent

# a job that trains in about a second on a 2-core CPU: tiny CNN, synthetic data, few steps
TINY_JOB = (
    "data=synthetic",
    "model=tiny",
    "model.width=8",
    "data.train_size=256",
    "data.test_size=128",
    "loader.batch_size=64",
    "train.epochs=2",
    "train.ceiling_steps=2",
    "train.ceiling_budget_s=0.2",  # ceilings stop at their 2% target or here: tests need a figure, not precision
)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def compose_cfg():
    """compose_cfg(*overrides) -> the config Hydra would hand a job, composed from the repo's conf/."""
    register_configs()

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(version_base="1.3", config_dir=str(REPO_ROOT / "conf")):
            return compose(config_name="config", overrides=list(overrides))

    return _compose


@pytest.fixture(scope="session")
def tiny_job() -> tuple[str, ...]:
    return TINY_JOB


@pytest.fixture(scope="session")
def run_pinsweep():
    """run_pinsweep(*args, cwd=tmp) -> `python -m pinsweep <args>` run in cwd (so nothing lands in the repo)."""

    def _run(*args: str, cwd: Path, module: str = "pinsweep", timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
        )

    return _run
