"""Where and with what a job's numbers were measured: the `env.*` columns of its row.

Two halves: the host's (no torch), written by the sweep process, and torch's, taken in the job's own
process (the isolated job sends it first thing; pinsweep.job.isolate), so that the sweep process never
imports torch. Reading a sweep's rows needs neither.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pinsweep

if TYPE_CHECKING:
    import torch


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
    import torch

    cuda = device.type == "cuda"
    return {
        "env.device_name": torch.cuda.get_device_name(device) if cuda else "",
        "env.cudnn": torch.backends.cudnn.version() if cuda else "",
    }


def environment() -> dict[str, Any]:
    """Where and with what the numbers were measured, both halves, in a process that trains (the
    accelerator's name comes from the job: device_environment)."""
    return {**host_environment(), **torch_environment()}


def torch_environment() -> dict[str, Any]:
    """torch's half, in the process that trains (it imports torch)."""
    import torch
    import torchvision

    return {
        "env.torch": str(torch.__version__),  # a TorchVersion: unpickling that would import torch
        "env.torchvision": torchvision.__version__,
        "env.cuda": torch.version.cuda or "",
        # the training process's intra-op threads (OMP_NUM_THREADS, torch.set_num_threads): with the loader's
        # workers, what shares those cores
        "env.torch_threads": torch.get_num_threads(),
    }


def host_environment() -> dict[str, Any]:
    """The host's half: no torch, so the sweep process can write it."""
    return {
        "env.pinsweep": pinsweep.__version__,
        "env.cpu_model": _cpu_model(),
        "env.cpu_count": os.cpu_count(),
        "env.hostname": socket.gethostname(),
        "env.python": platform.python_version(),
        "env.git_commit": _git_commit(),
        "env.utc_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "env.slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),  # set when the job ran as a SLURM job
    }
