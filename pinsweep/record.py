"""One CSV row per job: every config key its own column, the metrics, the status, the environment.

Each job writes `row.csv` in its own job folder (Hydra gives every job one), via a temporary file and
an atomic rename: concurrent jobs never share a file, and a killed job leaves either no row or a
whole one. Rows are read back with pandas; a job folder without a row is reported as `missing`.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torchvision
from omegaconf import DictConfig, OmegaConf

import pinsweep
from pinsweep.config import GROUP_SCHEMAS

if TYPE_CHECKING:  # pandas costs start-up: imported only where rows are read or written
    import pandas as pd

ROW_FILE = "row.csv"
CONFIG_GROUPS = tuple(GROUP_SCHEMAS)  # the config groups whose keys become row columns


def flatten_config(cfg: DictConfig) -> dict[str, Any]:
    """`{"loader": {"num_workers": 2}}` -> `{"loader.num_workers": 2}`; dicts and lists as JSON."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and key != "kwargs":
                walk(value, f"{name}.")
            elif isinstance(value, (dict, list)):
                flat[name] = json.dumps(value, sort_keys=True)
            else:
                flat[name] = value

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(pinsweep.__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def device_environment(device: torch.device) -> dict[str, Any]:
    """The accelerator's name and cuDNN version; called inside the job, where CUDA is initialized
    anyway, so that the sweep's parent process never holds a CUDA context of its own."""
    cuda = device.type == "cuda"
    return {
        "env.device_name": torch.cuda.get_device_name(device) if cuda else "",
        "env.cudnn": torch.backends.cudnn.version() if cuda else "",
    }


def environment() -> dict[str, Any]:
    """Where and with what the numbers were measured (host side; see device_environment)."""
    return {
        "env.pinsweep": pinsweep.__version__,
        "env.torch": torch.__version__,
        "env.torchvision": torchvision.__version__,
        "env.cuda": torch.version.cuda or "",
        "env.cpu_model": _cpu_model(),
        "env.cpu_count": os.cpu_count(),
        # the training process's intra-op threads (OMP_NUM_THREADS, torch.set_num_threads): with the loader's
        # workers, what shares those cores
        "env.torch_threads": torch.get_num_threads(),
        "env.hostname": socket.gethostname(),
        "env.python": platform.python_version(),
        "env.git_commit": _git_commit(),
        "env.utc_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "env.slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),  # set when the job ran as a SLURM job
    }


def write_row(job_dir: str | Path, row: dict[str, Any]) -> Path:
    """Write one row as `job_dir/row.csv`, atomically (temporary file in the same folder + rename)."""
    import pandas

    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    target = job_dir / ROW_FILE
    cells = {key: json.dumps(value) if isinstance(value, (list, dict)) else value for key, value in row.items()}
    handle, temporary = tempfile.mkstemp(dir=job_dir, prefix=".row-", suffix=".csv")
    try:
        with os.fdopen(handle, "w", newline="") as stream:
            pandas.DataFrame([cells]).to_csv(stream, index=False)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def set_aside(job_dir: str | Path) -> Path:
    """Rename a job folder's row to `row-replaced-<utc time>.csv`: kept on disk, no longer read as the
    job's row, so that the job's new row never destroys a finished one."""
    source = Path(job_dir) / ROW_FILE
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = source.with_name(f"row-replaced-{stamp}.csv")
    os.replace(source, target)
    return target


def read_row(job_dir: str | Path) -> dict[str, Any] | None:
    path = Path(job_dir) / ROW_FILE
    if not path.exists():
        return None
    import pandas

    return pandas.read_csv(path).iloc[0].to_dict()


def job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Job folders of a sweep: those Hydra made (they hold .hydra/) or that hold a row."""
    sweep_dir = Path(sweep_dir)
    found = {p.parent for p in sweep_dir.rglob(ROW_FILE)}
    found |= {p.parent for p in sweep_dir.rglob(".hydra") if p.parent != sweep_dir}
    return sorted(found, key=lambda p: (len(p.parts), _natural(p.name), str(p)))


def _natural(name: str) -> tuple:
    return (0, int(name)) if name.isdigit() else (1, name)


def _missing_row(job_dir: Path) -> dict[str, Any]:
    """A job that left no row (killed, or never ran): its config still tells which group it was."""
    row: dict[str, Any] = {"status": "missing", "error": "job folder has no row.csv: killed or never finished"}
    composed = job_dir / ".hydra" / "config.yaml"
    if composed.exists():
        config = OmegaConf.load(composed)
        row.update(flatten_config(OmegaConf.masked_copy(config, [g for g in CONFIG_GROUPS if g in config])))
    return row


def read_rows(sweep_dir: str | Path) -> pd.DataFrame:
    """All job rows under a sweep folder; a job folder without a row becomes a `missing` row."""
    import pandas

    frames = []
    for job_dir in job_dirs(sweep_dir):
        path = job_dir / ROW_FILE
        frame = pandas.read_csv(path) if path.exists() else pandas.DataFrame([_missing_row(job_dir)])
        frame["job.dir"] = str(job_dir)
        frames.append(frame)
    if not frames:
        return pandas.DataFrame()
    return pandas.concat(frames, ignore_index=True)
