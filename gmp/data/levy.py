"""The 1-D Levy function and the regression data of the paper's Fig. 2.

Chen & Ge 2024, Sec. 4.1.1 and Fig. 2. The Levy test function
(Surjanovic & Bingham, *Virtual Library of Simulation Experiments*) restricted to one input:

    w = 1 + (x - 1)/4,    f(x) = sin²(πw) + (w - 1)²·(1 + sin²(2πw)).

(The d-dimensional function has a middle sum over coordinates ``1..d-1``; it is empty for
``d = 1``.) The global minimum is ``f(1) = 0``.

Protocol: 50 training inputs ``x ~ U(-10, 10)`` with targets ``f(x) + N(0, 0.1²)``; the test
set is the noise-free grid ``-10 : 0.1 : 10`` (201 points). Everything is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

__all__ = ["levy", "LevyData", "levy_data", "levy_data_authors"]

ArrayT = TypeVar("ArrayT", np.ndarray, Tensor)


def levy(x: ArrayT) -> ArrayT:
    """The 1-D Levy function, elementwise; numpy arrays and torch tensors of any shape."""
    lib = torch if isinstance(x, Tensor) else np
    w = 1.0 + (x - 1.0) / 4.0
    return lib.sin(np.pi * w) ** 2 + (w - 1.0) ** 2 * (1.0 + lib.sin(2.0 * np.pi * w) ** 2)


@dataclass(frozen=True)
class LevyData:
    """Training sample and test grid, tensors of shape ``(N, 1)`` (float32 from
    :func:`levy_data`, float64 from :func:`levy_data_authors`)."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    seed: int
    noise_std: float

    def numpy(self) -> dict[str, np.ndarray]:
        """The four arrays as float32 numpy arrays of shape ``(N, 1)``."""
        return {k: getattr(self, k).numpy() for k in ("x_train", "y_train", "x_test", "y_test")}


def levy_data(seed: int = 0, n_train: int = 50, noise_std: float = 0.1, low: float = -10.0,
              high: float = 10.0, test_step: float = 0.1) -> LevyData:
    """Sample the Levy regression problem of Fig. 2.

    Args:
        seed: seed of the numpy generator that draws the training inputs and the noise.
        n_train: number of training points (50 in the paper).
        noise_std: standard deviation of the Gaussian noise on the training targets.
        low, high: the input interval (training inputs uniform on it, test grid spanning it).
        test_step: spacing of the noise-free test grid (``low, low + step, …, high``).

    Returns:
        :class:`LevyData` with ``x_train, y_train: (n_train, 1)`` and
        ``x_test, y_test: (round((high - low)/test_step) + 1, 1)``, all float32.
    """
    if n_train < 1:
        raise ValueError(f"n_train must be a positive integer, got {n_train}")
    if not high > low:
        raise ValueError(f"need low < high, got low={low}, high={high}")
    if not 0 < test_step <= high - low:
        raise ValueError(f"test_step must be in (0, high - low], got {test_step}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be non-negative, got {noise_std}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, size=(n_train, 1))
    y = levy(x) + noise_std * rng.standard_normal((n_train, 1))
    n_test = int(round((high - low) / test_step)) + 1
    xt = np.linspace(low, high, n_test).reshape(-1, 1)

    def f32(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a.astype(np.float32))

    return LevyData(f32(x), f32(y), f32(xt), f32(levy(xt)), seed, float(noise_std))


def levy_data_authors(seed: int = 0, n_train: int = 50, noise_std: float = 0.1) -> LevyData:
    """The Levy sample exactly as the authors' notebook draws it, in float64.

    ``np.random.seed(seed)``, then ``x ~ U(-10, 10)`` of shape ``(n_train, 1)``, then the noise
    ``N(0, noise_std²)`` of the same shape, in that order, from numpy's legacy global generator
    (reproduced here with a private ``np.random.RandomState(seed)``, which draws the same
    numbers without touching the global state). The test grid is ``np.arange(-10, 10.1, 0.1)``
    (201 points, as in the notebook). ``seed = 0`` is the authors' own data set.
    """
    if n_train < 1:
        raise ValueError(f"n_train must be a positive integer, got {n_train}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be non-negative, got {noise_std}")
    rs = np.random.RandomState(seed)
    x = rs.uniform(low=-10.0, high=10.0, size=[n_train, 1])
    eps = rs.normal(loc=0.0, scale=noise_std, size=[n_train, 1])
    xt = np.arange(-10.0, 10.1, 0.1).reshape(-1, 1)
    t = torch.from_numpy
    return LevyData(t(x), t(levy(x) + eps), t(xt), t(levy(xt)), seed, float(noise_std))
