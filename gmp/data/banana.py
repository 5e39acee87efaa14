"""The 2-D Banana classification data of the paper's Fig. 3.

Chen & Ge 2024, Sec. 4.1.2 and Fig. 3. The Banana benchmark (Rätsch et al. 2001):
5,300 points in the plane, columns ``At1, At2, Class`` with ``Class ∈ {-1, +1}``; labels are
mapped to ``{0, 1}`` (``+1 → 1``). The file is the copy in the authors' repository, pinned by
commit and SHA-256 and fetched through :mod:`gmp.data.store` (``GMP_DATA_DIR``, cache,
``GMP_OFFLINE``).

Protocol (:func:`banana_splits`): subsample 1,000 points, split them 80/20 into a training
and a test part, carve a validation set out of the training part (used for early stopping
and the learning-rate schedule; the test part is never looked at during training) and
standardize every split with the statistics of the points actually trained on.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .store import RemoteFile, fetch

__all__ = ["BANANA", "BananaFormatError", "load_banana", "BananaSplits", "banana_splits",
           "banana_splits_authors"]

BANANA = RemoteFile(
    relpath="banana/banana.csv",
    url=("https://raw.githubusercontent.com/Wenlin-Chen/geometric-parameterization/"
         "0c48483a1089c16183308216a990f4235219a0ca/2d_banana/2d_banana.csv"),
    sha256="c76502bdf63e4f74e0290bd98da2c425aab247c919cee6dfbfe856694c484e55",
)
_HEADER = ["At1", "At2", "Class"]


class BananaFormatError(ValueError):
    """The Banana file could be read but does not have the expected columns or values."""


def load_banana(path: str | Path | None = None, dtype: type = np.float32
                ) -> tuple[np.ndarray, np.ndarray]:
    """Read the Banana data.

    Args:
        path: a CSV file with header ``At1,At2,Class``; default: the pinned file, fetched and
            checked by :func:`gmp.data.store.fetch` (raises ``DataNotFoundError`` when it is
            missing and cannot be downloaded, ``DataCorruptError`` when its SHA-256 is wrong).
        dtype: numpy dtype of the features (``np.float64`` keeps the file's values exactly).

    Returns:
        ``(x, y)``: features ``(N, 2)`` of ``dtype`` and int64 labels ``(N,)`` in ``{0, 1}``.

    Raises:
        BananaFormatError: wrong header, a row that is not three numbers, or a label that is
            not ±1 (the message names the file and the line).
    """
    p = fetch(BANANA) if path is None else Path(path)
    with open(p, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0]] != _HEADER:
        got = rows[0] if rows else "an empty file"
        raise BananaFormatError(f"{p}: expected the header {','.join(_HEADER)}, got {got}")
    data = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue  # tolerate blank lines (e.g. a trailing newline)
        try:
            if len(row) != 3:
                raise ValueError
            data.append([float(c) for c in row])
        except ValueError:
            raise BananaFormatError(
                f"{p}, line {lineno}: expected three numbers, got {row}") from None
    if not data:
        raise BananaFormatError(f"{p}: no data rows")
    arr = np.asarray(data, dtype=np.float64)
    labels = arr[:, 2]
    bad = ~np.isin(labels, (-1.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BananaFormatError(f"{p}: labels must be -1 or +1; data row {i + 1} has {labels[i]}")
    if not np.isfinite(arr[:, :2]).all():
        raise BananaFormatError(f"{p}: features contain non-finite values")
    return arr[:, :2].astype(dtype), (labels > 0).astype(np.int64)


@dataclass(frozen=True)
class BananaSplits:
    """Standardized splits as float32 tensors: features ``(N, 2)``, labels ``(N,)`` in {0, 1}.

    ``mean`` and ``std`` ``(2,)`` are the training-split statistics used to standardize
    (map a raw point ``p`` to ``(p - mean)/std``).
    """

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    mean: np.ndarray
    std: np.ndarray
    seed: int


def banana_splits(seed: int = 0, n_subsample: int = 1000, test_fraction: float = 0.2,
                  val_fraction: float = 0.2, data: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> BananaSplits:
    """The paper's protocol, seeded: subsample, split off a test part, carve a validation set.

    Args:
        seed: seed of the numpy generator that picks the subsample and the splits.
        n_subsample: points drawn without replacement from the whole data set (1,000).
        test_fraction: share of the subsample held out for testing (0.2).
        val_fraction: share of the remaining training part used for validation (0.2, i.e.
            640 training / 160 validation / 200 test points by default). 0 gives an empty
            validation split.
        data: ``(x, y)`` as returned by :func:`load_banana` (default: load the pinned file).

    Returns:
        :class:`BananaSplits`, standardized with the mean and standard deviation of the
        training split.
    """
    x, y = load_banana() if data is None else data
    if not 0 < n_subsample <= len(x):
        raise ValueError(f"n_subsample must be in [1, {len(x)}], got {n_subsample}")
    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1:
        raise ValueError("need 0 < test_fraction < 1 and 0 <= val_fraction < 1, got "
                         f"{test_fraction} and {val_fraction}")
    idx = np.random.default_rng(seed).permutation(len(x))[:n_subsample]
    n_test = int(round(test_fraction * n_subsample))
    n_val = int(round(val_fraction * (n_subsample - n_test)))
    n_train = n_subsample - n_test - n_val
    if n_train < 2 or n_test < 1:
        raise ValueError(f"splits too small: {n_train} training and {n_test} test points")
    i_train, i_val, i_test = np.split(idx, [n_train, n_train + n_val])
    mean = x[i_train].astype(np.float64).mean(axis=0)
    std = x[i_train].astype(np.float64).std(axis=0)

    def feats(i: np.ndarray) -> Tensor:
        return torch.from_numpy(((x[i] - mean) / std).astype(np.float32))

    def labs(i: np.ndarray) -> Tensor:
        return torch.from_numpy(y[i].astype(np.float32))

    return BananaSplits(feats(i_train), labs(i_train), feats(i_val), labs(i_val),
                        feats(i_test), labs(i_test), mean, std, seed)


def banana_splits_authors(seed: int = 0, validation: bool = False, val_fraction: float = 0.2,
                          n_subsample: int = 1000, test_fraction: float = 0.2,
                          data: tuple[np.ndarray, np.ndarray] | None = None) -> BananaSplits:
    """The authors' notebook's Banana sample and split, exactly, in float64.

    ``np.random.seed(seed)``; ``np.random.choice(5300, n_subsample, replace=False)`` picks the
    subsample; scikit-learn's ``train_test_split(test_size=test_fraction, random_state=seed)``
    splits it (reproduced without scikit-learn: a fresh ``RandomState(seed).permutation``, the
    first ``ceil(test_fraction·n)`` positions are the test part); features are standardized with
    the training part's mean and population standard deviation (``tf.math.reduce_std``).

    Args:
        seed: the notebook's ``GLOBAL_SEED`` (0 is the authors' own sample).
        validation: False (the notebook: ``x_val``/``y_val`` are empty; the notebook monitors
            the test part) or True (the honest protocol: a further ``val_fraction`` of the
            training part, chosen by ``np.random.default_rng(seed)``, becomes the validation
            split and is left out of training; the statistics are those of the points trained
            on).
        val_fraction, n_subsample, test_fraction: as above.
        data: ``(x, y)`` as returned by :func:`load_banana` (default: the pinned file, float64).

    Returns:
        :class:`BananaSplits` of float64 features and float32 labels.
    """
    x, y = load_banana(dtype=np.float64) if data is None else data
    if not 0 < n_subsample <= len(x):
        raise ValueError(f"n_subsample must be in [1, {len(x)}], got {n_subsample}")
    if not 0 < test_fraction < 1 or not 0 < val_fraction < 1:
        raise ValueError("need 0 < test_fraction < 1 and 0 < val_fraction < 1, got "
                         f"{test_fraction} and {val_fraction}")
    idx = np.random.RandomState(seed).choice(len(x), size=n_subsample, replace=False)
    n_test = int(np.ceil(test_fraction * n_subsample))
    perm = np.random.RandomState(seed).permutation(n_subsample)
    i_test, i_train = idx[perm[:n_test]], idx[perm[n_test:]]
    i_val = i_train[:0]
    if validation:
        carve = np.random.default_rng(seed).permutation(len(i_train))
        n_val = int(round(val_fraction * len(i_train)))
        i_val, i_train = i_train[carve[:n_val]], i_train[carve[n_val:]]
    mean = x[i_train].astype(np.float64).mean(axis=0)
    std = x[i_train].astype(np.float64).std(axis=0)

    def feats(i: np.ndarray) -> Tensor:
        return torch.from_numpy((x[i].astype(np.float64) - mean) / std)

    def labs(i: np.ndarray) -> Tensor:
        return torch.from_numpy(y[i].astype(np.float32))

    return BananaSplits(feats(i_train), labs(i_train), feats(i_val), labs(i_val),
                        feats(i_test), labs(i_test), mean, std, seed)
