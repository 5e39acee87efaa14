"""ImageNet32 (Chrabaszcz et al. 2017) held on the training device, with a device-side loader.

On-disk format (the official downsampled files; download them yourself from
https://image-net.org/download-images — they cannot be redistributed):

- ``train_data_batch_1`` … ``train_data_batch_10`` and ``val_data``: Python pickles of dicts
  ``{"data": uint8 (N, 3072), "labels": list of ints in 1..1000, "mean": ...}``; every row of
  ``data`` is channel-planar (1024 red, then 1024 green, then 1024 blue bytes, row-major 32×32);
- or the same names with ``.npz`` (the "npz" download): arrays ``data``, ``labels``, ``mean``.

The files may sit directly in the folder you pass or one level below it (the official zips
unpack to ``Imagenet32_train/`` and ``Imagenet32_val/``).

The whole set is kept as a ``uint8`` tensor ``(N, 3, 32, 32)`` (1.28 M images: 3.9 GB) on the
device that trains, and :class:`DeviceLoader` augments on that device (random horizontal
flip, scale to [0, 1], subtract the channel mean — the paper's pipeline), so no CPU worker
can starve the GPU. Under DDP every rank keeps the full tensor and reads its own shard.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["CHANNEL_MEAN", "NUM_CLASSES", "DeviceLoader", "ImageNet32", "ImageNet32Error",
           "find_files", "load_imagenet32", "read_batch", "write_synthetic"]

#: Per-channel mean of the ImageNet32 training images in [0, 1] (RGB), subtracted on device.
CHANNEL_MEAN: tuple[float, float, float] = (0.481098, 0.45747134, 0.40785483)
NUM_CLASSES = 1000
IMAGE_SHAPE = (3, 32, 32)
TRAIN_BATCHES = tuple(f"train_data_batch_{i}" for i in range(1, 11))
VAL_BATCH = "val_data"


class ImageNet32Error(ValueError):
    """A problem with an ImageNet32 folder or file (missing, wrong format, wrong shapes)."""


@dataclass
class ImageNet32:
    """Images ``(N, 3, 32, 32)`` uint8 and 0-based labels ``(N,)`` int64 of one split."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str) -> ImageNet32:
        return ImageNet32(self.images.to(device), self.labels.to(device))


def _locate(root: Path, name: str) -> Path | None:
    """``root/name[.npz]`` or ``root/*/name[.npz]``; None when absent."""
    for candidate in (name, name + ".npz"):
        direct = root / candidate
        if direct.is_file():
            return direct
    for candidate in (name, name + ".npz"):
        hits = sorted(p for p in root.glob(f"*/{candidate}") if p.is_file())
        if hits:
            return hits[0]
    return None


def find_files(root: str | Path, split: str) -> list[Path]:
    """The files of ``split`` (``"train"`` or ``"val"``) under ``root``, in order.

    Raises:
        ImageNet32Error: ``root`` is not a folder, or a batch is missing (all missing ones
            are named).
    """
    root = Path(root).expanduser()
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if not root.is_dir():
        raise ImageNet32Error(f"ImageNet32 folder {str(root)!r} does not exist or is not a "
                              "folder; pass the folder holding train_data_batch_1..10 and "
                              "val_data (or their .npz versions)")
    names = TRAIN_BATCHES if split == "train" else (VAL_BATCH,)
    found = {n: _locate(root, n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise ImageNet32Error(
            f"ImageNet32 folder {str(root)!r} lacks {split} file(s) {missing} (looked for "
            "NAME and NAME.npz in the folder and one level below). Expected the official "
            "downsampled files: train_data_batch_1..10 and val_data (Imagenet32_train.zip, "
            "Imagenet32_val.zip or their npz versions)")
    return [p for p in found.values() if p is not None]


def read_batch(path: str | Path) -> tuple[Tensor, Tensor]:
    """Read one pickled or ``.npz`` batch → images ``(N, 3, 32, 32)`` uint8, labels 0-based.

    Raises:
        ImageNet32Error: unreadable file, missing keys, wrong dtype/shape, labels out of 1..1000.
    """
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        else:
            with path.open("rb") as f:
                d = pickle.load(f, encoding="latin1")
    except Exception as e:  # any unpickling / zip error: say which file
        raise ImageNet32Error(f"cannot read ImageNet32 batch {str(path)!r}: "
                              f"{type(e).__name__}: {e}") from e
    if not isinstance(d, dict) or "data" not in d or "labels" not in d:
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise ImageNet32Error(f"{str(path)!r}: expected a dict with keys 'data' and 'labels', "
                              f"got {keys}")
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"]).reshape(-1)
    n_pix = int(np.prod(IMAGE_SHAPE))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != n_pix:
        raise ImageNet32Error(f"{str(path)!r}: 'data' must be uint8 of shape (N, {n_pix}) "
                              f"(channel-planar 3×32×32), got {data.dtype} {data.shape}")
    if labels.shape[0] != data.shape[0]:
        raise ImageNet32Error(f"{str(path)!r}: {data.shape[0]} images but {labels.shape[0]} "
                              "labels")
    if labels.size and (labels.min() < 1 or labels.max() > NUM_CLASSES):
        raise ImageNet32Error(f"{str(path)!r}: labels must be 1-based in 1..{NUM_CLASSES}, "
                              f"found range [{labels.min()}, {labels.max()}]")
    images = torch.from_numpy(np.ascontiguousarray(data)).view(-1, *IMAGE_SHAPE)
    return images, torch.from_numpy(labels.astype(np.int64) - 1)


def load_imagenet32(root: str | Path, split: str, device: torch.device | str = "cpu",
                    limit: int | None = None) -> ImageNet32:
    """Load a whole split onto ``device`` (uint8; 3.9 GB for the training set).

    ``limit`` keeps the first ``limit`` images (smoke runs). Each file goes to ``device`` as
    soon as it is read, so host memory holds one file (~400 MB) at a time; the final
    concatenation briefly needs twice the data set's size on ``device``.
    """
    files = find_files(root, split)
    images, labels, total = [], [], 0
    for p in files:  # each host batch is freed once it is on the device
        if limit is not None and total >= limit:
            break
        imgs, labs = read_batch(p)
        if limit is not None:
            imgs, labs = imgs[: limit - total], labs[: limit - total]
        images.append(imgs.to(device))
        labels.append(labs.to(device))
        total += imgs.shape[0]
    if total == 0:
        raise ImageNet32Error(f"ImageNet32 {split} split under {str(root)!r} holds no images")
    return ImageNet32(torch.cat(images), torch.cat(labels))


class DeviceLoader:
    """Mini-batches of an :class:`ImageNet32` split, sharded over ranks, augmented on device.

    Training (``train=True``): every epoch draws a permutation of all ``N`` indices from a
    generator seeded with ``(seed, epoch)`` — the same on every rank — and rank ``r`` of
    ``W`` takes ``perm[r::W][: N // W]`` (the DistributedSampler convention), cut into full
    batches of ``batch_size`` (the last partial batch is dropped, so all ranks take the same
    number of steps). Each image is flipped horizontally with probability 1/2, with a
    generator seeded by ``(seed, epoch, rank)``: the data order and the augmentation of an
    epoch depend on nothing else, which makes resuming at an epoch boundary exact.

    Evaluation (``train=False``): rank ``r`` takes indices ``r, r+W, r+2W, …`` in order,
    without padding, so over all ranks every sample is seen exactly once.

    Yields ``x`` float ``(B, 3, 32, 32)`` = ``image/255 - CHANNEL_MEAN`` (in ``memory_format``)
    and ``y`` int64 ``(B,)``, both on the data's device.
    """

    def __init__(self, data: ImageNet32, batch_size: int, *, train: bool, rank: int = 0,
                 world_size: int = 1, seed: int = 0,
                 memory_format: torch.memory_format = torch.contiguous_format,
                 max_batches: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        if train and len(data) // world_size < batch_size:
            raise ValueError(f"training set of {len(data)} images is too small for "
                             f"{world_size} rank(s) × batch {batch_size}")
        self.data, self.batch_size, self.train = data, batch_size, train
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.memory_format, self.max_batches = memory_format, max_batches
        self.epoch = 0
        self.mean = torch.tensor(CHANNEL_MEAN, device=data.images.device).view(1, 3, 1, 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> Tensor:
        n = len(self.data)
        if not self.train:
            return torch.arange(self.rank, n, self.world_size)
        g = torch.Generator().manual_seed(_mix(self.seed, self.epoch))
        perm = torch.randperm(n, generator=g)
        per_rank = n // self.world_size
        return perm[self.rank::self.world_size][:per_rank]

    def __len__(self) -> int:
        n = len(range(self.rank, len(self.data), self.world_size))
        if self.train:
            n = len(self.data) // self.world_size
        batches = n // self.batch_size if self.train else -(-n // self.batch_size)
        return batches if self.max_batches is None else min(batches, self.max_batches)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        device = self.data.images.device
        idx = self._indices().to(device)
        flip_gen = None
        if self.train:
            flip_gen = torch.Generator(device=device)
            flip_gen.manual_seed(_mix(self.seed, self.epoch, self.rank + 1))
        for b in range(len(self)):
            sel = idx[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.data.images.index_select(0, sel)
            y = self.data.labels.index_select(0, sel)
            if flip_gen is not None:
                flip = torch.rand(x.shape[0], device=device, generator=flip_gen) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            x = x.float().div_(255.0).sub_(self.mean)
            yield x.contiguous(memory_format=self.memory_format), y


def _mix(*ints: int) -> int:
    """A 63-bit seed from several integers (stable across runs and platforms)."""
    h = 0x9E3779B97F4A7C15
    for v in ints:
        h = (h ^ (int(v) + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2))) & ((1 << 63) - 1)
    return h


def write_synthetic(root: str | Path, n_train: int = 256, n_val: int = 64,
                    num_classes: int = 10, fmt: str = "pickle", seed: int = 0) -> Path:
    """Write a tiny ImageNet32-format data set (smoke runs, the book, benchmarks).

    ``n_train`` images spread over the ten ``train_data_batch_*`` files and ``n_val`` in
    ``val_data``, in the official layout (``fmt="pickle"``) or as ``.npz``. Each class has its
    own mean colour plus noise, so a few steps of training visibly learn something. Labels
    are written 1-based, as in the real files.
    """
    if fmt not in ("pickle", "npz"):
        raise ValueError(f"fmt must be 'pickle' or 'npz', got {fmt!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, size=(num_classes, 3))

    def make(n: int) -> dict:
        labels = rng.integers(0, num_classes, size=n)
        img = colours[labels][:, :, None] + rng.normal(0, 30, size=(n, 3, 1024))
        data = np.clip(img, 0, 255).astype(np.uint8).reshape(n, 3072)
        return {"data": data, "labels": (labels + 1).tolist(),
                "mean": data.mean(axis=0)}

    splits = np.array_split(np.arange(n_train), len(TRAIN_BATCHES))
    for name, idx in [*zip(TRAIN_BATCHES, splits, strict=True), (VAL_BATCH, np.arange(n_val))]:
        d = make(len(idx))
        if fmt == "npz":
            np.savez(root / f"{name}.npz", data=d["data"], labels=np.asarray(d["labels"]),
                     mean=d["mean"])
        else:
            with (root / name).open("wb") as f:
                pickle.dump(d, f)
    return root
