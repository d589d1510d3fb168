"""Hydra callbacks: the summary is written when a multirun ends, also when some of its jobs failed."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SummarizeOnMultirunEnd(Callback):
    """Summarize the sweep folder once every job has returned (runs locally, also under SLURM).

    Exits non-zero after writing when a job failed, so that scripts and CI notice; Hydra lets a
    SystemExit from a callback through as the process's exit status.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from pinsweep.summarize import summarize_and_report  # lazy: keeps job start-up light

        failed = summarize_and_report(config.hydra.sweep.dir)
        if failed:
            raise SystemExit(1)
