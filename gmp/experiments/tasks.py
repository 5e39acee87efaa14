"""The two illustrative tasks of the paper as objects: Levy regression and Banana
classification (Chen & Ge 2024, Sec. 4.1, Figs. 2–3).

A :class:`Task` holds everything the runner, the command line and the figures need to know
about one experiment: its settings (:class:`LevyConfig`, :class:`BananaConfig`; the defaults
are the authors' notebooks'), its data and how the members' data are stacked, how it is
trained (:meth:`Task.fit_config`: loss, monitor, batches), its scores and its headline metric,
and the words and quantities its plots use. :data:`TASKS` maps names to them; a new small
experiment is one more :class:`Task`.

- **Levy**: 100 hidden units, linear output, full-batch Adam on the MAE, up to 10,000 epochs;
  learning rate ×0.1 after 500 epochs without an improvement of the training loss by more
  than 1e-4 (absolute); early stopping after 1,000 epochs without improvement of the training
  loss. The data: 50 points ``x ~ U(-10, 10)`` with noise ``N(0, 0.1²)``, drawn in the
  notebook's order (:func:`gmp.data.levy.levy_data_authors`); test RMSE on the noise-free grid.
- **Banana**: 10 hidden units, one logit output (sigmoid + binary cross-entropy, computed as
  BCE-with-logits), Adam with shuffled mini-batches of 128, up to 5,000 epochs; learning rate
  ×0.1 after 50 epochs without an improvement of the monitored accuracy by more than 1e-4;
  early stopping after 100 epochs without improvement. The sample and split of
  :func:`gmp.data.banana.banana_splits_authors`.

Two **protocols**, named after their source (:data:`PROTOCOLS`):

- ``"official"``: the notebooks as published. For Banana this passes the **test** split as
  Keras' ``validation_data``, so the learning-rate schedule and early stopping select on test
  accuracy (a leak; every output of this protocol says so).
- ``"honest"``: the same training with every selection on data carved from the training part:
  for Banana 20 % of the training part becomes a validation split (not trained on), and the
  test split is touched once, for the final score. The Levy notebook selects on the training
  loss only, so for Levy both protocols are the same computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..data.banana import BananaSplits, banana_splits_authors
from ..data.levy import LevyData, levy_data_authors
from .fit import FitConfig, accuracy

__all__ = ["PROTOCOLS", "LevyConfig", "BananaConfig", "Problem", "Task", "LEVY", "BANANA",
           "TASKS", "get_task"]

#: The protocols of the small experiments, named after their source (module docstring).
PROTOCOLS: tuple[str, ...] = ("official", "honest")


@dataclass(frozen=True)
class LevyConfig:
    """Settings of the Levy experiment (Fig. 2); the defaults are the authors' notebook's.
    The training settings have the names of :class:`~gmp.experiments.fit.FitConfig`."""

    hidden: int = 100
    max_epochs: int = 10_000
    plateau_patience: int = 500
    patience: int = 1000
    plateau_factor: float = 0.1
    n_train: int = 50
    noise_std: float = 0.1
    adam_eps: float = 1e-7
    plateau_min_delta: float = 1e-4

    def __post_init__(self) -> None:
        _check_common(self)


@dataclass(frozen=True)
class BananaConfig:
    """Settings of the Banana experiment (Fig. 3); the defaults are the authors' notebook's.

    ``val_fraction`` is the share of the training part carved out for validation under the
    honest protocol."""

    hidden: int = 10
    max_epochs: int = 5000
    batch_size: int = 128
    plateau_patience: int = 50
    patience: int = 100
    plateau_factor: float = 0.1
    n_subsample: int = 1000
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    adam_eps: float = 1e-7
    plateau_min_delta: float = 1e-4

    def __post_init__(self) -> None:
        _check_common(self)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


def _check_common(cfg: LevyConfig | BananaConfig) -> None:
    name = type(cfg).__name__
    for key in ("hidden", "max_epochs", "plateau_patience", "patience"):
        if int(getattr(cfg, key)) < 1:
            raise ValueError(f"{name}.{key} must be >= 1, got {getattr(cfg, key)}")
    if not 0 < cfg.plateau_factor < 1:
        raise ValueError(f"{name}.plateau_factor must be in (0, 1), got {cfg.plateau_factor}")
    if not cfg.adam_eps > 0 or cfg.plateau_min_delta < 0:
        raise ValueError(f"{name}: need adam_eps > 0 and plateau_min_delta >= 0, got "
                         f"{cfg.adam_eps} and {cfg.plateau_min_delta}")


@dataclass
class Problem:
    """Data of every member, stacked: ``x_*: (S, N, n)``, ``y_*: (S, N, 1)``.

    ``x_mon``/``y_mon``: the rows the schedule and early stopping score (Keras'
    ``validation_data``), or None where the task monitors its training loss."""

    x_train: Tensor
    y_train: Tensor
    x_mon: Tensor | None
    y_mon: Tensor | None
    x_test: Tensor
    y_test: Tensor

    def member(self, s: int) -> Problem:
        """Member ``s`` alone (tensors ``(1, N, k)``)."""
        def pick(t):
            return None if t is None else t[s: s + 1]
        return Problem(*(pick(getattr(self, k)) for k in
                         ("x_train", "y_train", "x_mon", "y_mon", "x_test", "y_test")))


def _stack(datas: Sequence[Any], name: str, dtype: torch.dtype) -> Tensor:
    t = torch.stack([getattr(d, name) for d in datas]).to(dtype)
    return t if t.dim() == 3 else t.unsqueeze(-1)


class Task:
    """One small experiment: what differs between Levy and Banana, in one place.

    Attributes:
        name: ``"levy"`` or ``"banana"``.
        figure: the paper's figure.
        config_class: the settings' dataclass.
        headline: the key of the headline test metric in a run's ``metrics``.
        headline_label: its name in tables.
        higher_is_better: whether a larger headline is better.
        error_label: the test error's name (the headline, or 1 − accuracy).
        change: the per-step CAB change the paper plots, ``"location"`` (``|Δx*|``) or
            ``"angle"`` (degrees).
        change_label: the axis label of a run's largest change.
        location_label: the axis label of the per-step largest change of CAB locations.
        metrics: the score keys of :meth:`final_metrics`.
        monitor_name: the name of the monitor's per-epoch record in a run's ``history``.
    """

    name: ClassVar[str]
    figure: ClassVar[str]
    config_class: ClassVar[type]
    headline: ClassVar[str]
    headline_label: ClassVar[str]
    higher_is_better: ClassVar[bool]
    error_label: ClassVar[str]
    change: ClassVar[str]
    change_label: ClassVar[str]
    location_label: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    monitor_name: ClassVar[str] = "monitor"

    def __repr__(self) -> str:
        return f"Task({self.name!r})"

    def config(self, cfg: LevyConfig | BananaConfig | None = None) -> LevyConfig | BananaConfig:
        """``cfg``, checked to be this task's settings, or the authors' defaults."""
        if cfg is None:
            return self.config_class()
        if not isinstance(cfg, self.config_class):
            raise TypeError(f"task {self.name!r} needs a {self.config_class.__name__}, got "
                            f"{type(cfg).__name__}")
        return cfg

    def make_data(self, seed: int, protocol: str, cfg: LevyConfig | BananaConfig) -> Any:
        """The data of one run: the authors' sample for ``seed``."""
        raise NotImplementedError

    def problem(self, datas: Sequence[Any], protocol: str, dtype: torch.dtype) -> Problem:
        """Every member's data (``datas``, one per member) stacked."""
        raise NotImplementedError

    def fit_config(self, cfg: LevyConfig | BananaConfig) -> FitConfig:
        """How the notebook trains (never compacted: the CABs are tracked at every step)."""
        raise NotImplementedError

    def final_metrics(self, predict: Callable[[Tensor], Tensor], p: Problem) -> list[dict]:
        """Scores of every member with its final weights; ``predict(x (S,N,n)) -> (S,N,1)``
        (called without gradients).

        The only place where test targets are read."""
        raise NotImplementedError

    def history_name(self, record: str) -> str:
        """The name in a run's ``history`` of the fit loop's per-epoch ``record``."""
        return self.monitor_name if record == "monitor" else record

    def error(self, metrics: dict[str, float]) -> float:
        """The test error: lower is better."""
        v = metrics[self.headline]
        return 1.0 - v if self.higher_is_better else v

    def selection_leaks(self, protocol: str) -> bool:
        """Whether ``protocol`` selects (schedule, early stopping) on the test split."""
        return False

    def steps_per_epoch(self, cfg: LevyConfig | BananaConfig, n: int) -> int:
        """Optimizer steps in one epoch over ``n`` training rows."""
        b = self.fit_config(cfg).batch_size
        return 1 if b is None else math.ceil(n / b)


class _Levy(Task):
    name = "levy"
    figure = "Fig. 2"
    config_class = LevyConfig
    headline = "test_rmse"
    headline_label = "test RMSE"
    higher_is_better = False
    error_label = "test RMSE"
    change = "location"
    change_label = "largest $|\\Delta x^*|$"
    location_label = "$\\max_i |\\Delta x^*_i|$"
    metrics = ("test_rmse", "train_mae", "train_rmse")

    def make_data(self, seed: int, protocol: str, cfg: LevyConfig) -> LevyData:
        return levy_data_authors(seed, cfg.n_train, cfg.noise_std)

    def problem(self, datas: Sequence[LevyData], protocol: str, dtype: torch.dtype
                ) -> Problem:
        return Problem(_stack(datas, "x_train", dtype), _stack(datas, "y_train", dtype),
                       None, None, _stack(datas, "x_test", dtype),
                       _stack(datas, "y_test", dtype))

    def fit_config(self, cfg: LevyConfig) -> FitConfig:
        # full batch in the data's order; the monitor is the training loss
        return FitConfig(max_epochs=cfg.max_epochs, patience=cfg.patience,
                         plateau_patience=cfg.plateau_patience,
                         plateau_factor=cfg.plateau_factor,
                         plateau_min_delta=cfg.plateau_min_delta, batch_size=None,
                         shuffle=False, loss="mae", monitor="train-loss",
                         adam_eps=cfg.adam_eps, compact_below=0.0)

    @torch.no_grad()
    def final_metrics(self, predict: Callable[[Tensor], Tensor], p: Problem) -> list[dict]:
        def rmse(x, y):
            return torch.sqrt(((predict(x) - y) ** 2).to(torch.float64).mean(dim=(1, 2)))
        test, train_rmse = rmse(p.x_test, p.y_test), rmse(p.x_train, p.y_train)
        train_mae = (predict(p.x_train) - p.y_train).abs().to(torch.float64).mean(dim=(1, 2))
        return [{"test_rmse": float(a), "train_mae": float(b), "train_rmse": float(c)}
                for a, b, c in zip(test, train_mae, train_rmse, strict=True)]


class _Banana(Task):
    name = "banana"
    figure = "Fig. 3"
    config_class = BananaConfig
    headline = "test_acc"
    headline_label = "test accuracy"
    higher_is_better = True
    error_label = "test error (1 - accuracy)"
    change = "angle"
    change_label = "largest direction change (°)"
    location_label = "$\\max_i \\|\\Delta\\phi_i\\|$"
    metrics = ("test_acc", "monitor_acc", "train_acc")
    monitor_name = "monitor_acc"

    def make_data(self, seed: int, protocol: str, cfg: BananaConfig) -> BananaSplits:
        return banana_splits_authors(seed, validation=protocol == "honest",
                                     val_fraction=cfg.val_fraction,
                                     n_subsample=cfg.n_subsample,
                                     test_fraction=cfg.test_fraction)

    def problem(self, datas: Sequence[BananaSplits], protocol: str, dtype: torch.dtype
                ) -> Problem:
        mon = "test" if protocol == "official" else "val"
        if any(len(getattr(d, f"x_{mon}")) == 0 for d in datas):
            raise ValueError(f"the {protocol} protocol monitors the {mon} split, which is empty")
        return Problem(*(_stack(datas, k, dtype) for k in
                         ("x_train", "y_train", f"x_{mon}", f"y_{mon}", "x_test", "y_test")))

    def fit_config(self, cfg: BananaConfig) -> FitConfig:
        # shuffled mini-batches; the monitor is the accuracy on the monitored split
        return FitConfig(max_epochs=cfg.max_epochs, patience=cfg.patience,
                         plateau_patience=cfg.plateau_patience,
                         plateau_factor=cfg.plateau_factor,
                         plateau_min_delta=cfg.plateau_min_delta,
                         batch_size=cfg.batch_size, shuffle=True, loss="bce-logits",
                         monitor="accuracy", adam_eps=cfg.adam_eps, compact_below=0.0)

    @torch.no_grad()
    def final_metrics(self, predict: Callable[[Tensor], Tensor], p: Problem) -> list[dict]:
        accs = [accuracy(predict(x), y) for x, y in
                ((p.x_test, p.y_test), (p.x_mon, p.y_mon), (p.x_train, p.y_train))]
        return [{"test_acc": float(a), "monitor_acc": float(b), "train_acc": float(c)}
                for a, b, c in zip(*accs, strict=True)]

    def selection_leaks(self, protocol: str) -> bool:
        return protocol == "official"


LEVY, BANANA = _Levy(), _Banana()
#: The small experiments by name.
TASKS: dict[str, Task] = {t.name: t for t in (LEVY, BANANA)}


def get_task(task: str | Task) -> Task:
    """The :class:`Task` named ``task`` (a Task is returned as it is)."""
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {tuple(TASKS)}")
    return TASKS[task]


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is one of :data:`PROTOCOLS`, else a ValueError naming them."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return protocol
