"""IterableDatasets as first-class pipelines, and honest sample accounting (issue 26): no __len__ needed,
no shuffle handed to DataLoader, an epoch is what the stream yields; items, samples and batches per epoch
in every row with what each worker gave; a stream read whole by every worker is invalid with the fix
named; idle workers named; a job with no timed step is never ok. Each job trains in process on a stream
of a few tiny images (pinsweep.app.run_and_record, isolate=false)."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from torch.utils.data import IterableDataset, get_worker_info

from pinsweep.app import run_and_record
from pinsweep.input.accounting import WorkerTally, fingerprint

SAMPLES, SHARDS, BATCH = 96, 4, 8  # 12 batches an epoch


class ShardStream(IterableDataset):
    """`samples` images in `shards` shards, read shard by shard; with `split_by_worker` each worker reads
    its own shards (as webdataset's split_by_worker does), without it every worker reads them all (the
    most common IterableDataset bug)."""

    def __init__(self, samples=SAMPLES, shards=SHARDS, split_by_worker=True, train=True):
        self.samples, self.shards, self.split_by_worker = samples, shards, split_by_worker
        self.offset = 0 if train else 10**6

    def __iter__(self):
        info = get_worker_info()
        shards = range(self.shards)
        if self.split_by_worker and info is not None:
            shards = shards[info.id :: info.num_workers]
        per_shard = self.samples // self.shards
        for shard in shards:
            for index in range(shard * per_shard, (shard + 1) * per_shard):
                generator = torch.Generator().manual_seed(self.offset + index)
                yield torch.rand(3, 8, 8, generator=generator), index % 10


class ClaimingStream(ShardStream):
    """A stream with a __len__ that may disagree with what it yields."""

    def __init__(self, claimed_len: int, train=True):
        super().__init__(train=train)
        self.claimed_len = claimed_len

    def __len__(self):
        return self.claimed_len


class OneShotStream(ShardStream):
    """A stream that yields only the first time it is iterated (its __iter__ hands back a spent generator)."""

    def __init__(self, train=True):
        super().__init__(train=train)
        self.spent = super().__iter__()

    def __iter__(self):
        return self.spent


def stream_job(*overrides: str) -> tuple[str, ...]:
    return (
        "data=custom",
        f"data._target_={__name__}.ShardStream",
        "model=tiny",
        "model.width=4",
        f"loader.batch_size={BATCH}",
        "train.epochs=2",
        "train.ceiling_steps=2",
        "train.ceiling_budget_s=0.1",
        "train.threads=1",
        "isolate=false",
        *overrides,
    )


@pytest.mark.parametrize("workers", [0, 2])
def test_a_stream_without_len_sweeps_with_loader_shuffle_as_it_is_and_counts_its_epoch(compose_cfg, tmp_path, workers):
    row = run_and_record(compose_cfg(*stream_job(f"loader.num_workers={workers}")), tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["stream"] is True and row["shuffle_active"] is False  # loader.shuffle=true, left as it is
    assert math.isnan(row["dataset_len"])
    assert (row["items_per_epoch"], row["samples_per_epoch"], row["batches_per_epoch"]) == (96, 96, 12)
    assert row["steps"] == 24 and row["steps_timed"] == 12  # the first epoch, counted as it ran, warmed up
    assert row["worker_batches"] == ([12] if workers == 0 else [6, 6]) and row["idle_workers"] == 0


def test_a_stream_every_worker_reads_whole_is_invalid_with_the_fix_named(compose_cfg, tmp_path):
    cfg = compose_cfg(*stream_job("loader.num_workers=2", "+data.kwargs.split_by_worker=false"))
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "invalid"
    assert "workers 0 and 1 yielded the same samples" in row["error"]
    assert "get_worker_info()" in row["error"] and "split_by_worker" in row["error"]


def test_fewer_shards_than_workers_names_the_idle_worker(compose_cfg, tmp_path, caplog):
    cfg = compose_cfg(*stream_job("loader.num_workers=2", "+data.kwargs.shards=1"))
    with caplog.at_level(logging.WARNING):
        row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["worker_batches"] == [12, 0] and row["idle_workers"] == 1
    assert row["items_per_epoch"] == 96  # every sample once, from the one worker that had a shard
    assert "worker 1 yielded no batch in epoch 1" in caplog.text


@pytest.mark.parametrize("claimed", [48, 400])  # shorter and longer than the 96 the stream yields
def test_a_len_that_disagrees_with_the_stream_is_a_warning_and_the_real_count_is_kept(
    compose_cfg, tmp_path, caplog, claimed
):
    """A __len__ below the stream's cut every epoch at it; one above it gave an ok row at 0 items/s
    (a warm-up from the claimed length, no step timed)."""
    with caplog.at_level(logging.WARNING):
        cfg = compose_cfg(
            *stream_job(f"data._target_={__name__}.ClaimingStream", f"+data.kwargs.claimed_len={claimed}")
        )
        row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["dataset_len"] == claimed and row["samples_per_epoch"] == 96 and row["steps_timed"] == 12
    assert row["throughput"] > 0
    assert f"__len__ says {claimed} samples and its stream yielded 96" in caplog.text


def test_a_stream_that_yields_nothing_the_second_time_is_invalid(compose_cfg, tmp_path):
    row = run_and_record(compose_cfg(*stream_job(f"data._target_={__name__}.OneShotStream")), tmp_path)
    assert row["status"] == "invalid"
    assert "yielded no batch in epoch 2" in row["error"] and "__iter__" in row["error"]


def test_a_job_with_no_timed_step_is_never_ok(compose_cfg, tmp_path):
    """A warm-up as long as the stream's whole run (unknown before it ran): invalid, not 0 items/s."""
    row = run_and_record(compose_cfg(*stream_job("train.warmup_steps=24")), tmp_path)
    assert row["status"] == "invalid"
    assert "no step was timed after the warm-up" in row["error"] and "train.warmup_steps" in row["error"]


def test_a_map_style_epoch_is_counted_the_same_way(compose_cfg, tiny_job, tmp_path):
    row = run_and_record(compose_cfg(*tiny_job, "isolate=false", "loader.num_workers=2"), tmp_path)
    assert row["status"] == "ok", row["error"]
    assert (row["items_per_epoch"], row["samples_per_epoch"], row["batches_per_epoch"]) == (256, 256, 4)
    assert row["stream"] is False and row["shuffle_active"] is True and row["dataset_len"] == 256
    assert row["worker_batches"] == [2, 2]


def test_the_engine_nodes_refuses_a_stream_in_one_line(compose_cfg, tmp_path):
    row = run_and_record(compose_cfg(*stream_job("loader.engine=nodes")), tmp_path)
    assert row["status"] == "invalid" and "loader.engine=dataloader" in row["error"]


def test_sketches_tell_workers_reading_the_same_samples_in_any_order_and_constant_data_says_nothing():
    def samples(indices):
        return [(torch.full((4,), float(i)), i) for i in indices]

    tally = WorkerTally(2, sketching=True)
    tally.record(0, samples(range(0, 400)))
    tally.record(1, samples(reversed(range(0, 400))))  # the same samples, another order (its own shuffle)
    assert tally.epoch().same_stream() == (0, 1)
    tally.reset()
    tally.record(0, samples(range(0, 400)))
    tally.record(1, samples(range(400, 800)))  # a stream split between the workers
    assert tally.epoch().same_stream() is None
    tally.reset()
    tally.record(0, samples([0] * 100))  # every sample alike: nothing to tell from
    tally.record(1, samples([0] * 100))
    assert tally.epoch().same_stream() is None
    tally.reset()
    tally.stop_sketching()  # after the first epoch: counted, not sketched
    tally.record(0, samples(range(0, 400)))
    tally.record(1, samples(range(0, 400)))
    assert tally.epoch().same_stream() is None and tally.epoch().worker_batches == [1, 1]
    assert fingerprint({"ids": torch.arange(3), "text": "a"}) == fingerprint({"ids": torch.arange(3), "text": "a"})


class ShuffledCopies(ShardStream):
    """Every worker reads the whole stream, each in its own shuffled order (its worker seed): the bug,
    shuffled, which no comparison of first samples catches."""

    def __iter__(self):
        info = get_worker_info()
        generator = torch.Generator().manual_seed(info.seed if info is not None else 0)
        samples = list(super().__iter__())
        for index in torch.randperm(len(samples), generator=generator).tolist():
            yield samples[index]


def test_workers_reading_the_whole_stream_each_in_its_own_order_are_invalid_too(compose_cfg, tmp_path):
    cfg = compose_cfg(*stream_job("loader.num_workers=2", f"data._target_={__name__}.ShuffledCopies"))
    cfg.data.kwargs = {"split_by_worker": False}
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "invalid" and "yielded the same samples" in row["error"]
