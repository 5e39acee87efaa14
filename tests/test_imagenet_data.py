"""ImageNet32 and ImageNet loaders: on-disk formats, sharding, augmentation, clear errors.

The ImageNet32 files are written here by hand in the official layout (not with the
package's own writer), so a reader and writer cannot share a mistake.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from gmp.data.imagenet import (
    ImageNetError,
    RandomShorterSide,
    ShardSampler,
    build_imagenet_loaders,
    imagenet_folder,
    train_transform,
    val_transform,
    write_synthetic_folder,
)
from gmp.data.imagenet32 import (
    CHANNEL_MEAN,
    TRAIN_BATCHES,
    DeviceLoader,
    ImageNet32,
    ImageNet32Error,
    find_files,
    load_imagenet32,
    read_batch,
    write_synthetic,
)


def _official_batch(n: int, first_label: int = 1) -> dict:
    """Rows channel-planar: R plane = 10 + i, G plane = 100, B plane holds 0..1023 mod 256."""
    data = np.zeros((n, 3072), dtype=np.uint8)
    for i in range(n):
        data[i, :1024] = 10 + i
        data[i, 1024:2048] = 100
        data[i, 2048:] = np.arange(1024) % 256
    labels = [first_label + (i % 1000) for i in range(n)]  # 1-based
    return {"data": data, "labels": labels, "mean": data.mean(axis=0)}


def _write_official(root, sizes=(3,) * 10, val=5, npz=False, train_dir="", val_dir=""):
    (root / train_dir).mkdir(parents=True, exist_ok=True)
    (root / val_dir).mkdir(parents=True, exist_ok=True)
    items = [(root / train_dir / name, _official_batch(n)) for name, n in
             zip(TRAIN_BATCHES, sizes, strict=True)]
    items.append((root / val_dir / "val_data", _official_batch(val)))
    for path, d in items:
        if npz:
            np.savez(str(path) + ".npz", data=d["data"], labels=np.array(d["labels"]),
                     mean=d["mean"])
        else:
            with open(path, "wb") as f:
                pickle.dump(d, f)
    return root


@pytest.mark.parametrize("npz", [False, True])
def test_read_official_layout(tmp_path, npz):
    _write_official(tmp_path, npz=npz)
    images, labels = read_batch(find_files(tmp_path, "val")[0])
    assert images.dtype == torch.uint8 and images.shape == (5, 3, 32, 32)
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 1, 2, 3, 4]  # 0-based
    assert images[2, 0].unique().tolist() == [12]  # red plane of image 2
    assert images[2, 1].unique().tolist() == [100]
    # blue plane is row-major 32×32: pixel (row 1, col 3) is element 35
    assert int(images[0, 2, 1, 3]) == 35 and int(images[0, 2, 0, 31]) == 31
    train = load_imagenet32(tmp_path, "train")
    assert len(train) == 30 and train.images.shape == (30, 3, 32, 32)


def test_files_one_level_down_and_limit(tmp_path):
    _write_official(tmp_path, train_dir="Imagenet32_train", val_dir="Imagenet32_val")
    assert [p.parent.name for p in find_files(tmp_path, "train")] == ["Imagenet32_train"] * 10
    assert len(load_imagenet32(tmp_path, "train", limit=7)) == 7


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ImageNet32Error, match="does not exist"):
        find_files(tmp_path / "nope", "train")
    _write_official(tmp_path)
    (tmp_path / "train_data_batch_7").unlink()
    (tmp_path / "train_data_batch_9").unlink()
    with pytest.raises(ImageNet32Error, match=r"train_data_batch_7', 'train_data_batch_9"):
        find_files(tmp_path, "train")
    bad = tmp_path / "val_data"
    with open(bad, "wb") as f:
        pickle.dump({"data": np.zeros((4, 100), np.uint8), "labels": [1, 2, 3, 4]}, f)
    with pytest.raises(ImageNet32Error, match=r"shape \(N, 3072\)"):
        read_batch(bad)
    with open(bad, "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}, f)
    with pytest.raises(ImageNet32Error, match="1-based"):
        read_batch(bad)
    with open(bad, "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [1]}, f)
    with pytest.raises(ImageNet32Error, match="2 images but 1 labels"):
        read_batch(bad)
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ImageNet32Error, match="cannot read"):
        read_batch(bad)


def test_synthetic_writer_round_trips(tmp_path):
    for fmt in ("pickle", "npz"):
        root = write_synthetic(tmp_path / fmt, n_train=40, n_val=9, num_classes=4, fmt=fmt)
        tr, va = load_imagenet32(root, "train"), load_imagenet32(root, "val")
        assert (len(tr), len(va)) == (40, 9)
        assert int(tr.labels.min()) >= 0 and int(tr.labels.max()) <= 3


def _toy(n: int) -> ImageNet32:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 32, 32).clone()
    images[:, :, :, 0] = 255  # a marker column on the left edge reveals flips
    return ImageNet32(images, torch.arange(n))


def test_train_sharding_is_a_partition_with_equal_steps():
    data = _toy(50)
    loaders = [DeviceLoader(data, 8, train=True, rank=r, world_size=3, seed=1) for r in range(3)]
    seen = []
    for ld in loaders:
        ld.set_epoch(4)
        batches = list(ld)
        assert len(batches) == len(ld) == 2  # 50 // 3 = 16 per rank → 2 full batches of 8
        seen += [int(v) for _, y in batches for v in y]
    assert len(seen) == len(set(seen)) == 48
    again = [int(v) for _, y in loaders[0] for v in y]
    loaders[0].set_epoch(5)
    other = [int(v) for _, y in loaders[0] for v in y]
    assert again == seen[:16] and other != again  # order: a function of (seed, epoch)


def test_val_sharding_counts_every_sample_once():
    data = _toy(37)
    labels = []
    for r in range(4):
        ld = DeviceLoader(data, 4, train=False, rank=r, world_size=4)
        got = [int(v) for _, y in ld for v in y]
        assert len(got) == len(range(r, 37, 4))
        labels += got
    assert sorted(labels) == list(range(37))


def test_augmentation_flip_and_mean():
    data = _toy(64)
    ld = DeviceLoader(data, 64, train=True, seed=0)
    x, y = next(iter(ld))
    mean = torch.tensor(CHANNEL_MEAN).view(1, 3, 1, 1)
    raw = x + mean  # undo the mean subtraction → image / 255
    left = raw[:, 0, 0, 0] == 1.0
    right = raw[:, 0, 0, 31] == 1.0
    assert bool((left ^ right).all())  # each image either flipped or not
    assert 10 < int(right.sum()) < 54  # both happen (p = 1/2)
    expect = (y.float() / 255).view(-1, 1, 1)
    torch.testing.assert_close(raw[:, :, :, 5], expect.expand(-1, 3, 32), rtol=0, atol=1e-6)
    val = DeviceLoader(data, 64, train=False)
    xv, _ = next(iter(val))
    assert bool(((xv + mean)[:, 0, 0, 0] == 1.0).all())  # no flip in evaluation


def test_loader_rejects_bad_arguments():
    with pytest.raises(ValueError, match="too small"):
        DeviceLoader(_toy(10), 8, train=True, world_size=2)
    with pytest.raises(ValueError, match="rank 2 out of range"):
        DeviceLoader(_toy(10), 2, train=False, rank=2, world_size=2)


# ---------------------------------------------------------------------------- ImageNet folder

def test_imagenet_transforms_shapes():
    from PIL import Image

    img = Image.fromarray(np.zeros((60, 90, 3), dtype=np.uint8))
    assert train_transform()(img).shape == (3, 224, 224)
    assert val_transform()(img).shape == (3, 224, 224)
    for _ in range(5):
        out = RandomShorterSide(256, 480)(img)
        assert 256 <= min(out.size) <= 480 and out.size[0] / out.size[1] == pytest.approx(1.5,
                                                                                           0.02)


def test_imagenet_loaders_and_sharding(tmp_path):
    root = write_synthetic_folder(tmp_path, classes=3, train_per_class=4, val_per_class=3)
    kw = dict(workers=0, crop=32, resize_min=36, resize_max=48, val_resize=36)
    total = 0
    for r in range(2):
        ld = build_imagenet_loaders(root, 2, rank=r, world_size=2, seed=0, **kw)
        assert ld.num_classes == 3 and len(ld.train) == 3  # 12 images / 2 ranks / batch 2
        x, y = next(iter(ld.train))
        assert x.shape == (2, 3, 32, 32) and y.dtype == torch.int64
        total += sum(len(y) for _, y in ld.val)
    assert total == 9
    assert list(ShardSampler(7, 1, 3)) == [1, 4]


def test_imagenet_folder_errors(tmp_path):
    with pytest.raises(ImageNetError, match="does not exist"):
        imagenet_folder(tmp_path / "missing", "train")
    write_synthetic_folder(tmp_path, classes=2, train_per_class=1, val_per_class=1)
    (tmp_path / "train" / "extra").mkdir()
    (tmp_path / "train" / "extra" / "a.JPEG").write_bytes(
        (tmp_path / "train" / "c000" / "img_0000.JPEG").read_bytes())
    with pytest.raises(ImageNetError, match="class folders differ"):
        build_imagenet_loaders(tmp_path, 1, workers=0)
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(ImageNetError, match="unusable"):
        imagenet_folder(empty, "train")
    with pytest.raises(ImageNetError, match="no 'val' subfolder"):
        imagenet_folder(empty, "val")
