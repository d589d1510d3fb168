"""pinsweep's Hydra plugins as a Hydra user meets them: Hydra's own plugin test suites against
hydra/sweeper=pinsweep and hydra/launcher=local, a plugin scan that stays light in every Hydra app,
the local launcher's GPUs exactly as the parent has them, and a plain Hydra app under -Werror.

The suites come from the installed `hydra.test_utils.launcher_common_tests`, parametrized the way
Hydra's own plugin repositories do it (plugins/hydra_submitit_launcher/tests, tests/test_basic_launcher.py).
With `hydra.sweeper.shuffle=false` pinsweep's sweeper must give Hydra's jobs in Hydra's order; with
shuffling the same suites run through a runner that checks the jobs are exactly the product's, then
puts them in product order for the suite's own (exact) checks of configs and folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from hydra.test_utils.test_utils import SweepTaskFunction

from hydra_plugins.pinsweep_sweeper import sweep_jobs
from pinsweep.sweep.launchers import GpuRequestError, gpu_slots, visible_gpus

# the suites check each job's log in its working directory: Hydra < 1.2's default, which an app of
# version_base 1.3 (pinsweep's, imported by conftest) asks for explicitly
CHDIR = "hydra.job.chdir=true"
PINSWEEP_IN_ORDER = ["hydra/sweeper=pinsweep", "hydra.sweeper.shuffle=false"]
SHUFFLE_SEED = 1  # reorders every grid of the suites (test_the_shuffled_twin_really_shuffles)
PINSWEEP_SHUFFLED = ["hydra/sweeper=pinsweep", f"hydra.sweeper.seed={SHUFFLE_SEED}"]
# a Hydra app of the user's own reaches pinsweep's launcher presets through its search path
PINSWEEP_CONF = "hydra.searchpath=[pkg://pinsweep.conf]"
LOCAL = [PINSWEEP_CONF, "hydra.launcher.timeout_min=2", "hydra.launcher.gpus_per_node=0", CHDIR]
HEAVY = ("optuna", "sqlalchemy", "pandas", "torch", "torchvision", "scipy", "matplotlib", "pinsweep.analysis")
needs_submitit = pytest.mark.skipif(
    find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="hydra/launcher=local needs hydra-submitit-launcher: pip install -e '.[slurm]'",
)


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without PYTHONPATH, so that a subprocess finds pinsweep only as installed."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    return {**env, **extra}


# ------------------------------------------------------------------ Hydra's suites, pinsweep's sweeper


@pytest.mark.parametrize("launcher_name, overrides", [("basic", [*PINSWEEP_IN_ORDER, CHDIR])])
class TestPinsweepSweeperInOrder(LauncherTestSuite):
    pass


@pytest.mark.parametrize(
    "launcher_name, overrides", [("basic", [*PINSWEEP_IN_ORDER, CHDIR, "hydra.sweeper.max_batch_size=2"])]
)
class TestPinsweepSweeperBatchedInOrder(BatchedSweeperTestSuite):
    pass


@pytest.mark.slow
@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({}, ["-m", "hydra/hydra_logging=disabled", "hydra/job_logging=disabled", *PINSWEEP_IN_ORDER])],
)
class TestPinsweepSweeperIntegration(IntegrationTestSuite):
    pass


class InProductOrder(SweepTaskFunction):
    """Hydra's sweep runner, then: the jobs that ran are exactly the product's (no job lost, none twice),
    and they are handed to the suite in product order, in batches of the sizes the sweeper made."""

    def __enter__(self) -> InProductOrder:
        super().__enter__()
        parser = OverridesParser.create()
        task = [o for o in self.overrides if not parser.parse_override(o).is_hydra_override()]
        product = sweep_jobs(task, shuffle=False)
        flat = [job for batch in self.returns for job in batch]
        assert sorted(list(job.overrides) for job in flat) == sorted(product), "not the product's jobs"
        flat.sort(key=lambda job: product.index(list(job.overrides)))
        batches, start = [], 0
        for size in (len(batch) for batch in self.returns):
            batches.append(flat[start : start + size])
            start += size
        self.returns = batches
        return self


@pytest.fixture
def in_any_order():
    def runner(calling_file, calling_module, task_function, config_path, config_name, overrides, temp_dir=None):
        sweep = InProductOrder()
        sweep.calling_file, sweep.calling_module, sweep.task_function = calling_file, calling_module, task_function
        sweep.config_path, sweep.config_name, sweep.overrides = config_path, config_name, overrides or []
        sweep.temp_dir = str(temp_dir)
        return sweep

    return runner


@pytest.mark.parametrize("launcher_name, overrides", [("basic", [*PINSWEEP_SHUFFLED, CHDIR])])
class TestPinsweepSweeperShuffled(LauncherTestSuite):
    @pytest.fixture
    def hydra_sweep_runner(self, in_any_order):
        return in_any_order


@pytest.mark.parametrize(
    "launcher_name, overrides", [("basic", [*PINSWEEP_SHUFFLED, CHDIR, "hydra.sweeper.max_batch_size=2"])]
)
class TestPinsweepSweeperBatchedShuffled(BatchedSweeperTestSuite):
    @pytest.fixture
    def hydra_sweep_runner(self, in_any_order):
        return in_any_order


@pytest.mark.parametrize(
    "grid",
    [
        ["+a=0,1"],
        ["group1=file1,file2"],
        ["db=mysql,postgresql", "db.user=someone"],
        ["group1=file1,file2", "bar=100,200,300"],
    ],
)
def test_the_shuffled_twin_really_shuffles(grid):
    """The shuffled suites above would prove nothing if the seed they use kept the product order."""
    assert sweep_jobs(grid, seed=SHUFFLE_SEED) != sweep_jobs(grid, shuffle=False)


# ------------------------------------------------------------------ Hydra's suites, the local launcher


@needs_submitit
@pytest.mark.slow
@pytest.mark.parametrize("launcher_name, overrides", [("local", LOCAL)])
class TestLocalLauncher(LauncherTestSuite):
    pass


@needs_submitit
@pytest.mark.slow
@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [
        (
            {},
            [
                "-m",
                "hydra/hydra_logging=disabled",
                "hydra/job_logging=disabled",
                PINSWEEP_CONF,
                "hydra/launcher=local",
                "hydra.launcher.gpus_per_node=0",
                "hydra.launcher.timeout_min=1",
            ],
        )
    ],
)
class TestLocalLauncherIntegration(IntegrationTestSuite):
    pass


# ------------------------------------------------------------------ the local launcher's GPUs


@pytest.mark.parametrize(
    "listed, seen",
    [
        ("", []),  # empty: no GPU at all
        ("3", ["3"]),
        ("2, 3", ["2", "3"]),
        (
            "GPU-8e1b2c3d-0000-1111-2222-333344445555,GPU-9f00aa11-6666-7777-8888-999900001111",
            ["GPU-8e1b2c3d-0000-1111-2222-333344445555", "GPU-9f00aa11-6666-7777-8888-999900001111"],
        ),
        ("MIG-4f1c7a2e-1234-5678-9abc-def012345678", ["MIG-4f1c7a2e-1234-5678-9abc-def012345678"]),
        ("MIG-GPU-8e1b2c3d-0000-1111-2222-333344445555/1/0", ["MIG-GPU-8e1b2c3d-0000-1111-2222-333344445555/1/0"]),
    ],
)
def test_visible_gpus_are_named_as_the_parent_names_them(monkeypatch, listed, seen):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    assert visible_gpus() == seen


def test_gpu_slots_are_disjoint_subsets_of_the_visible_ones():
    assert gpu_slots(["GPU-a", "GPU-b"], 1) == [("GPU-a",), ("GPU-b",)]
    assert gpu_slots(["4", "5", "6"], 2) == [("4", "5")]  # 6 alone cannot hold a 2-GPU job; it stays idle
    assert gpu_slots([], 2) == [()]  # nothing visible: one job at a time, seeing none
    with pytest.raises(GpuRequestError) as refused:
        gpu_slots(["3"], 2)
    message = str(refused.value)
    assert "\n" not in message and "gpus_per_node=2" in message and "CUDA_VISIBLE_DEVICES=3" in message


def _gpus_seen(hydra_sweep_runner, tmp_path: Path, overrides: list[str]) -> list[str]:
    """Each job's CUDA_VISIBLE_DEVICES, read inside the job's own process (submitit's)."""
    sweep = hydra_sweep_runner(
        calling_file=None,
        calling_module="hydra.test_utils.a_module",
        task_function=lambda _: os.environ.get("CUDA_VISIBLE_DEVICES"),
        config_path="configs",
        config_name="compose.yaml",
        overrides=["hydra/launcher=local", PINSWEEP_CONF, "hydra.launcher.timeout_min=2", *overrides],
        temp_dir=tmp_path,
    )
    with sweep:
        return [job.return_value for batch in sweep.returns for job in batch]


@needs_submitit
@pytest.mark.slow
@pytest.mark.usefixtures("hydra_restore_singletons")
def test_local_jobs_see_exactly_their_slots_gpus(hydra_sweep_runner, tmp_path, monkeypatch):
    # hidden GPUs stay hidden: the preset's 1 GPU per job on a machine where none is visible (one job: a
    # slot with no GPU is the only one, and the jobs after it take it as the UUIDs' below take theirs)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert _gpus_seen(hydra_sweep_runner, tmp_path / "none", ["+a=0"]) == [""]
    # GPU UUIDs, as some clusters set them: one each, never both, never renumbered from 0
    uuids = ["GPU-8e1b2c3d-0000-1111-2222-333344445555", "GPU-9f00aa11-6666-7777-8888-999900001111"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", ",".join(uuids))
    seen = _gpus_seen(hydra_sweep_runner, tmp_path / "uuids", ["+a=0,1,2,3"])
    assert len(seen) == 4 and set(seen) == set(uuids)
    # one GPU of the machine, two per job: refused before any job starts, not run on 0,1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with pytest.raises(GpuRequestError, match="gpus_per_node=2 but only 1 GPU"):
        _gpus_seen(hydra_sweep_runner, tmp_path / "three", ["+a=0,1", "hydra.launcher.gpus_per_node=2"])
    assert not (tmp_path / "three" / "0").exists()
    assert _gpus_seen(hydra_sweep_runner, tmp_path / "one", ["+a=0"]) == ["3"]


# ------------------------------------------------------------------ a good citizen in other Hydra apps

SCAN = """
import json, sys, time
start = time.perf_counter()
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
plugins = Plugins.instance()
stats = plugins.get_stats()
print(json.dumps({
    "scan_s": time.perf_counter() - start,
    "modules_s": stats.modules_import_time,
    "sweepers": [c.__name__ for c in plugins.discover(Sweeper)],
    "launchers": [c.__name__ for c in plugins.discover(Launcher)],
    "modules": sorted(sys.modules),
}))
"""


def test_the_plugin_scan_finds_pinsweep_and_imports_nothing_heavy(tmp_path):
    """In a process that never imported pinsweep (a folder outside the checkout, no PYTHONPATH): the
    plugins are found, and importing them costs milliseconds, not optuna's seconds."""
    result = subprocess.run(
        [sys.executable, "-c", SCAN], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    scan = json.loads(result.stdout)
    assert "PinsweepSweeper" in scan["sweepers"] and "LocalGpuLauncher" in scan["launchers"]
    heavy = [m for m in scan["modules"] if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]
    assert not heavy, f"the plugin scan imported {heavy[:10]}"
    ours = {name: seconds for name, seconds in scan["modules_s"].items() if "pinsweep" in name}
    assert len(ours) == 3, ours
    # optuna's import alone took 3.5 s here; 1 s leaves room for a loaded machine
    assert sum(ours.values()) < 1.0, f"scan {scan['scan_s']:.2f} s, pinsweep's modules {ours}"
    print(f"plugin scan {scan['scan_s']:.3f} s, pinsweep's modules {ours}")


USER_APP = """
import hydra
from omegaconf import DictConfig

@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    print("job", cfg.x, flush=True)

if __name__ == "__main__":
    main()
"""


def write_user_app(folder: Path, searchpath: bool = False) -> Path:
    """A minimal Hydra app of the user's own; with `searchpath`, its config reaches pinsweep's presets."""
    (folder / "conf").mkdir(parents=True, exist_ok=True)
    config = "x: 0\n"
    if searchpath:
        config += "hydra:\n  searchpath:\n    - pkg://pinsweep.conf\n"
    (folder / "conf" / "config.yaml").write_text(config)
    (folder / "my_app.py").write_text(textwrap.dedent(USER_APP))
    return folder / "my_app.py"


def test_a_plain_hydra_app_runs_a_multirun_under_werror(tmp_path):
    """pinsweep installed changes nothing for an app that does not ask for it, also under -Werror."""
    app = write_user_app(tmp_path)
    command = [sys.executable, "-Werror", str(app), "-m", "x=1,2", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = subprocess.run(command, cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "job 1" in result.stdout and "job 2" in result.stdout, result.stdout
    assert "Hydra plugins scanner" not in result.stderr, result.stderr


def test_a_users_own_app_selects_pinsweeps_sweeper_and_launchers(tmp_path):
    app = write_user_app(tmp_path, searchpath=True)
    command = [sys.executable, str(app), "--cfg", "hydra", "hydra/sweeper=pinsweep", "hydra/launcher=local"]
    result = subprocess.run(command, cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "_target_: hydra_plugins.pinsweep_sweeper.PinsweepSweeper" in result.stdout
    assert "_target_: hydra_plugins.pinsweep_launcher.LocalGpuLauncher" in result.stdout
    slurm = subprocess.run(
        [sys.executable, str(app), "--cfg", "hydra", "--resolve", "hydra/launcher=slurm", "+loader.num_workers=4"],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "hydra_submitit_launcher" in slurm.stderr and slurm.returncode:
        pytest.skip("hydra/launcher=slurm needs hydra-submitit-launcher")
    assert slurm.returncode == 0, slurm.stderr
    assert "cpus_per_task: 5" in slurm.stdout  # ${pinsweep_cpus:}: the plugin registered the resolver
