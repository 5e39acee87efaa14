"""The UCI networks and Keras' ``fit`` as the authors' UCI script calls it (Chen & Ge 2024,
Sec. 4.2.1, Table 1; App. C.1), on the one training loop :func:`gmp.experiments.fit.fit`.

The script (``uci_regression/uci_regression.py`` in the authors' repository) trains each
network on the mean absolute error with mini-batches of 1,024 and watches the mean squared
error of its monitoring rows (``val_mean_squared_error``); :func:`fit_stacked` is that
``fit`` for ``S`` members at once, :func:`fit_module` the same computation for one network
(the reference the tests compare it with), and :func:`fit_replay` the *refit* of a selected
run: every member trains for a fixed number of epochs with the learning-rate cuts of the run
being replayed, and keeps its last weights. Replaying a :func:`fit_stacked` run on the same
rows and seeds reproduces its kept weights (``FitResult.selected_epochs`` and ``lr_drops``);
the rule is "retrain on all the data for the selected number of epochs" (Goodfellow, Bengio &
Courville 2016, *Deep Learning*, Sec. 7.8, Algorithm 7.2, counted in epochs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..baselines import OneHiddenLayerMLP, mlp
from ..params import check_param
from .fit import FitConfig, FitResult, Replay, fit, predict
from .fit import fit_module as _fit_module

__all__ = ["FitConfig", "FitResult", "build_members", "fit_stacked", "fit_replay",
           "fit_module", "predict"]


def build_members(param: str, in_features: int, seeds: Sequence[int], hidden: int = 100,
                  preset: str = "authors", dtype: torch.dtype = torch.float32
                  ) -> list[OneHiddenLayerMLP]:
    """Member ``s`` is ``torch.manual_seed(seeds[s]); gmp.baselines.mlp(param, in_features,
    hidden, preset=preset)`` (the caller's global RNG state is kept)."""
    param = check_param(param)
    models = []
    with torch.random.fork_rng(devices=[]):
        for seed in seeds:
            torch.manual_seed(int(seed))
            models.append(mlp(param, in_features, hidden, preset=preset).to(dtype))
    return models


def fit_stacked(models: Sequence[OneHiddenLayerMLP], x_fit: Tensor, y_fit: Tensor,
                x_val: Tensor, y_val: Tensor, lr: Sequence[float] | Tensor, cfg: FitConfig,
                seeds: Sequence[int], progress=None) -> FitResult:
    """Train ``S`` members (``x_fit (S, N, n)``, ``y_fit (S, N)``) watching ``x_val (S, V, n)``,
    ``y_val (S, V)``: :func:`gmp.experiments.fit.fit` with ``monitor=(x_val, y_val)``."""
    return fit(models, x_fit, y_fit, lr, cfg, seeds, monitor=(x_val, y_val), progress=progress)


def fit_replay(models: Sequence[OneHiddenLayerMLP], x_fit: Tensor, y_fit: Tensor,
               lr: Sequence[float] | Tensor, cfg: FitConfig, seeds: Sequence[int],
               epochs: Sequence[int] | Tensor, lr_drops: Sequence[Sequence[int]],
               progress=None) -> FitResult:
    """The refit: member ``s`` trains on ``x_fit[s], y_fit[s]`` for exactly ``epochs[s]``
    epochs, its learning rate ×``cfg.plateau_factor`` at the end of each epoch in
    ``lr_drops[s]``, and keeps its last weights (:class:`gmp.experiments.fit.Replay`)."""
    replay = Replay(tuple(int(e) for e in torch.as_tensor(epochs).flatten().tolist()),
                    tuple(tuple(int(e) for e in d) for d in lr_drops))
    return fit(models, x_fit, y_fit, lr, cfg, seeds, replay=replay, progress=progress)


def fit_module(model: OneHiddenLayerMLP, x_fit: Tensor, y_fit: Tensor, x_val: Tensor,
               y_val: Tensor, lr: float, cfg: FitConfig, seed: int) -> FitResult:
    """The reference: one network (``x_fit (N, n)``, ``y_fit (N,)``, ``x_val (V, n)``,
    ``y_val (V,)``) trained alone, in place, by :func:`gmp.experiments.fit.fit_module`."""
    return _fit_module(model, x_fit, y_fit, lr, cfg, seed, monitor=(x_val, y_val))
