"""The interface every stage of the input path answers, so that the job asks any of them the same
few calls (as every torchdata.nodes BaseNode answers the same few): see pinsweep.input.loader for the
stages and how they are built."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pinsweep.input.accounting import EpochTally


class Input:
    """A batch source as the job sees it; a stage with no workers needs to override nothing but
    `__iter__` and `__len__`."""

    num_workers = 0

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def batches_per_epoch(self) -> int | None:
        """Batches in one epoch as known before it runs; None for a stream, whose epoch ends when it does."""
        return len(self)

    def epoch_tally(self) -> EpochTally | None:
        """What each worker yielded in the epoch just ended (pinsweep.input.accounting); None if not counted."""
        return None

    @property
    def ready_ahead(self) -> int:
        """Batches that can be ready before anyone asks for one."""
        return 0

    def shutdown(self) -> None:
        """Stop every worker now (persistent ones too); the next iter() starts fresh ones."""

    def worker_pids(self) -> list[int]:
        """Process ids of the workers serving the epoch now running."""
        return []

    def primed(self) -> Iterator[Any]:
        """The batches epoch after epoch (a new iter() each epoch, as training makes them), with those its
        workers could have ready before the first request consumed first: from the first batch this
        yields on, each one waits for work done after it was asked for (the loader-only ceiling's clock
        starts there). Close it, then `shutdown()`, to stop the workers."""
        batches = self._endless()
        for _ in range(self.ready_ahead + 1):  # + 1: the first fetch pays iter(), worker start-up
            next(batches)
        return batches

    def _endless(self) -> Iterator[Any]:
        while True:
            empty = True
            for batch in self:
                empty = False
                yield batch
            if empty:
                return
