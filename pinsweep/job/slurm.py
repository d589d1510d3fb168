"""Which SLURM task this process is, as submitit tells it (no torch: the sweep's process asks too).

Under `hydra/launcher=slurm` with `hydra.launcher.tasks_per_node=R`, SLURM runs every job as R tasks,
each of which runs the Hydra job: pinsweep.job.ranks makes them the job's R ranks, and only rank 0
records the row (pinsweep.app).
"""

from __future__ import annotations

import os


def tasks() -> int:
    """How many SLURM tasks run this job (tasks_per_node x nodes under submitit); 1 elsewhere."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
        return 1
    import submitit

    return submitit.JobEnvironment().num_tasks


def is_follower() -> bool:
    """A task of a multi-task SLURM job other than rank 0: it trains, rank 0 records the row."""
    if tasks() <= 1:
        return False
    import submitit

    return submitit.JobEnvironment().global_rank != 0
