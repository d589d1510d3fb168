"""The code stays ruff-clean (lint and format, as configured in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess

import pytest


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(repo_root, command):
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed: pip install -e '.[test]'")
    result = subprocess.run([ruff, *command], cwd=repo_root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
