"""Pipelines from the wider PyTorch ecosystem, written the way their libraries are used, swept with no
adapter class (issue 26, acceptance 1 and 2): each example in examples/ writes its data offline and is
swept as a user sweeps it, `python -m pinsweep --config-dir examples/<name>/conf -m experiment=<name>
data.root=<folder>` (its own num_workers=0,2 grid; the command line run in this process), to two ok rows
with the same items per epoch and a report. Then the stream with every worker reading every file
(invalid, the fix named) and a stream of fewer files than workers (the idle worker named). Tiny data, a
few steps a job; the optional packages (the `ecosystem` extra) skip a test cleanly when missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from pinsweep.record import read_rows
from tests.in_process import Ran, pinsweep_here

pytestmark = pytest.mark.slow  # end-to-end sweeps

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
CHEAP = ("train.ceiling_steps=2", "train.ceiling_budget_s=0.2", "train.threads=1", "loader.batch_size=16")


def sweep_example(name: str, folder: Path, *overrides: str) -> Ran:
    """The example's own sweep, its command line as a user types it, run in this process
    (tests/in_process.py) with isolate=false: the example's library (webdataset, timm, transformers) is
    imported once, not in each job's process and in no new interpreter (about 7 s a sweep otherwise).
    The examples import as the repository root's package, as they do once installed."""
    command = ["--config-dir", str(EXAMPLES / name / "conf"), "-m", f"experiment={name}", *CHEAP, "isolate=false"]
    return pinsweep_here(*command, *overrides, f"hydra.sweep.dir={folder}")


@pytest.fixture
def offline_hub(monkeypatch):
    """No model hub: everything the example needs it wrote itself. The variables as a user sets them, and
    the flags Hugging Face's libraries read from them at their import, where this process imported them."""
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(variable, "1")
    flags = {
        "huggingface_hub.constants": ["HF_HUB_OFFLINE"],
        "datasets.config": ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"],
    }
    for module, names in flags.items():
        for name in names if module in sys.modules else []:
            monkeypatch.setattr(sys.modules[module], name, True)


def worker_batches(row: pd.Series) -> list[int]:
    value = row["worker_batches"]
    return json.loads(value) if isinstance(value, str) else list(value)


def assert_two_ok_rows_of_one_epoch(sweep: Path, result: Ran, unit: str) -> pd.DataFrame:
    """Acceptance 1: num_workers 0 and 2 both ok, the same items in every epoch, the two workers sharing
    the work, and a report."""
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_rows(sweep).sort_values("loader.num_workers")
    assert list(rows["loader.num_workers"]) == [0, 2]
    assert (rows["status"] == "ok").all(), rows[["status", "error"]].to_string()
    assert rows["items_per_epoch"].nunique() == 1 and rows["samples_per_epoch"].nunique() == 1
    assert (rows["unit"] == unit).all() and (rows["throughput"] > 0).all() and (rows["steps_timed"] > 0).all()
    two = rows.iloc[1]
    assert len(worker_batches(two)) == 2 and min(worker_batches(two)) > 0 and two["idle_workers"] == 0
    assert sum(worker_batches(two)) == two["batches_per_epoch"]
    report = (sweep / "report.md").read_text()
    assert f"{unit}/s" in report
    return rows


# ------------------------------------------------------------------------------------------ the pipelines


def test_webdataset_shards_from_a_factory_sweep_with_no_len_and_loader_shuffle_as_it_is(tmp_path):
    """A factory returning wds.WebDataset(...) (split_by_node, split_by_worker, a shuffle buffer, decode,
    to_tuple, map_tuple): 4 shards of 16 JPEGs, 2 epochs of 64 images, each worker 2 shards."""
    pytest.importorskip("webdataset")
    from examples.webdataset_shards import data

    shards = tmp_path / "shards"
    assert data.main([str(shards), "--shards", "4", "--per-shard", "16", "--size", "16"]) == 0
    assert len(list(shards.glob("train-*.tar"))) == 4 and len(list(shards.glob("test-*.tar"))) == 2
    sweep = tmp_path / "sweep"
    result = sweep_example("webdataset_shards", sweep, f"data.root={shards}", "model.width=4")
    rows = assert_two_ok_rows_of_one_epoch(sweep, result, "images")
    assert (rows["items_per_epoch"] == 64).all() and (rows["batches_per_epoch"] == 4).all()
    assert rows["stream"].all() and not rows["shuffle_active"].any()  # loader.shuffle=true left as it is
    assert (rows["loader.shuffle"] == True).all()  # noqa: E712 (a CSV column of booleans)
    assert rows["test_accuracy"].notna().all()  # the test split's shards, from data.test_kwargs


def test_timm_create_model_over_imagefolder_per_split_with_timms_transform(tmp_path):
    """model._target_=timm.create_model (a function; num_classes in its kwargs), ImageFolder built per
    split (train/ and val/ roots) with timm.data.create_transform as a nested _target_."""
    pytest.importorskip("timm")
    from pinsweep.input.jpegs import main as make_jpegs

    jpegs = tmp_path / "jpegs"
    assert make_jpegs([str(jpegs), "--count", "64", "--val-count", "16", "--size", "24"]) == 0
    sweep = tmp_path / "sweep"
    result = sweep_example("timm_images", sweep, f"data.root={jpegs}", "data.image_size=16")
    rows = assert_two_ok_rows_of_one_epoch(sweep, result, "images")
    assert (rows["items_per_epoch"] == 64).all() and not rows["stream"].any()
    assert rows["test_accuracy"].notna().all()  # val/ through its own root and the eval transform


def test_datasets_with_a_collator_and_a_bert_from_a_nested_config_count_real_tokens(tmp_path, offline_hub):
    """datasets.load_from_disk per split, DataCollatorWithPadding (the tokenizer nested) as the
    collate_fn, BertForSequenceClassification from a nested BertConfig, `model(**batch).loss`, tokens/s
    of the real (attention_mask) tokens."""
    pytest.importorskip("datasets")
    pytest.importorskip("transformers")
    from datasets import load_from_disk

    from examples.hf_text.data import write_dataset

    root = write_dataset(tmp_path / "hf_text", size=64, test_size=32)
    train = load_from_disk(str(root / "train"))
    real_tokens = sum(map(sum, train["attention_mask"]))
    sweep = tmp_path / "sweep"
    result = sweep_example("hf_text", sweep, f"data.root={root}", "model.kwargs.config.num_hidden_layers=1")
    rows = assert_two_ok_rows_of_one_epoch(sweep, result, "tokens")
    assert (rows["items_per_epoch"] == real_tokens).all()  # padding left out, whatever the batches' shapes
    assert (rows["samples_per_epoch"] == 64).all()
    assert rows["test_accuracy"].between(0, 100).all() and rows["test_loss"].notna().all()


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes:UserWarning")  # on 2 cores
def test_a_stream_of_files_by_worker_sweeps_and_its_two_common_bugs_are_named(tmp_path):
    """Plain torch: two .npz files, each worker its own (get_worker_info()), torchvision.ops.MLP as the
    model, in one sweep of num_workers 0,2,3 x split_by_worker true,false (acceptance 1 and 2 at once).
    split_by_worker=true: every config reads the same 64 samples an epoch, at num_workers=2 a file per
    worker, at 3 the third worker has no file: ok, and the idle worker named in the row and the job's
    log. split_by_worker=false, every worker reads every file: with workers invalid, the fix named."""
    from examples.stream_files import data

    files = tmp_path / "npz"
    assert data.main([str(files), "--files", "2", "--per-file", "32"]) == 0
    sweep = tmp_path / "sweep"
    grid = ("loader.num_workers=0,2,3", "data.kwargs.split_by_worker=true,false")
    result = sweep_example("stream_files", sweep, f"data.root={files}", *grid)
    assert result.returncode == 1, result.stderr[-3000:]  # exit 1: jobs that are not ok, the rest summarized
    rows = read_rows(sweep)
    rows["split_by_worker"] = [json.loads(kwargs)["split_by_worker"] for kwargs in rows["data.kwargs"]]
    rows = rows.set_index(["split_by_worker", "loader.num_workers"]).sort_index()
    assert len(rows) == 6 and (sweep / "report.md").exists()

    split = rows.loc[True]
    assert (split["status"] == "ok").all(), split[["status", "error"]].to_string()
    assert (split["items_per_epoch"] == 64).all() and split["stream"].all() and (split["unit"] == "samples").all()
    assert [worker_batches(split.loc[n]) for n in (0, 2, 3)] == [[4], [2, 2], [2, 2, 0]]
    assert list(split["idle_workers"]) == [0, 0, 1]
    assert "worker 2 yielded no batch" in "".join(path.read_text() for path in sweep.glob("*/*.log"))

    whole = rows.loc[False]
    assert whole.loc[0, "status"] == "ok" and whole.loc[0, "items_per_epoch"] == 64  # one process: no bug
    for workers in (2, 3):
        assert whole.loc[workers, "status"] == "invalid"
        error = whole.loc[workers, "error"]
        assert f"every sample is loaded {workers} times" in error
        assert "get_worker_info()" in error and "split_by_worker" in error
    report = (sweep / "report.md").read_text()
    assert "torch.utils.data.get_worker_info()" in report  # the failed jobs' table names the fix
