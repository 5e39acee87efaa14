"""The paper's illustrative experiments: 1-D Levy regression (Fig. 2), 2-D Banana (Fig. 3).

Chen & Ge 2024, Sec. 4.1. A one-hidden-layer ReLU network under SP, WN, BN or GmP
(:func:`gmp.baselines.mlp`, built with a *preset* of :mod:`gmp.params`, default ``"authors"``)
is trained with Adam while the characteristic activation boundaries (CABs) of its hidden units
are recorded after every optimizer step.

Training follows the authors' notebooks (Keras) setting by setting:

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
- Keras semantics throughout: Adam's ``ε = 1e-7`` added before the bias correction
  (:class:`KerasAdam`); an epoch's training loss is the mean of the losses computed during it
  (before each step); the weights remembered for an improving epoch are those at the *end* of
  that epoch; they are restored only if early stopping triggers (a run that reaches the epoch
  limit keeps its last weights).

Two **protocols**, named after their source:

- ``"official"``: the notebooks as published. For Banana this passes the **test** split as
  Keras' ``validation_data``, so the learning-rate schedule and early stopping select on test
  accuracy (a leak; every output of this protocol says so).
- ``"honest"``: the same training with every selection on data carved from the training part:
  for Banana 20 % of the training part becomes a validation split (not trained on), and the
  test split is touched once, for the final score. The Levy notebook selects on the training
  loss only, so for Levy both protocols are the same computation.

Learning rates default to the paper's cross-validated choice (0.1 for GmP, 0.01 otherwise).

A run has an initialization seed (``torch.manual_seed``, and the mini-batch order) and a data
seed (the notebooks' ``np.random.seed``); by default they are equal, and fixing the data seed
varies only the initialization (``data_seed=0`` is the authors' own data set).

Two engines compute the same thing: ``"module"`` trains each run as an ordinary PyTorch
module (:class:`KerasAdam`, torch's :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau` in
Keras' configuration, and a :class:`gmp.cab.CABTracker` attached to the optimizer: the
reference), and ``"batched"`` (default) trains all seeds and learning rates of one
parameterization at once with :mod:`gmp.experiments.batched`, finished members frozen by a
mask. The test suite checks that both give the same trajectories.

Every run yields a :class:`SmallRunResult`.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ..baselines import OneHiddenLayerMLP, mlp
from ..cab import CABTracker, effective_weight_bias
from ..data.banana import BananaSplits, banana_splits_authors
from ..data.levy import LevyData, levy_data_authors
from ..files import jsonable, write_json
from ..params import PAPER_LR, PARAMS, check_param, get_preset
from .batched import BatchedAdam, BatchedEarlyStopping, BatchedMLP, BatchedPlateau

__all__ = [
    "DEFAULT_LR",
    "TASKS",
    "PROTOCOLS",
    "LevyConfig",
    "BananaConfig",
    "KerasAdam",
    "SmallRunResult",
    "default_lr",
    "make_data",
    "run_levy",
    "run_banana",
    "run",
    "summarize",
    "save_results",
    "load_results",
    "recognise_results",
    "rerun_agreement",
]

#: Learning rates chosen by cross-validation in the paper (Sec. 4.1).
DEFAULT_LR: dict[str, float] = dict(PAPER_LR)
TASKS: tuple[str, ...] = ("levy", "banana")
PROTOCOLS: tuple[str, ...] = ("official", "honest")
ENGINES: tuple[str, ...] = ("batched", "module")


def default_lr(param: str) -> float:
    """The paper's learning rate for ``param`` (0.1 for GmP, 0.01 for SP, WN, BN)."""
    return DEFAULT_LR[check_param(param)]


@dataclass(frozen=True)
class LevyConfig:
    """Settings of the Levy experiment (Fig. 2); the defaults are the authors' notebook's."""

    hidden: int = 100
    epochs: int = 10_000
    plateau_patience: int = 500
    stop_patience: int = 1000
    factor: float = 0.1
    n_train: int = 50
    noise_std: float = 0.1
    adam_eps: float = 1e-7
    min_delta: float = 1e-4

    def __post_init__(self) -> None:
        _check_common(self)


@dataclass(frozen=True)
class BananaConfig:
    """Settings of the Banana experiment (Fig. 3); the defaults are the authors' notebook's.

    ``val_fraction`` is the share of the training part carved out for validation under the
    honest protocol."""

    hidden: int = 10
    epochs: int = 5000
    batch_size: int = 128
    plateau_patience: int = 50
    stop_patience: int = 100
    factor: float = 0.1
    n_subsample: int = 1000
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    adam_eps: float = 1e-7
    min_delta: float = 1e-4

    def __post_init__(self) -> None:
        _check_common(self)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


def _check_common(cfg: LevyConfig | BananaConfig) -> None:
    name = type(cfg).__name__
    for key in ("hidden", "epochs", "plateau_patience", "stop_patience"):
        if int(getattr(cfg, key)) < 1:
            raise ValueError(f"{name}.{key} must be >= 1, got {getattr(cfg, key)}")
    if not 0 < cfg.factor < 1:
        raise ValueError(f"{name}.factor must be in (0, 1), got {cfg.factor}")
    if not cfg.adam_eps > 0 or cfg.min_delta < 0:
        raise ValueError(f"{name}: need adam_eps > 0 and min_delta >= 0, got {cfg.adam_eps} "
                         f"and {cfg.min_delta}")


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is one of :data:`PROTOCOLS`, else a ValueError naming them."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return protocol


class KerasAdam(torch.optim.Optimizer):
    """Adam as Keras computes it: ``ε`` added to ``√v`` before the bias correction.

    ``m ← β₁m + (1-β₁)g``, ``v ← β₂v + (1-β₂)g²``,
    ``p ← p - lr·√(1-β₂ᵗ)/(1-β₁ᵗ) · m/(√v + ε)`` (``tf.keras.optimizers.Adam``; torch's
    :class:`~torch.optim.Adam` adds ``ε`` after the correction, which differs in the first
    steps). Keras' default ``ε`` is 1e-7. Works with torch's LR schedulers.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-7):
        if not lr > 0 or not eps > 0:
            raise ValueError(f"KerasAdam: need lr > 0 and eps > 0, got {lr} and {eps}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None if closure is None else closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["t"] = 0
                    st["m"] = torch.zeros_like(p)
                    st["v"] = torch.zeros_like(p)
                st["t"] += 1
                t = st["t"]
                st["m"].lerp_(p.grad, 1 - b1)
                st["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                alpha = group["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                p.sub_(alpha * (st["m"] / (st["v"].sqrt() + group["eps"])))
        return loss


@dataclass
class SmallRunResult:
    """One training run (one parameterization, preset, protocol, seed pair and learning rate).

    Attributes:
        task: ``"levy"`` or ``"banana"``.
        param: the parameterization (:data:`gmp.params.PARAMS`).
        preset, protocol: the network preset (:mod:`gmp.params`) and the protocol.
        seed: initialization seed (``torch.manual_seed``; also the mini-batch order).
        data_seed: seed of the data sample (the notebooks' ``np.random.seed``).
        lr: initial learning rate.
        epochs_run: epochs trained (≤ the configured maximum; fewer when stopped early).
        best_epoch: 0-based epoch with the best monitored value (-1 if none improved on the
            start, e.g. a loss that is NaN from the first step).
        kept_step: number of optimizer steps behind the final weights (the end of
            ``best_epoch`` if early stopping triggered and restored them, the end of epoch 0
            if it triggered without any improvement, else every step).
        stopped_early: whether early stopping ended the run (and restored the best weights).
        history: per-epoch arrays ``(epochs_run,)``: ``"train_loss"``, ``"lr"`` (the rate used
            in that epoch) and for Banana ``"monitor_acc"`` (accuracy on the monitored split:
            the test split under ``official``, the validation split under ``honest``).
        metrics: final scores (Levy: ``test_rmse``, ``train_mae``, ``train_rmse``; Banana:
            ``test_acc``, ``monitor_acc``, ``train_acc``); for GmP also ``r_negative``, the
            number of hidden units that end with ``r < 0``; for every run
            ``units_through_data``, the number of hidden units whose CAB passes through the
            training inputs (the unit is active on some and inactive on others), and
            ``max_step_change``, the largest entry of :attr:`max_change` (the run's largest
            per-step CAB change).
        steps: ``(T,)`` optimizer-step numbers of the recorded CAB states (0 = initial).
        locations: ``(T, m, n)`` spatial locations ``φ`` of the hidden CABs at ``steps``.
        max_location_change: ``(steps_run,)`` max over units of ``‖Δφ‖`` at each step.
        max_angular_change: ``(steps_run,)`` max over units of the change of the CAB
            direction at each step, in degrees.
        config: the settings, preset, protocol and engine.
        model: the trained network with the final weights (not serialized).
    """

    task: str
    param: str
    preset: str
    protocol: str
    seed: int
    data_seed: int
    lr: float
    epochs_run: int
    best_epoch: int
    kept_step: int
    stopped_early: bool
    history: dict[str, np.ndarray]
    metrics: dict[str, float]
    steps: np.ndarray
    locations: np.ndarray
    max_location_change: np.ndarray
    max_angular_change: np.ndarray
    config: dict[str, Any]
    model: OneHiddenLayerMLP | None = field(default=None, repr=False, compare=False)

    @property
    def characteristic_points(self) -> np.ndarray:
        """``(T, m)`` characteristic points ``x*`` (Levy: 1-D input)."""
        if self.locations.shape[-1] != 1:
            raise ValueError("characteristic points exist for 1-D input only; this run has "
                             f"n = {self.locations.shape[-1]}: use .locations")
        return self.locations[..., 0]

    @property
    def max_change(self) -> np.ndarray:
        """The per-step change the paper plots, shape ``(steps_run,)``.

        Levy (Fig. 2c) gives ``|Δx*|``; Banana (Fig. 3i) gives degrees of direction change.
        """
        return self.max_location_change if self.task == "levy" else self.max_angular_change

    @property
    def score(self) -> float:
        """The headline test metric, RMSE for Levy and accuracy for Banana."""
        return self.metrics["test_rmse" if self.task == "levy" else "test_acc"]

    def to_dict(self, tracks: bool = True) -> dict[str, Any]:
        """JSON-ready dict (NaN/inf become ``None``); ``tracks=False`` keeps one record per run
        (its settings and metrics) and drops the CAB arrays and the per-epoch history."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "model"}
        if not tracks:
            for k in ("steps", "locations", "max_location_change", "max_angular_change",
                      "history"):
                d.pop(k)
        return jsonable(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SmallRunResult:
        """Inverse of :meth:`to_dict` (missing track arrays and history come back empty)."""
        if "param" not in d and "method" in d:   # files written before the rename to "param"
            d = {**d, "param": d["method"]}
        kw = {k: d[k] for k in ("task", "param", "preset", "protocol", "seed", "data_seed",
                                "lr", "epochs_run", "best_epoch", "kept_step", "stopped_early",
                                "config")}
        kw["metrics"] = {k: (math.nan if v is None else float(v)) for k, v in d["metrics"].items()}
        kw["history"] = {k: _nan_array(v) for k, v in d.get("history", {}).items()}
        kw["steps"] = np.asarray(d.get("steps", []), dtype=np.int64)
        kw["locations"] = _nan_array(d.get("locations", []))
        kw["max_location_change"] = _nan_array(d.get("max_location_change", []))
        kw["max_angular_change"] = _nan_array(d.get("max_angular_change", []))
        return cls(**kw)


def _nanmax(x: np.ndarray) -> float:
    finite = np.asarray(x, dtype=np.float64)
    finite = finite[~np.isnan(finite)]
    return float(finite.max()) if finite.size else math.nan


def _nan_array(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=object)
    return np.where(a == None, np.nan, a).astype(np.float64)  # noqa: E711 (elementwise)


def make_data(task: str, seed: int, protocol: str = "official",
              config: LevyConfig | BananaConfig | None = None) -> LevyData | BananaSplits:
    """The data of one run: the authors' sample for ``seed`` (see the module docstring)."""
    check_protocol(protocol)
    if task == "levy":
        cfg = config or LevyConfig()
        return levy_data_authors(seed, cfg.n_train, cfg.noise_std)
    if task == "banana":
        cfg = config or BananaConfig()
        return banana_splits_authors(seed, validation=protocol == "honest",
                                     val_fraction=cfg.val_fraction,
                                     n_subsample=cfg.n_subsample,
                                     test_fraction=cfg.test_fraction)
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


# ---------------------------------------------------------------------------------------
# problems: data stacked per member
# ---------------------------------------------------------------------------------------
@dataclass
class _Problem:
    """Data of every member, stacked: ``x_*: (S, N, n)``, ``y_*: (S, N, 1)``.

    ``x_mon``/``y_mon`` is what the schedule and early stopping look at for Banana (the test
    split under the official protocol, the validation split under the honest one); None for
    Levy (which monitors its training loss)."""

    task: str
    x_train: Tensor
    y_train: Tensor
    x_mon: Tensor | None
    y_mon: Tensor | None
    x_test: Tensor
    y_test: Tensor

    def member(self, s: int) -> _Problem:
        def pick(t):
            return None if t is None else t[s: s + 1]
        return _Problem(self.task, *(pick(getattr(self, k)) for k in
                                     ("x_train", "y_train", "x_mon", "y_mon", "x_test", "y_test")))


def _stack_problem(task: str, protocol: str, datas: Sequence[LevyData | BananaSplits],
                   dtype: torch.dtype) -> _Problem:
    def st(name: str) -> Tensor:
        t = torch.stack([getattr(d, name) for d in datas]).to(dtype)
        return t if t.dim() == 3 else t.unsqueeze(-1)

    if task == "levy":
        return _Problem(task, st("x_train"), st("y_train"), None, None, st("x_test"), st("y_test"))
    mon = "test" if protocol == "official" else "val"
    if any(len(getattr(d, f"x_{mon}")) == 0 for d in datas):
        raise ValueError(f"the {protocol} protocol monitors the {mon} split, which is empty")
    return _Problem(task, st("x_train"), st("y_train"), st(f"x_{mon}"), st(f"y_{mon}"),
                    st("x_test"), st("y_test"))


def _loss(task: str, out: Tensor, y: Tensor) -> Tensor:
    """Per-member mean loss, ``(S,)``: MAE (Levy) or BCE-with-logits (Banana)."""
    if task == "levy":
        return (out - y).abs().mean(dim=(1, 2))
    return F.binary_cross_entropy_with_logits(out, y, reduction="none").mean(dim=(1, 2))


def _accuracy(out: Tensor, y: Tensor) -> Tensor:
    return ((out > 0).to(y.dtype) == y).to(torch.float64).mean(dim=(1, 2))


@torch.no_grad()
def _final_metrics(task: str, predict: Callable[[Tensor], Tensor], p: _Problem) -> list[dict]:
    """Scores of every member with its final weights; ``predict(x (S,N,n)) -> (S,N,1)``.

    The only place where test targets are read."""
    if task == "levy":
        def rmse(x, y):
            return torch.sqrt(((predict(x) - y) ** 2).to(torch.float64).mean(dim=(1, 2)))
        test, train_rmse = rmse(p.x_test, p.y_test), rmse(p.x_train, p.y_train)
        train_mae = (predict(p.x_train) - p.y_train).abs().to(torch.float64).mean(dim=(1, 2))
        return [{"test_rmse": float(a), "train_mae": float(b), "train_rmse": float(c)}
                for a, b, c in zip(test, train_mae, train_rmse, strict=True)]
    accs = [_accuracy(predict(x), y) for x, y in
            ((p.x_test, p.y_test), (p.x_mon, p.y_mon), (p.x_train, p.y_train))]
    return [{"test_acc": float(a), "monitor_acc": float(b), "train_acc": float(c)}
            for a, b, c in zip(*accs, strict=True)]


def _init_model(param: str, seed: int, n_in: int, cfg: LevyConfig | BananaConfig,
                preset: str, dtype: torch.dtype) -> OneHiddenLayerMLP:
    """The module version of a run: ``torch.manual_seed(seed)``, then
    :func:`gmp.baselines.mlp` with ``preset``. The caller's global RNG state is kept."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return mlp(param, n_in, cfg.hidden, 1, preset=preset).to(dtype)


def _schedules(task: str, cfg, lr: Tensor, size: int):
    """Keras' ReduceLROnPlateau and EarlyStopping of the notebooks, per member."""
    mode = "min" if task == "levy" else "max"
    return (BatchedPlateau.keras(lr, mode, cfg.factor, cfg.plateau_patience, cfg.min_delta),
            BatchedEarlyStopping(size, mode=mode, patience=cfg.stop_patience))


@torch.no_grad()
def _units_through(w: Tensor, b: Tensor, x: Tensor) -> Tensor:
    """Per member, how many hidden units have their CAB through the training inputs: the
    pre-activation ``wᵀx + b`` takes both signs on ``x``. ``w (S, m, n)``, ``b (S, m)``,
    ``x (S, N, n)`` -> ``(S,)``. (GmP: ``w = r·u``, ``b = r·λ``, same sign pattern up to
    ``sign(r)``; BN: its running statistics, as at evaluation.)"""
    z = torch.baddbmm(b.unsqueeze(1).to(torch.float64), x.to(torch.float64),
                      w.to(torch.float64).transpose(1, 2))
    return ((z.amax(dim=1) > 0) & (z.amin(dim=1) < 0)).sum(dim=1)


def _kept_step(task: str, best_epoch: int, stopped: bool, batch_size: int, n: int,
               steps_run: int) -> int:
    if not stopped:
        return steps_run
    # Keras keeps the weights at the end of the best epoch, or of epoch 0 if none improved
    return (max(best_epoch, 0) + 1) * (1 if task == "levy" else math.ceil(n / batch_size))


def _config_dict(cfg, preset: str, protocol: str, engine: str, track_every: int,
                 dtype: torch.dtype) -> dict[str, Any]:
    return asdict(cfg) | {"preset": preset, "protocol": protocol, "engine": engine,
                          "track_every": track_every, "dtype": str(dtype).removeprefix("torch.")}


# ---------------------------------------------------------------------------------------
# the batched engine
# ---------------------------------------------------------------------------------------
def _gather(x: Tensor, idx: Tensor) -> Tensor:
    """Rows ``idx (S, B)`` of ``x (S, N, k)`` per member -> ``(S, B, k)``."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class _Rows:
    """Per-step records of a run, appended row by row into one float64 tensor ``(T, *shape)``
    allocated up front (doubled if ever full).

    Not one small tensor per step: kept alive between each step's large temporaries, such
    small blocks split the heap's free space, so that the next step's temporaries no longer
    fit and the heap grew by about one temporary per step (gigabytes over a Levy grid of 80
    members and 10,000 epochs).
    """

    def __init__(self, capacity: int, shape: Sequence[int]) -> None:
        self._buf = torch.empty((max(capacity, 1), *shape), dtype=torch.float64)
        self._n = 0

    def append(self, row: Tensor) -> None:
        if self._n == len(self._buf):
            self._buf = torch.cat([self._buf, torch.empty_like(self._buf)])
        self._buf[self._n] = row
        self._n += 1

    def tensor(self) -> Tensor:
        """The rows appended so far, ``(n, *shape)``."""
        return self._buf[: self._n]


def _train_batched(task: str, param: str, members: Sequence[tuple[int, int, float]], cfg,
                   preset: str, protocol: str, problem: _Problem, dtype: torch.dtype,
                   track_every: int, progress: bool) -> list[SmallRunResult]:
    S = len(members)
    n_in = problem.x_train.shape[-1]
    models = [_init_model(param, seed, n_in, cfg, preset, dtype) for seed, _, _ in members]
    net = BatchedMLP.from_modules(models).train()
    rates = torch.tensor([lr for _, _, lr in members], dtype=torch.float64)
    adam = BatchedAdam(list(net.parameters()), rates, eps=cfg.adam_eps, eps_mode="keras")
    levy = task == "levy"
    plateau, stopper = _schedules(task, cfg, adam.lr, S)
    best = net.flat_state()          # the weights to keep, (S, P)
    gens = [torch.Generator().manual_seed(seed) for seed, _, _ in members]
    x_ref = problem.x_train if param == "bn" else None

    n = problem.x_train.shape[1]
    bs = n if levy else cfg.batch_size
    max_steps = cfg.epochs * math.ceil(n / bs)
    cab_prev = net.cab_state(x_ref)
    rec_steps = [0]
    rec_loc = _Rows(max_steps // track_every + 1, cab_prev[0].shape)
    rec_loc.append(cab_prev[0])
    loc_change, ang_change = _Rows(max_steps, (S,)), _Rows(max_steps, (S,))
    hist = {k: _Rows(cfg.epochs, (S,))
            for k in ("train_loss", "lr") + (() if levy else ("monitor_acc",))}
    epochs_run = torch.zeros(S, dtype=torch.long)
    steps_run = torch.zeros(S, dtype=torch.long)
    step = 0

    def tracked_step(active: Tensor) -> None:
        nonlocal step, cab_prev
        adam.step(active)
        step += 1
        steps_run.add_(active.long())
        cab = net.cab_state(x_ref)
        dl, da = BatchedMLP.cab_change(cab_prev, cab)
        loc_change.append(dl)
        ang_change.append(da)
        cab_prev = cab
        if step % track_every == 0:
            rec_steps.append(step)
            rec_loc.append(cab[0])

    bar = tqdm(range(cfg.epochs), desc=f"{task} {param} ×{S}", disable=not progress,
               leave=False, dynamic_ncols=True)
    for epoch in bar:
        active = ~stopper.stopped
        if not bool(active.any()):
            break
        hist["lr"].append(adam.lr)
        epochs_run.add_(active.long())
        perm = (None if levy else
                torch.stack([torch.randperm(n, generator=g) for g in gens]))
        total = torch.zeros(S, dtype=torch.float64)
        for i in range(0, n, bs):
            idx = None if levy else perm[:, i: i + bs]
            xb = problem.x_train if levy else _gather(problem.x_train, idx)
            yb = problem.y_train if levy else _gather(problem.y_train, idx)
            adam.zero_grad()
            loss = _loss(task, net(xb, update=active), yb)
            loss.sum().backward()
            total += loss.detach().to(torch.float64) * xb.shape[1]
            tracked_step(active)
        train_loss = total / n
        if levy:
            metric = train_loss
        else:
            net.eval()
            with torch.no_grad():
                metric = _accuracy(net(problem.x_mon), problem.y_mon)
            net.train()
            hist["monitor_acc"].append(metric)
        plateau.step(metric, active)
        improved, _ = stopper.update(metric)
        # Keras remembers the weights at the end of an improving epoch, and those at the end
        # of epoch 0 in any case (a run that never improves, e.g. NaN, falls back to them)
        keep = improved | (epoch == 0)
        best = torch.where(keep.unsqueeze(1), net.flat_state(), best)
        hist["train_loss"].append(train_loss)
        if progress:
            bar.set_postfix(active=int((~stopper.stopped).sum()), refresh=False)
    bar.close()

    # Keras restores the best weights only where early stopping triggered
    net.load_flat_state(best, members=stopper.stopped)
    net.eval()
    metrics = _final_metrics(task, net, problem)
    through = _units_through(*net.effective_hidden(), problem.x_train)
    for s in range(S):
        metrics[s]["units_through_data"] = float(through[s])
    if param == "gmp":
        neg = (net.hidden.r < 0).sum(dim=1)
        for s in range(S):
            metrics[s]["r_negative"] = float(neg[s])

    locs = rec_loc.tensor().transpose(0, 1).numpy()                  # (S, T, m, n)
    steps_arr = np.asarray(rec_steps, dtype=np.int64)
    dl = loc_change.tensor().T.numpy()                              # (S, steps)
    da = ang_change.tensor().T.numpy()
    hists = {k: v.tensor().T.numpy() for k, v in hist.items()}      # (S, epochs)
    conf = _config_dict(cfg, preset, protocol, "batched", track_every, dtype)
    results = []
    for s, (seed, data_seed, lr) in enumerate(members):
        k, e = int(steps_run[s]), int(epochs_run[s])
        stopped = bool(stopper.stopped[s])
        keep = steps_arr <= k
        results.append(SmallRunResult(
            task=task, param=param, preset=preset, protocol=protocol, seed=seed,
            data_seed=data_seed, lr=float(lr), epochs_run=e,
            best_epoch=int(stopper.best_epoch[s]),
            kept_step=_kept_step(task, int(stopper.best_epoch[s]), stopped, bs, n, k),
            stopped_early=stopped,
            history={name: h[s, :e] for name, h in hists.items()}, metrics=metrics[s],
            steps=steps_arr[keep], locations=locs[s][keep], max_location_change=dl[s, :k],
            max_angular_change=da[s, :k], config=conf, model=net.load_into(models[s], s)))
    return results


# ---------------------------------------------------------------------------------------
# the module engine (reference)
# ---------------------------------------------------------------------------------------
def _train_module(task: str, param: str, seed: int, data_seed: int, lr: float, cfg,
                  preset: str, protocol: str, problem: _Problem, dtype: torch.dtype,
                  track_every: int, progress: bool) -> SmallRunResult:
    """One run as a plain module: :class:`KerasAdam`, torch's ReduceLROnPlateau in Keras'
    configuration, :class:`gmp.cab.CABTracker`."""
    p = problem  # a single member: tensors (1, N, k)
    x_train, y_train = p.x_train[0], p.y_train[0]
    model = _init_model(param, seed, x_train.shape[-1], cfg, preset, dtype).train()
    opt = KerasAdam(model.parameters(), lr=lr, eps=cfg.adam_eps)
    levy = task == "levy"
    # Keras: reduce after `patience` epochs without an absolute improvement by min_delta
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min" if levy else "max", factor=cfg.factor,
        patience=cfg.plateau_patience - 1, threshold=cfg.min_delta, threshold_mode="abs",
        eps=0.0)
    stopper = BatchedEarlyStopping(1, mode="min" if levy else "max", patience=cfg.stop_patience)
    tracker = CABTracker(model.hidden, every=1,
                         inputs=x_train if param == "bn" else None).attach(opt)
    gen = torch.Generator().manual_seed(seed)
    best_state = None
    hist: dict[str, list[float]] = {"train_loss": [], "lr": []} | (
        {} if levy else {"monitor_acc": []})
    n = x_train.shape[0]
    bs = n if levy else cfg.batch_size
    epochs = 0
    for _ in tqdm(range(cfg.epochs), desc=f"{task} {param} seed {seed}", disable=not progress,
                  leave=False, dynamic_ncols=True):
        if bool(stopper.stopped[0]):
            break
        epochs += 1
        hist["lr"].append(opt.param_groups[0]["lr"])
        perm = torch.arange(n) if levy else torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, bs):
            idx = perm[i: i + bs]
            opt.zero_grad()
            loss = _loss(task, model(x_train[idx])[None], y_train[idx][None])[0]
            loss.backward()
            total += loss.item() * len(idx)
            opt.step()
        if levy:
            metric = total / n
        else:
            model.eval()
            with torch.no_grad():
                metric = _accuracy(model(p.x_mon[0])[None], p.y_mon).item()
            model.train()
            hist["monitor_acc"].append(metric)
        sched.step(metric)
        improved, _ = stopper.update(torch.tensor([metric], dtype=torch.float64))
        if bool(improved[0]) or best_state is None:  # as the batched engine: epoch 0 too
            best_state = copy.deepcopy(model.state_dict())
        hist["train_loss"].append(total / n)
    tracker.detach()
    stopped = bool(stopper.stopped[0])
    if stopped and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    metrics = _final_metrics(task, lambda x: model(x[0])[None], p)[0]
    w, b = effective_weight_bias(model.hidden)
    metrics["units_through_data"] = float(_units_through(w[None], b[None], p.x_train)[0])
    if param == "gmp":
        metrics["r_negative"] = float((model.hidden.r < 0).sum())
    keep = tracker.steps % track_every == 0
    return SmallRunResult(
        task=task, param=param, preset=preset, protocol=protocol, seed=seed,
        data_seed=data_seed, lr=float(lr), epochs_run=epochs,
        best_epoch=int(stopper.best_epoch[0]),
        kept_step=_kept_step(task, int(stopper.best_epoch[0]), stopped, bs, n,
                             len(tracker.steps) - 1),
        stopped_early=stopped,
        history={k: np.asarray(v, dtype=np.float64) for k, v in hist.items()}, metrics=metrics,
        steps=tracker.steps[keep], locations=tracker.locations[keep],
        max_location_change=tracker.max_location_change(),
        max_angular_change=tracker.max_angular_change(degrees=True),
        config=_config_dict(cfg, preset, protocol, "module", track_every, dtype), model=model)


# ---------------------------------------------------------------------------------------
# public runners
# ---------------------------------------------------------------------------------------
def _params(params: str | Iterable[str]) -> list[str]:
    if isinstance(params, str):
        return list(PARAMS) if params == "all" else [check_param(params)]
    out = [check_param(m) for m in params]
    if not out:
        raise ValueError("no parameterization given")
    return out


def _lrs(param: str, lr: float | Sequence[float] | dict[str, float] | None) -> list[float]:
    if lr is None:
        vals = [default_lr(param)]
    elif isinstance(lr, dict):
        vals = [float(lr.get(param, default_lr(param)))]
    elif isinstance(lr, (int, float)):
        vals = [float(lr)]
    else:
        vals = [float(v) for v in lr]
    if not vals or any(not (v > 0 and math.isfinite(v)) for v in vals):
        raise ValueError(f"learning rates must be positive and finite, got {lr!r}")
    return vals


def run(task: str, params: str | Iterable[str] = "all", seeds: Iterable[int] = (0,),
        lr: float | Sequence[float] | dict[str, float] | None = None,
        config: LevyConfig | BananaConfig | None = None, *, preset: str = "authors",
        protocol: str = "official", data_seed: int | None = None, engine: str = "batched",
        track_every: int = 1, dtype: torch.dtype = torch.float64, progress: bool = True,
        data: dict[int, LevyData | BananaSplits] | None = None, threads: int | None = 1
        ) -> list[SmallRunResult]:
    """Train every (param, seed, learning rate) combination of one task.

    Args:
        task: ``"levy"`` or ``"banana"``.
        params: ``"all"``, one parameterization or a list (see :data:`gmp.params.PARAMS`).
        seeds: initialization seeds (``torch.manual_seed(s)`` and the mini-batch order).
        lr: ``None`` (the paper's choice per parameterization, :data:`DEFAULT_LR`), one rate, a dict
            per parameterization, or a list of rates (every rate is run for every seed).
        config: settings; default the authors' (:class:`LevyConfig` / :class:`BananaConfig`).
        preset: network preset (:data:`gmp.params.PRESETS`; default ``"authors"``).
        protocol: ``"official"`` or ``"honest"`` (see the module docstring).
        data_seed: None (default: each run's data seed is its seed) or one data seed for
            every run (``0`` is the authors' own sample), so that only the initialization
            varies.
        engine: ``"batched"`` (all seeds and rates of a param in one stacked model) or
            ``"module"`` (one plain module at a time; the reference).
        track_every: store the CAB locations every ``track_every`` steps (the per-step
            maximum changes are always computed at every step).
        dtype: ``torch.float64`` (default, as in the authors' notebooks) or ``torch.float32``.
        progress: show a tqdm progress bar.
        data: optional ``{data_seed: data}`` overriding the data of given data seeds (e.g.
            synthetic data in tests).
        threads: torch intra-op threads while training (restored afterwards); default 1,
            because these tiny operations only lose from threading. ``None`` keeps the
            current setting.

    Returns:
        One :class:`SmallRunResult` per run, ordered by param, then seed, then rate.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    check_protocol(protocol)
    preset = get_preset(preset).name
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    if isinstance(track_every, bool) or not isinstance(track_every, int) or track_every < 1:
        raise ValueError(f"track_every must be a positive integer, got {track_every!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    cfg = config if config is not None else (LevyConfig() if task == "levy" else BananaConfig())
    expected = LevyConfig if task == "levy" else BananaConfig
    if not isinstance(cfg, expected):
        raise TypeError(f"task {task!r} needs a {expected.__name__}, got {type(cfg).__name__}")
    param_list = _params(params)
    for m in param_list:
        _lrs(m, lr)  # validate before any data is loaded
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds given")
    pairs = [(s, s if data_seed is None else int(data_seed)) for s in seeds]
    data = dict(data or {})
    for _, d in pairs:
        if d not in data:
            data[d] = make_data(task, d, protocol, cfg)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        results: list[SmallRunResult] = []
        for param in param_list:
            members = [(s, d, lr_) for s, d in pairs for lr_ in _lrs(param, lr)]
            problem = _stack_problem(task, protocol, [data[d] for _, d, _ in members], dtype)
            if engine == "batched":
                results += _train_batched(task, param, members, cfg, preset, protocol,
                                          problem, dtype, track_every, progress)
            else:
                results += [_train_module(task, param, s, d, lr_, cfg, preset, protocol,
                                          problem.member(i), dtype, track_every, progress)
                            for i, (s, d, lr_) in enumerate(members)]
        for r in results:  # the largest per-step CAB change of the run (Fig. 2c / 3i)
            r.metrics["max_step_change"] = _nanmax(r.max_change)
        return results
    finally:
        torch.set_num_threads(before)


def run_levy(params: str | Iterable[str] = "all", seeds: Iterable[int] = (0,), lr=None,
             config: LevyConfig | None = None, **kwargs) -> list[SmallRunResult]:
    """:func:`run` for the Levy regression of Fig. 2 (see there for the arguments)."""
    return run("levy", params, seeds, lr, config, **kwargs)


def run_banana(params: str | Iterable[str] = "all", seeds: Iterable[int] = (0,), lr=None,
               config: BananaConfig | None = None, **kwargs) -> list[SmallRunResult]:
    """:func:`run` for the Banana classification of Fig. 3 (see there for the arguments)."""
    return run("banana", params, seeds, lr, config, **kwargs)


def summarize(results: Sequence[SmallRunResult], metric: str | None = None
              ) -> list[dict[str, Any]]:
    """Mean, sample standard deviation, median and range of a metric per group over seeds.

    Groups are (param, preset, protocol, lr) in the order first seen.

    Args:
        results: runs of one task.
        metric: a key of ``metrics`` (default the headline: ``test_rmse`` / ``test_acc``).

    Returns:
        Rows ``{"param", "preset", "protocol", "lr", "n", "mean", "std", "median", "min",
        "max", "values"}`` (``std`` is NaN for a single run).
    """
    rows: dict[tuple, list[float]] = {}
    for r in results:
        key = metric or ("test_rmse" if r.task == "levy" else "test_acc")
        rows.setdefault((r.param, r.preset, r.protocol, r.lr), []).append(r.metrics[key])
    out = []
    for (param, preset, protocol, lr), vals in rows.items():
        v = np.asarray(vals, dtype=np.float64)
        out.append({"param": param, "preset": preset, "protocol": protocol, "lr": lr,
                    "n": len(v), "mean": float(v.mean()),
                    "std": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
                    "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
                    "values": vals})
    return out


def rerun_agreement(rerun: Sequence[SmallRunResult], recorded: Sequence[SmallRunResult]
                    ) -> dict[str, Any]:
    """Compare runs made now with recorded runs of the same settings, as distributions.

    Per group (param, preset, protocol, lr) of ``rerun``: the rerun's median score, the
    recorded runs' median and range, and whether the rerun's median lies within the
    recorded range (``"within"``). ``"holds"``: every group's median within its recorded
    range, which a rerun on any CPU should give; ``"identical"``: every rerun equal to the
    recorded run of the same seed (up to 1e-9), which only the recording machine gives —
    float training over thousands of epochs with early stopping is chaotic across CPUs.

    Returns ``{"groups": [{"param", "lr", "rerun_median", "recorded_median", "min",
    "max", "within", "n"}], "holds", "identical", "same_runs", "n_runs"}``.
    """
    def key(r: SmallRunResult) -> tuple:
        return (r.param, r.preset, r.protocol, r.lr)

    by_key: dict[tuple, list[SmallRunResult]] = {}
    for r in recorded:
        by_key.setdefault(key(r), []).append(r)
    groups, same, n = [], 0, 0
    mine: dict[tuple, list[SmallRunResult]] = {}
    for r in rerun:
        mine.setdefault(key(r), []).append(r)
    for k, runs in mine.items():
        old = by_key.get(k)
        if not old:
            raise ValueError(f"no recorded runs of {k} to compare with")
        ref = np.array([o.score for o in old])
        med = float(np.median([r.score for r in runs]))
        groups.append({"param": k[0], "lr": k[3], "n": len(runs), "rerun_median": med,
                       "recorded_median": float(np.median(ref)), "min": float(ref.min()),
                       "max": float(ref.max()),
                       "within": bool(ref.min() <= med <= ref.max())})
        seeds = {(o.seed, o.data_seed): o.score for o in old}
        for r in runs:
            n += 1
            o = seeds.get((r.seed, r.data_seed))
            same += o is not None and math.isclose(o, r.score, rel_tol=1e-9, abs_tol=0)
    return {"groups": groups, "holds": all(g["within"] for g in groups),
            "identical": same == n, "same_runs": same, "n_runs": n}


def save_results(path: str, results: Sequence[SmallRunResult], provenance: dict[str, Any],
                 tracks: bool = True) -> None:
    """Write ``{"provenance": ..., "runs": [...]}`` as strict JSON (NaN → null)."""
    write_json(path, {"provenance": provenance, "runs": [r.to_dict(tracks) for r in results]},
               indent=None)


def load_results(path: str) -> tuple[dict[str, Any], list[SmallRunResult]]:
    """Read a file written by :func:`save_results`: ``(provenance, runs)``."""
    with open(path) as f:
        doc = json.load(f)
    return doc["provenance"], [SmallRunResult.from_dict(d) for d in doc["runs"]]


def recognise_results(path: str | Path) -> str | None:
    """``None`` if ``path`` holds a file written by :func:`save_results` (a JSON object with
    ``provenance`` and a list of ``runs``), else a sentence saying why not."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        return f"{path} is not readable as JSON ({e})"
    if not (isinstance(doc, dict) and isinstance(doc.get("runs"), list)
            and isinstance(doc.get("provenance"), dict)):
        return f"{path} is not a results file of these experiments (no 'provenance' and 'runs')"
    return None
