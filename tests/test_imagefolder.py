"""JPEG folders (data=imagefolder), their decoders, the torchdata.nodes engine, in_order, and
loader.device_prefetch: on the CPU here; the CUDA paths (nvJPEG, the side stream) in test_gpu.py."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from pinsweep.analysis.summarize import summarize
from pinsweep.app import run_and_record
from pinsweep.config import ConfigError, validate
from pinsweep.input.batch import Mover, first_dim
from pinsweep.input.data import EncodedBatch, build_datasets
from pinsweep.input.jpegs import main as make_jpegs
from pinsweep.input.loader import build_input
from pinsweep.input.prefetch import DevicePrefetcher
from pinsweep.input.stage import Input
from pinsweep.record import read_rows

# torchvision 0.29 deprecates its image decoders for TorchCodec's; data.decoder=torchvision measures them as they are
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")

CLASSES = 4
COUNT = 64  # train images; val gets a fifth
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def jpeg_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("jpegs")
    assert make_jpegs([str(root), "--count", str(COUNT), "--size", "48", "--classes", str(CLASSES)]) == 0
    return root


def imagefolder(jpeg_root, *overrides: str) -> tuple[str, ...]:
    return (
        "data=imagefolder",
        f"data.root={jpeg_root}",
        "data.image_size=32",
        "model=tiny",
        "model.width=8",
        f"model.num_classes={CLASSES}",
        "loader.batch_size=16",
        "train.epochs=2",
        "train.ceiling_steps=2",
        "train.ceiling_budget_s=0.2",
        "isolate=false",
        *overrides,
    )


def test_make_jpegs_writes_real_jpegs_in_imagefolder_layout(jpeg_root):
    files = sorted((jpeg_root / "train").glob("class_*/*.jpg"))
    assert len(files) == COUNT
    assert len(list((jpeg_root / "val").glob("class_*/*.jpg"))) == COUNT // 5
    assert Counter(f.parent.name for f in files) == {f"class_{c:02d}": COUNT // CLASSES for c in range(CLASSES)}
    with Image.open(files[0]) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (48, 48))
    # class-dependent content: the mean colours of two classes differ by far more than the noise
    means = [
        np.asarray(Image.open(next((jpeg_root / "train" / f"class_{c:02d}").iterdir()))).mean((0, 1)) for c in (0, 1)
    ]
    assert np.abs(means[0] - means[1]).max() > 30


def test_make_jpegs_refuses_a_folder_that_already_holds_a_tree(jpeg_root, capsys):
    with pytest.raises(SystemExit) as exit_:
        make_jpegs([str(jpeg_root), "--count", "8"])
    assert exit_.value.code != 0
    assert "already holds train/" in capsys.readouterr().err


def test_pil_and_torchvision_decode_the_same_pixels(compose_cfg, jpeg_root):
    """The test split has no random crop: both decoders must give (nearly: libjpeg versions) the same images."""
    images = {}
    for decoder in ("pil", "torchvision"):
        cfg = compose_cfg(*imagefolder(jpeg_root, f"data.decoder={decoder}"))
        _, test = build_datasets(cfg.data)
        image, label = test[0]
        assert (image.dtype, image.shape, label) == (torch.uint8, (3, 32, 32), 0)
        images[decoder] = image.float()
    assert (images["pil"] - images["torchvision"]).abs().mean() < 3


def test_train_split_is_augmented_with_random_crops(compose_cfg, jpeg_root):
    cfg = compose_cfg(*imagefolder(jpeg_root, "data.decoder=torchvision"))
    train, _ = build_datasets(cfg.data)
    torch.manual_seed(0)
    first, second = train[0][0], train[0][0]
    assert first.shape == second.shape == (3, 32, 32)
    assert not torch.equal(first, second)


def test_nvjpeg_loader_carries_the_encoded_files(compose_cfg, jpeg_root):
    cfg = compose_cfg(*imagefolder(jpeg_root, "data.decoder=nvjpeg", "loader.num_workers=1"))
    train, _ = build_datasets(cfg.data)
    encoded, labels = next(iter(build_input(train, cfg.data, cfg.loader, CPU, True, 0)))
    assert isinstance(encoded, EncodedBatch) and len(encoded.lengths) == len(labels) == 16
    first = encoded.files()[0]
    assert bytes(first[:2].tolist()) == b"\xff\xd8"  # a JPEG's start-of-image marker, not decoded pixels


def test_nvjpeg_without_cuda_is_an_invalid_row_saying_why(compose_cfg, jpeg_root, tmp_path):
    cfg = compose_cfg(*imagefolder(jpeg_root, "data.decoder=nvjpeg", "train.device=cpu"))
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "invalid"
    assert "nvjpeg decodes on a CUDA GPU" in row["error"] and "data.decoder=torchvision" in row["error"]


@pytest.mark.parametrize(
    "bad,why",
    [
        (("data=synthetic", "data.decoder=torchvision"), "use it with data=imagefolder"),
        (("loader.worker_type=thread",), "use loader.engine=nodes for threads"),
        (("loader.engine=nodes", "loader.num_workers=1", "loader.persistent_workers=true"), "no persistent workers"),
        (("loader.device_prefetch=-1",), "must be >= 0"),
    ],
)
def test_combinations_that_cannot_run_are_refused(compose_cfg, jpeg_root, bad, why):
    with pytest.raises(ConfigError, match=why):
        validate(compose_cfg(*imagefolder(jpeg_root), *bad))


def test_missing_folder_points_at_make_jpegs(compose_cfg, tmp_path):
    cfg = compose_cfg(*imagefolder(tmp_path / "nowhere"))
    row = run_and_record(cfg, tmp_path / "job")
    assert row["status"] == "invalid" and "pinsweep.make_jpegs" in row["error"]


@pytest.mark.parametrize("engine,worker_type", [("nodes", "thread"), ("nodes", "process"), ("dataloader", "process")])
@pytest.mark.parametrize("in_order", [True, False])
def test_every_engine_delivers_every_image_once_an_epoch(compose_cfg, jpeg_root, engine, worker_type, in_order):
    cfg = compose_cfg(
        *imagefolder(jpeg_root, "data.decoder=torchvision", "loader.num_workers=2"),
        f"loader.engine={engine}",
        f"loader.worker_type={worker_type}",
        f"loader.in_order={str(in_order).lower()}",
    )
    train, _ = build_datasets(cfg.data)
    loader = build_input(train, cfg.data, cfg.loader, CPU, True, 0)
    assert len(loader) == COUNT // 16
    for _ in range(2):  # a second epoch: the graph resets
        labels = torch.cat([batch_labels for _, batch_labels in loader])
        assert sorted(labels.tolist()) == sorted(train.targets)


def test_nodes_engine_trains_and_reports_like_a_dataloader(compose_cfg, jpeg_root, tmp_path):
    for num, (engine, worker_type) in enumerate([("dataloader", "process"), ("nodes", "thread")]):
        cfg = compose_cfg(*imagefolder(jpeg_root, "loader.num_workers=1", f"loader.engine={engine}"))
        cfg.loader.worker_type = worker_type
        row = run_and_record(cfg, tmp_path / str(num), num, f"loader.engine={engine}")
        assert row["status"] == "ok", row.get("error")
        assert row["loader.engine"] == engine and row["loader.worker_type"] == worker_type
        assert row["images_per_s"] > 0 and row["loader_ceiling_ips"] > 0
        assert 0 <= row["test_accuracy"] <= 100


def test_device_prefetch_on_cpu_is_recorded_inactive(compose_cfg, jpeg_root, tmp_path):
    for num, depth in enumerate((0, 2)):
        cfg = compose_cfg(*imagefolder(jpeg_root, f"loader.device_prefetch={depth}", "train.repeat=0"))
        row = run_and_record(cfg, tmp_path / str(num), num, f"loader.device_prefetch={depth}")
        assert row["status"] == "ok", row.get("error")
        assert row["loader.device_prefetch"] == depth
        assert row["device_prefetch_active"] is False or row["device_prefetch_active"] == 0
        assert row["side_copy_s"] == 0
    _, effects = summarize(read_rows(tmp_path))
    prefetch = effects[effects["axis"] == "loader.device_prefetch"]
    assert len(prefetch) and prefetch["effect"].str.contains("inactive").all()


# ------------------------------------------------------------------------------------------- CUDA


def needs_cuda_gpu(test):
    """`-m gpu` selects it; without CUDA it is skipped."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; this machine has no GPU")
    return pytest.mark.gpu(skip(test))


@needs_cuda_gpu
@pytest.mark.parametrize("train", [False, True])
def test_nvjpeg_decodes_on_the_gpu_like_the_cpu_decoder(compose_cfg, jpeg_root, train):
    cfg = compose_cfg(*imagefolder(jpeg_root, "data.decoder=nvjpeg"))
    train_set, test_set = build_datasets(cfg.data)
    encoded, labels = next(iter(build_input(train_set if train else test_set, cfg.data, cfg.loader, CPU, train, 0)))
    images = encoded.decode(torch.device("cuda"))
    assert images.device.type == "cuda" and images.dtype == torch.uint8 and images.shape == (len(labels), 3, 32, 32)
    if not train:  # no random crop: the same pixels as torchvision's CPU decoder, up to the decoders' rounding
        cfg.data.decoder = "torchvision"
        cpu_image = build_datasets(cfg.data)[1][0][0]
        assert (images[0].cpu().float() - cpu_image.float()).abs().mean() < 3


@needs_cuda_gpu
def test_device_prefetch_hands_out_the_loaders_batches_in_order():
    device = torch.device("cuda", torch.cuda.current_device())
    batches = [(torch.full((64, 3, 8, 8), i, dtype=torch.uint8).pin_memory(), torch.tensor([i])) for i in range(7)]
    source = type("Batches", (Input,), {"__iter__": lambda self: iter(batches), "__len__": lambda self: 7})()
    prefetcher = DevicePrefetcher(source, 2, device, Mover(device, True, False), first_dim)
    stream = torch.cuda.current_stream(device)
    seen = [int(staged.arrive(stream)[0].float().mean()) for staged in prefetcher]
    assert seen == list(range(7))


@needs_cuda_gpu
@pytest.mark.parametrize("decoder", ["torchvision", "nvjpeg"])
def test_device_prefetch_on_cuda_records_the_side_stream_copy(compose_cfg, jpeg_root, tmp_path, decoder):
    cfg = compose_cfg(
        *imagefolder(jpeg_root, f"data.decoder={decoder}", "loader.device_prefetch=2", "loader.pin_memory=true")
    )
    row = run_and_record(cfg, tmp_path)
    assert row["status"] == "ok", row.get("error")
    assert row["device"].startswith("cuda") and bool(row["device_prefetch_active"])
    assert row["side_copy_s"] > 0  # the copies ran on the side stream and were timed there
    assert row["test_accuracy"] >= 0


class _FakeEvent:
    """A CUDA event whose completion the test decides."""

    def __init__(self):
        self.done = False

    def record(self):
        pass

    def query(self):
        return self.done


def test_nvjpeg_decoded_images_live_until_the_device_is_past_their_crops(monkeypatch):
    """Issue 30, item 2: nvJPEG decodes on a stream of its own into memory allocated on the current one;
    the previous batch's decoded images, freed while their crops were still queued, could be decoded
    into. Each batch's decoded list is now held until an event after its crops has completed."""
    import gc
    import weakref

    from pinsweep.input import data, prefetch

    events = []
    monkeypatch.setattr(prefetch, "DECODED", prefetch.HeldUntilDone(lambda: events.append(_FakeEvent()) or events[-1]))
    decoded = []
    monkeypatch.setattr(
        data,
        "decode_jpeg",
        lambda files, mode, device: (
            decoded.append([torch.zeros(3, 40, 40, dtype=torch.uint8) for _ in files]) or decoded[-1]
        ),
    )
    files = torch.zeros(8, dtype=torch.uint8)
    batch = EncodedBatch(files, [4, 4], image_size=32, train=False)
    images = batch.decode(torch.device("cuda"))  # a device object only: the decode itself is faked
    assert images.shape == (2, 3, 32, 32)
    first = weakref.ref(decoded[0][0])
    decoded.clear()
    gc.collect()
    assert first() is not None  # the device has not passed the first batch's crops
    batch.decode(torch.device("cuda"))
    assert first() is not None and len(prefetch.DECODED.held) == 2
    events[0].done = True
    batch.decode(torch.device("cuda"))
    decoded.clear()
    gc.collect()
    assert first() is None and len(prefetch.DECODED.held) == 2  # released once the device was past it
