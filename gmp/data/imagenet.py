"""ImageNet (ILSVRC 2012) from an image folder, with the augmentation of He et al. (2016).

Expected layout (the usual one; ILSVRC's flat validation folder must first be sorted into
class folders, e.g. with the widely used ``valprep.sh``)::

    ROOT/train/n01440764/*.JPEG   (1000 class folders, 1,281,167 images)
    ROOT/val/n01440764/*.JPEG     (the same 1000 class folders, 50,000 images)

Training augmentation (Table 3's recipe, He et al. 2016, Sec. 3.4):

1. scale augmentation: resize so the **shorter side** is an integer drawn uniformly from
   ``[256, 480]`` (aspect ratio preserved);
2. a random 224×224 crop;
3. random horizontal flip;
4. colour augmentation. He et al. use "the standard colour augmentation" of Krizhevsky et
   al. (2012): PCA lighting noise along the RGB principal components of ImageNet. We apply
   :class:`torchvision.transforms.ColorJitter` (brightness, contrast, saturation 0.4 each by
   default) followed by that PCA lighting noise (std 0.1), the combination used by the
   widely reproduced fb.resnet.torch recipe. Both strengths are flags (0 switches them off);
5. normalise with the ImageNet channel mean and std.

Validation: resize the shorter side to 256, single centre 224 crop, normalise.

Sharding: training uses :class:`torch.utils.data.DistributedSampler` (same number of
samples on every rank, last partial batch dropped); validation uses :class:`ShardSampler`,
which gives rank ``r`` the indices ``r, r+W, …`` without padding, so every validation image
is counted exactly once over all ranks.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ImageNetError", "Lighting", "RandomShorterSide",
           "ShardSampler", "ImageNetLoaders", "build_imagenet_loaders", "imagenet_folder",
           "train_transform", "val_transform", "write_synthetic_folder"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Eigen-decomposition of the RGB covariance of ImageNet pixels (in [0, 1]), as published with
# AlexNet-style lighting augmentation (Krizhevsky et al. 2012; fb.resnet.torch).
_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
_PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009),
               (-0.5808, -0.0045, -0.8140),
               (-0.5836, -0.6948, 0.4203))


class ImageNetError(ValueError):
    """A problem with the ImageNet folder (missing split, no images, class mismatch)."""


class RandomShorterSide:
    """Resize a PIL image so its shorter side is a random integer in ``[low, high]``."""

    def __init__(self, low: int = 256, high: int = 480) -> None:
        if not 0 < low <= high:
            raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
        self.low, self.high = low, high

    def __call__(self, img):
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        size = random.randint(self.low, self.high)  # python RNG: seeded per worker by torch
        return F.resize(img, size, interpolation=InterpolationMode.BILINEAR, antialias=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(low={self.low}, high={self.high})"


class Lighting:
    """AlexNet PCA lighting noise on a ``(3, H, W)`` tensor in [0, 1]:
    ``x + V·(α ⊙ λ)`` with ``α ~ N(0, std²)`` per image, ``V, λ`` the RGB eigenvectors and
    eigenvalues of ImageNet."""

    def __init__(self, std: float = 0.1) -> None:
        if std < 0:
            raise ValueError(f"lighting std must be >= 0, got {std}")
        self.std = std
        self.eigval = torch.tensor(_PCA_EIGVAL)
        self.eigvec = torch.tensor(_PCA_EIGVEC)

    def __call__(self, x: Tensor) -> Tensor:
        if self.std == 0:
            return x
        alpha = torch.randn(3) * self.std
        rgb = self.eigvec @ (alpha * self.eigval)
        return x + rgb.view(3, 1, 1).to(x.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(std={self.std})"


def train_transform(crop: int = 224, resize_min: int = 256, resize_max: int = 480,
                    color_jitter: float = 0.4, lighting: float = 0.1):
    """The training pipeline described in the module docstring (PIL image → float tensor)."""
    from torchvision import transforms as T

    steps = [RandomShorterSide(resize_min, resize_max), T.RandomCrop(crop),
             T.RandomHorizontalFlip()]
    if color_jitter > 0:
        steps.append(T.ColorJitter(color_jitter, color_jitter, color_jitter))
    steps.append(T.ToTensor())
    if lighting > 0:
        steps.append(Lighting(lighting))
    steps.append(T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return T.Compose(steps)


def val_transform(crop: int = 224, resize: int = 256):
    """Resize the shorter side to ``resize``, centre crop ``crop``, normalise."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(resize, antialias=True), T.CenterCrop(crop), T.ToTensor(),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def imagenet_folder(root: str | Path, split: str, transform=None) -> Dataset:
    """``torchvision.datasets.ImageFolder`` of ``root/split`` with a clear error when the
    folder is missing or holds no class folders / images."""
    from torchvision.datasets import ImageFolder

    root = Path(root).expanduser()
    if not root.is_dir():
        raise ImageNetError(f"ImageNet folder {str(root)!r} does not exist or is not a folder")
    path = root / split
    if not path.is_dir():
        raise ImageNetError(f"ImageNet folder {str(root)!r} has no {split!r} subfolder; "
                            f"expected {root}/train/<wnid>/*.JPEG and {root}/val/<wnid>/*.JPEG "
                            "(sort the validation images into class folders first)")
    try:
        return ImageFolder(str(path), transform=transform)
    except (FileNotFoundError, RuntimeError) as e:
        raise ImageNetError(f"ImageNet {split} folder {str(path)!r} is unusable: {e}. Expected "
                            "one subfolder per class holding the images") from e


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + W, rank + 2W, …`` of ``range(n)``: no shuffling, no padding."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        self.n, self.rank, self.world_size = n, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))


class _Limited(Dataset):
    """The first ``n`` items of a data set (``--limit-val``)."""

    def __init__(self, base: Dataset, n: int) -> None:
        self.base, self.n = base, min(n, len(base))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if i >= self.n:
            raise IndexError(i)
        return self.base[i]


@dataclass
class ImageNetLoaders:
    train: DataLoader
    val: DataLoader
    train_sampler: DistributedSampler
    generator: torch.Generator
    num_classes: int
    seed: int

    def set_epoch(self, epoch: int) -> None:
        """Fix this epoch's shuffle and the augmentation seeds of the loader's workers."""
        self.train_sampler.set_epoch(epoch)
        self.generator.manual_seed(self.seed * 100_003 + epoch)


def build_imagenet_loaders(root: str | Path, batch_size: int, *, rank: int = 0,
                           world_size: int = 1, seed: int = 0, workers: int = 8,
                           pin_memory: bool = False, limit_val: int | None = None,
                           crop: int = 224, resize_min: int = 256, resize_max: int = 480,
                           val_resize: int = 256, color_jitter: float = 0.4,
                           lighting: float = 0.1) -> ImageNetLoaders:
    """Training and validation loaders of one rank; ``batch_size`` is per rank.

    Workers are not persistent: each epoch restarts them with seeds drawn from a generator
    reseeded by :meth:`ImageNetLoaders.set_epoch`, so an epoch's augmentation depends only
    on ``(seed, epoch)`` and resuming at an epoch boundary replays it.
    """
    train_ds = imagenet_folder(root, "train", train_transform(crop, resize_min, resize_max,
                                                              color_jitter, lighting))
    val_ds = imagenet_folder(root, "val", val_transform(crop, val_resize))
    if train_ds.classes != val_ds.classes:  # type: ignore[attr-defined]
        only_t = sorted(set(train_ds.classes) - set(val_ds.classes))[:5]  # type: ignore
        only_v = sorted(set(val_ds.classes) - set(train_ds.classes))[:5]  # type: ignore
        raise ImageNetError(f"train and val class folders differ under {str(root)!r} "
                            f"(only in train: {only_t}, only in val: {only_v})")
    if len(train_ds) // world_size < batch_size:
        raise ImageNetError(f"training set of {len(train_ds)} images is too small for "
                            f"{world_size} rank(s) × batch {batch_size}")
    if limit_val is not None:
        val_ds = _Limited(val_ds, limit_val)
    sampler = DistributedSampler(train_ds, num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=seed, drop_last=True)
    gen = torch.Generator()
    common = dict(num_workers=workers, pin_memory=pin_memory,
                  prefetch_factor=4 if workers > 0 else None)
    train = DataLoader(train_ds, batch_size=batch_size, sampler=sampler, drop_last=True,
                       generator=gen, **common)
    val = DataLoader(val_ds, batch_size=batch_size, shuffle=False,
                     sampler=ShardSampler(len(val_ds), rank, world_size), **common)
    return ImageNetLoaders(train, val, sampler, gen, len(train_ds.classes), seed)  # type: ignore


def batches(loader: DataLoader, device: torch.device, memory_format: torch.memory_format,
            max_batches: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Move ``(x, y)`` batches to ``device`` (non-blocking from pinned memory)."""
    for i, (x, y) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        yield (x.to(device, non_blocking=True).contiguous(memory_format=memory_format),
               y.to(device, non_blocking=True))


def num_batches(loader: DataLoader, max_batches: int | None) -> int:
    n = len(loader)
    return n if max_batches is None else min(n, max_batches)



def write_synthetic_folder(root: str | Path, classes: int = 3, train_per_class: int = 4,
                           val_per_class: int = 2, size: int = 64, seed: int = 0) -> Path:
    """Write a tiny ImageNet-layout JPEG tree ``root/{train,val}/c<k>/*.JPEG`` (smoke runs).

    Every class has its own mean colour plus noise; images are ``size × size`` (a few
    are made rectangular so resizing by the shorter side is exercised).
    """
    import numpy as np
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, size=(classes, 3))
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = root / split / f"c{c:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                h, w = (size, size + 16 * (i % 2))
                img = colours[c] + rng.normal(0, 30, size=(h, w, 3))
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
                    folder / f"img_{i:04d}.JPEG", quality=90)
    return root
