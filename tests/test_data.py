"""The data path: CIFAR-10 read by torchvision's own reader from files in CIFAR-10's on-disk format,
the synthetic stand-in, and the three input pipelines."""

from __future__ import annotations

import hashlib
import pickle
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets

from pinsweep.input.data import (
    CIFAR_FOLDER,
    BatchGatherDataset,
    DatasetUnavailable,
    SyntheticCIFAR10,
    build_datasets,
    to_float_images,
)
from pinsweep.input.loader import build_input
from pinsweep.record import read_row

TRAIN_PER_BATCH = 6  # the real files hold 10000 images each; a few keep the test fast
TEST_IMAGES = 7
LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Python2Pickler(pickle._Pickler):
    """Writes `bytes` as Python 2 `str` (SHORT_BINSTRING/BINSTRING), as CIFAR-10's files were written
    (cPickle, Python 2): torchvision reads them with encoding="latin1", which turns them into `str`."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_python2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str


def _write_pickle(path: Path, content: dict) -> str:
    with path.open("wb") as stream:
        Python2Pickler(stream, protocol=2).dump(content)
    return hashlib.md5(path.read_bytes()).hexdigest()


def _batch(label: str, images: np.ndarray, labels: np.ndarray, first: int) -> dict:
    # CIFAR-10's layout: one row of 3072 bytes per image, all red, then all green, then all blue (CHW)
    return {
        b"batch_label": label.encode(),
        b"labels": [int(x) for x in labels],
        b"data": images.transpose(0, 3, 1, 2).reshape(len(images), 3072),
        b"filenames": [f"image_{first + i:05d}.png".encode() for i in range(len(images))],
    }


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    """A data.root holding cifar-10-batches-py/ with 5 train batches, a test batch and batches.meta,
    and torchvision's MD5 table pointed at these files. Returns (root, train (images, labels), test ...)."""
    rng = np.random.default_rng(7)
    folder = tmp_path / CIFAR_FOLDER
    folder.mkdir()
    train_images = rng.integers(0, 256, size=(5 * TRAIN_PER_BATCH, 32, 32, 3), dtype=np.uint8)
    train_labels = rng.integers(0, 10, size=5 * TRAIN_PER_BATCH)
    test_images = rng.integers(0, 256, size=(TEST_IMAGES, 32, 32, 3), dtype=np.uint8)
    test_labels = rng.integers(0, 10, size=TEST_IMAGES)

    train_list = []
    for number in range(1, 6):
        part = slice((number - 1) * TRAIN_PER_BATCH, number * TRAIN_PER_BATCH)
        content = _batch(f"training batch {number} of 5", train_images[part], train_labels[part], part.start)
        train_list.append([f"data_batch_{number}", _write_pickle(folder / f"data_batch_{number}", content)])
    test_md5 = _write_pickle(folder / "test_batch", _batch("testing batch 1 of 1", test_images, test_labels, 0))
    meta = {
        b"num_cases_per_batch": TRAIN_PER_BATCH,
        b"label_names": [n.encode() for n in LABEL_NAMES],
        b"num_vis": 3072,
    }
    meta_md5 = _write_pickle(folder / "batches.meta", meta)

    monkeypatch.setattr(datasets.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [["test_batch", test_md5]])
    monkeypatch.setattr(datasets.CIFAR10, "meta", {**datasets.CIFAR10.meta, "md5": meta_md5})
    return tmp_path, (train_images, train_labels), (test_images, test_labels)


def _cifar_cfg(compose_cfg, root: Path, *overrides: str):
    return compose_cfg("data=cifar10", f"data.root={root}", "data.download=false", *overrides).data


def _as_batch(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(images), torch.tensor(labels)


def test_cifar10_is_read_by_torchvision_from_its_on_disk_format(compose_cfg, cifar_root):
    root, (train_images, train_labels), (test_images, test_labels) = cifar_root
    train, test = build_datasets(_cifar_cfg(compose_cfg, root))
    assert isinstance(train, datasets.CIFAR10) and isinstance(test, datasets.CIFAR10)
    assert (len(train), len(test)) == (5 * TRAIN_PER_BATCH, TEST_IMAGES)
    assert train.classes == LABEL_NAMES

    images, labels = _as_batch(train)
    assert images.shape == (5 * TRAIN_PER_BATCH, 3, 32, 32)
    assert images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    # ToTensor: HWC uint8 -> CHW float / 255, in file order across the five batches
    expected = torch.from_numpy(train_images).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-6)
    assert labels.tolist() == train_labels.tolist()

    images, labels = _as_batch(test)
    torch.testing.assert_close(
        images, torch.from_numpy(test_images).permute(0, 3, 1, 2).float() / 255, rtol=0, atol=1e-6
    )
    assert labels.tolist() == test_labels.tolist()


def test_cifar10_sizes_keep_the_first_images(compose_cfg, cifar_root):
    root, (train_images, train_labels), (test_images, _) = cifar_root
    train, test = build_datasets(_cifar_cfg(compose_cfg, root, "data.train_size=8", "data.test_size=3"))
    assert (len(train), len(test)) == (8, 3)
    assert np.array_equal(train.data, train_images[:8])
    assert train.targets == train_labels[:8].tolist()
    assert np.array_equal(test.data, test_images[:3])
    # a size larger than the split keeps the whole split
    train, _ = build_datasets(_cifar_cfg(compose_cfg, root, "data.train_size=1000"))
    assert len(train) == 5 * TRAIN_PER_BATCH


def test_missing_cifar10_names_the_folder_and_the_offline_option(compose_cfg, tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetUnavailable) as raised:
        build_datasets(_cifar_cfg(compose_cfg, root))
    message = str(raised.value)
    assert str(root / CIFAR_FOLDER) in message
    assert "data=synthetic" in message


def test_failed_download_names_the_folder_and_the_offline_option(compose_cfg, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    # the download itself is torchvision's; only the network is taken away
    monkeypatch.setattr(datasets.cifar, "download_and_extract_archive", no_network)
    with pytest.raises(DatasetUnavailable) as raised:
        build_datasets(compose_cfg("data=cifar10", f"data.root={tmp_path}", "data.download=true").data)
    message = str(raised.value)
    assert str(tmp_path / CIFAR_FOLDER) in message
    assert "data=synthetic" in message


def test_corrupted_cifar10_file_is_refused_before_it_is_unpickled(compose_cfg, cifar_root, monkeypatch):
    root, _, _ = cifar_root
    corrupted = root / CIFAR_FOLDER / "data_batch_3"
    content = bytearray(corrupted.read_bytes())
    content[-10] ^= 0xFF  # one flipped byte; the MD5 in torchvision's table is still the good file's
    corrupted.write_bytes(bytes(content))

    unpickled = []
    real_load = pickle.load

    def recording_load(stream, *args, **kwargs):
        unpickled.append(Path(stream.name).name)
        return real_load(stream, *args, **kwargs)

    monkeypatch.setattr(datasets.cifar.pickle, "load", recording_load)
    with pytest.raises(DatasetUnavailable) as raised:
        build_datasets(_cifar_cfg(compose_cfg, root))
    message = str(raised.value)
    assert str(corrupted) in message
    assert "MD5" in message
    assert "data_batch_3" not in unpickled
    # the recording load does see files torchvision accepts
    monkeypatch.setattr(datasets.CIFAR10, "train_list", [*datasets.CIFAR10.train_list[:2]])
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [])
    datasets.CIFAR10(str(root), train=True)
    assert unpickled == ["data_batch_1", "data_batch_2", "batches.meta"]


def test_synthetic_data_has_cifar10_shapes_and_dtype():
    train = SyntheticCIFAR10(size=50, seed=0, train=True)
    assert train.data.shape == (50, 32, 32, 3)
    assert train.data.dtype == np.uint8
    assert len(train) == 50
    assert set(train.targets) <= set(range(10))
    assert len(set(train.targets)) > 5
    image, label = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert isinstance(label, int)
    torch.testing.assert_close(image, torch.from_numpy(train.data[0]).permute(2, 0, 1).float() / 255)


def test_synthetic_data_is_seeded():
    first, again = SyntheticCIFAR10(20, seed=5, train=True), SyntheticCIFAR10(20, seed=5, train=True)
    assert np.array_equal(first.data, again.data) and first.targets == again.targets
    other_seed = SyntheticCIFAR10(20, seed=6, train=True)
    assert not np.array_equal(first.data, other_seed.data)
    test_split = SyntheticCIFAR10(20, seed=5, train=False)
    assert not np.array_equal(first.data, test_split.data)


def test_synthetic_classes_have_the_same_colour_in_both_splits():
    train, test = SyntheticCIFAR10(2000, seed=1, train=True), SyntheticCIFAR10(2000, seed=1, train=False)

    def class_colours(split):
        labels = np.asarray(split.targets)
        return np.stack([split.data[labels == c].mean(axis=(0, 1, 2)) for c in range(10)])

    train_colours, test_colours = class_colours(train), class_colours(test)
    # noise is uniform in [-64, 64): averaged over ~200 images of 1024 pixels, the class colour remains
    assert np.abs(train_colours - test_colours).max() < 3
    # and the classes are told apart by their colours
    distances = np.linalg.norm(train_colours[:, None] - train_colours[None], axis=-1)
    assert distances[~np.eye(10, dtype=bool)].min() > 3


def test_synthetic_sizes_come_from_the_config(compose_cfg):
    train, test = build_datasets(compose_cfg("data=synthetic", "data.train_size=40", "data.test_size=12").data)
    assert (len(train), len(test)) == (40, 12)


@pytest.mark.parametrize("pipeline", ["tensor", "device"])
def test_pipelines_deliver_the_same_images_as_pil(compose_cfg, cifar_root, pipeline):
    root, _, _ = cifar_root
    cfg = compose_cfg("data=cifar10", f"data.root={root}", "data.download=false", "loader.batch_size=4")
    train, _ = build_datasets(cfg.data)
    device = torch.device("cpu")
    # train=False: never shuffled, so batches line up across pipelines
    reference = list(build_input(train, cfg.data, cfg.loader, device, train=False, seed=0))
    cfg.data.pipeline = pipeline
    batches = list(build_input(train, cfg.data, cfg.loader, device, train=False, seed=0))
    assert len(batches) == len(reference) == 8  # 30 images in batches of 4
    for (images, labels), (pil_images, pil_labels) in zip(batches, reference):
        assert images.dtype == torch.uint8  # decoded to floats only on the device
        torch.testing.assert_close(to_float_images(images), pil_images, rtol=0, atol=1e-6)
        assert torch.equal(labels, pil_labels)


def test_shuffled_tensor_pipeline_covers_every_image_once(compose_cfg):
    cfg = compose_cfg("data=synthetic", "data.train_size=50", "data.pipeline=tensor", "loader.batch_size=16")
    train, _ = build_datasets(cfg.data)
    batches = list(build_input(train, cfg.data, cfg.loader, torch.device("cpu"), train=True, seed=0))
    assert [len(labels) for _, labels in batches] == [16, 16, 16, 2]
    images = torch.cat([images for images, _ in batches])
    expected = BatchGatherDataset(train).images
    # same images, other order: compare sorted per-image checksums
    assert sorted(images.flatten(1).sum(1).tolist()) == sorted(expected.flatten(1).sum(1).tolist())


@pytest.mark.slow
def test_cifar10_failure_in_a_single_run_leaves_no_ok_row(run_pinsweep, tmp_path):
    run_dir = tmp_path / "run"
    result = run_pinsweep(
        "data=cifar10",
        "data.download=false",
        "data.root=/nonexistent",
        "model=tiny",
        "isolate=false",  # the dataset fails in the job's first stage: no job process (or fork server) to start
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        timeout=180,
    )
    assert result.returncode != 0
    assert f"/nonexistent/{CIFAR_FOLDER}" in result.stderr
    assert "data=synthetic" in result.stderr
    row = read_row(run_dir)
    assert row["status"] == "invalid"
    assert "data=synthetic" in row["error"]
