"""How a multi-rank job fails (pinsweep.job.ranks): kept apart from torch, because the sweep's process,
which imports no torch, unpickles these when a job reports one."""

from __future__ import annotations


class RankFailed(RuntimeError):
    """A rank of a multi-rank job raised: `error` is its own exception (what the row's status follows)."""

    def __init__(self, rank: int, error: BaseException):
        super().__init__(f"rank {rank}: {type(error).__name__}: {error}")
        self.rank = rank
        self.error = error

    def __reduce__(self):  # crosses the job's process boundary (pinsweep.job.isolate) intact
        return (RankFailed, (self.rank, self.error))


class RankCrashed(RuntimeError):
    """A rank died without reporting (a signal, a crash in native code)."""

    def __init__(self, rank: int, exitcode: int, signal_name: str):
        how = f"signal {signal_name}" if exitcode < 0 else f"exit code {exitcode}"
        super().__init__(f"rank {rank} died of {how} without a result (killed or crashed)")
        self.rank, self.exitcode, self.signal_name = rank, exitcode, signal_name

    def __reduce__(self):
        return (RankCrashed, (self.rank, self.exitcode, self.signal_name))
