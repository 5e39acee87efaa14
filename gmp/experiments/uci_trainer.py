"""Keras' ``model.fit`` for many UCI networks at once, on the stacked engine of
:mod:`gmp.experiments.batched` (Chen & Ge 2024, Sec. 4.2.1, Table 1; App. C.1).

The authors' UCI script trains each network with Keras (``uci_regression/uci_regression.py``
in their repository); :func:`fit_stacked` reproduces its ``fit`` for ``S`` independent
*members* of one parameterization stacked along a leading axis
(:class:`~gmp.experiments.batched.BatchedMLP`), and :func:`fit_module` is the same
computation for one ordinary :class:`~gmp.baselines.OneHiddenLayerMLP`, the reference that
``tests/test_uci.py`` compares it with. Per epoch, per member:

1. the fit rows in a fresh random order (the member's own ``torch.Generator``; Keras'
   ``shuffle=True``), mini-batches of ``batch_size`` (the last one smaller), each one step of
   Keras' Adam (``ε = 1e-7`` added before the bias correction) on the batch's mean loss;
2. the monitor: the mean squared error on the monitoring rows, BN in inference mode (its
   running statistics), with the weights at the end of the epoch (Keras'
   ``val_mean_squared_error``);
3. ``ReduceLROnPlateau``: the learning rate ×``plateau_factor`` after ``plateau_patience``
   epochs without an improvement of the monitor by more than ``plateau_min_delta``
   (absolute);
4. ``EarlyStopping(restore_best_weights=True)``: the weights of the best epoch are kept (those
   of the first epoch if none improves, e.g. a NaN monitor), and restored only when
   ``patience`` epochs pass without an improvement; a member that reaches ``max_epochs``
   keeps its last weights (Keras 2, which the script ran on; Keras 3 restores the best
   weights then too).

:func:`fit_replay` is the *refit* of a selected training run: it trains each member for a
fixed number of epochs, multiplying its learning rate by ``plateau_factor`` at the end of
the given epochs (the reductions ``ReduceLROnPlateau`` made in the run being replayed), and
keeps the last weights; nothing is monitored. Replaying a :func:`fit_stacked` run on the same
rows and seeds reproduces its kept weights (``FitResult.selected_epochs`` and ``lr_drops``).

Invariant: members never interact (batched products, per-member losses summed, elementwise
Adam, per-member schedules), so member ``s`` follows the trajectory of :func:`fit_module` from
the same initial network, data, shuffling seed and learning rate, up to rounding. Members that
stop early leave the working stack (:meth:`~gmp.experiments.batched.BatchedMLP.subset`,
:meth:`~gmp.experiments.batched.BatchedAdam.select`), so a stack costs what its running
members cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..baselines import OneHiddenLayerMLP, mlp
from ..params import check_param
from .batched import BatchedAdam, BatchedEarlyStopping, BatchedMLP, BatchedPlateau
from .small import KerasAdam

__all__ = ["FitConfig", "FitResult", "build_members", "fit_stacked", "fit_replay",
           "fit_module", "predict"]


@dataclass(frozen=True)
class FitConfig:
    """How every member is trained (defaults: the authors' UCI script).

    Attributes:
        max_epochs: Keras' ``epochs``.
        patience: ``EarlyStopping(patience)`` on the monitor.
        plateau_patience: ``ReduceLROnPlateau(patience)``; None: ``patience // 2``, as the script.
        plateau_factor, plateau_min_delta: ``ReduceLROnPlateau(factor, min_delta)``.
        batch_size: Keras' ``batch_size`` (None: one batch of all fit rows).
        loss: ``"mae"`` (the script's ``mean_absolute_error``) or ``"mse"``.
        adam_eps: Keras' Adam ``epsilon``.
        compact_below: drop the stopped members from the working stack once fewer than this
            share of it is running (speed only; results do not depend on it).
    """

    max_epochs: int = 5000
    patience: int = 100
    plateau_patience: int | None = None
    plateau_factor: float = 0.1
    plateau_min_delta: float = 1e-4
    batch_size: int | None = 1024
    loss: str = "mae"
    adam_eps: float = 1e-7
    compact_below: float = 0.75

    def __post_init__(self) -> None:
        if self.loss not in ("mae", "mse"):
            raise ValueError(f"loss must be 'mae' or 'mse', got {self.loss!r}")
        if self.max_epochs < 1 or self.patience < 1:
            raise ValueError(f"max_epochs and patience must be >= 1, got {self.max_epochs}, "
                             f"{self.patience}")
        if self.plateau_patience is None:
            object.__setattr__(self, "plateau_patience", max(1, self.patience // 2))
        if self.plateau_patience < 1 or not 0 < self.plateau_factor < 1:
            raise ValueError("plateau_patience must be >= 1 and plateau_factor in (0, 1), got "
                             f"{self.plateau_patience}, {self.plateau_factor}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {self.batch_size}")


@dataclass
class FitResult:
    """Trained members: ``net`` holds the weights Keras would hold after ``fit``.

    Attributes:
        net: the ``S`` members (evaluation mode).
        best_epoch: ``(S,)`` 1-based epoch of the best monitor value (0: none was finite).
        epochs_run: ``(S,)`` epochs trained.
        stopped_early: ``(S,)`` early stopping triggered (else the epoch limit ended training).
        best_monitor: ``(S,)`` float64 best monitor value (inf if none was finite).
        lr_drops: per member, the 1-based epochs at whose end ``ReduceLROnPlateau`` cut its
            learning rate (empty for :func:`fit_replay`).
    """

    net: BatchedMLP
    best_epoch: Tensor
    epochs_run: Tensor
    stopped_early: Tensor
    best_monitor: Tensor
    lr_drops: list[list[int]] | None = None

    @property
    def selected_epochs(self) -> Tensor:
        """``(S,)`` epochs that produced the weights kept: the best epoch (at least 1: Keras
        keeps the first epoch's weights when none improves) when early stopping restored
        it, else every epoch run (Keras 2 keeps the last weights at the epoch limit)."""
        return torch.where(self.stopped_early, self.best_epoch.clamp_min(1), self.epochs_run)

    def drops_before(self, s: int) -> list[int]:
        """Member ``s``'s learning-rate cuts that happened before its kept weights."""
        last = int(self.selected_epochs[s])
        return [e for e in (self.lr_drops or [[]] * (s + 1))[s] if e < last]


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


def _loss(out: Tensor, y: Tensor, kind: str) -> Tensor:
    """Per-member mean loss over axis 1: ``out, y (S, B)`` -> ``(S,)``."""
    err = out - y
    return (err.abs() if kind == "mae" else err * err).mean(dim=1)


def _check(x_fit: Tensor, y_fit: Tensor, x_val: Tensor, y_val: Tensor, S: int) -> None:
    for name, x, y in (("fit", x_fit, y_fit), ("monitor", x_val, y_val)):
        if x.dim() != 3 or x.shape[0] != S:
            raise ValueError(f"x_{name} must have shape (S={S}, N, n), got {tuple(x.shape)}")
        if y.shape != x.shape[:2]:
            raise ValueError(f"y_{name} must have shape {tuple(x.shape[:2])}, got "
                             f"{tuple(y.shape)}")
        if x.shape[1] < 1:
            raise ValueError(f"x_{name} has no rows")


@torch.no_grad()
def predict(net: BatchedMLP, x: Tensor) -> Tensor:
    """Outputs ``(S, N)`` of every member on ``x (S, N, n)`` in evaluation mode."""
    was = net.training
    net.eval()
    out = net(x).squeeze(-1)
    net.train(was)
    return out


def fit_stacked(models: Sequence[OneHiddenLayerMLP], x_fit: Tensor, y_fit: Tensor,
                x_val: Tensor, y_val: Tensor, lr: Sequence[float] | Tensor, cfg: FitConfig,
                seeds: Sequence[int], progress=None) -> FitResult:
    """Train ``S`` members as Keras' ``fit`` does (module docstring).

    Args:
        models: the initial networks (one parameterization, same sizes); not modified.
        x_fit, y_fit: ``(S, N, n)``, ``(S, N)``: every member's training rows.
        x_val, y_val: ``(S, V, n)``, ``(S, V)``: the rows the schedule and early stopping
            watch (Keras' ``validation_data``).
        lr: ``(S,)`` initial learning rates.
        cfg: :class:`FitConfig`.
        seeds: ``(S,)`` seeds of the members' shuffling generators.
        progress: optional tqdm bar, advanced once per epoch.
    """
    S = len(models)
    _check(x_fit, y_fit, x_val, y_val, S)
    if len(seeds) != S:
        raise ValueError(f"need one shuffling seed per member ({S}), got {len(seeds)}")
    lr_t = torch.as_tensor(lr, dtype=torch.float64).flatten().clone()
    if lr_t.shape != (S,) or not bool((lr_t > 0).all()):
        raise ValueError(f"lr must hold {S} positive learning rates, got {lr_t.tolist()}")
    full = BatchedMLP.from_modules(models).train()
    net = full.subset(torch.arange(S))          # the working stack; `full` keeps the results
    adam = BatchedAdam(list(net.parameters()), lr_t, eps=cfg.adam_eps, eps_mode="keras")
    plateau = BatchedPlateau.keras(lr_t.clone(), "min", cfg.plateau_factor,
                                   cfg.plateau_patience, cfg.plateau_min_delta)
    stopper = BatchedEarlyStopping(S, "min", patience=cfg.patience)
    best = net.flat_state()
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    N = x_fit.shape[1]
    B = N if cfg.batch_size is None else min(cfg.batch_size, N)
    ids = torch.arange(S)                       # working member -> original member
    xf, yf, xv, yv = x_fit, y_fit, x_val, y_val
    epochs_run = torch.zeros(S, dtype=torch.long)
    drops: list[list[int]] = [[] for _ in range(S)]
    for epoch in range(cfg.max_epochs):
        _train_epoch(net, adam, xf, yf, gens, ids, B, cfg.loss)
        epochs_run[ids] += (~stopper.stopped[ids]).long()   # stopped, not yet dropped: 0
        metric = torch.full((S,), math.nan, dtype=torch.float64)
        metric[ids] = _loss(predict(net, xv), yv, "mse").to(torch.float64)
        active = ~stopper.stopped
        before = plateau.lr.clone()
        plateau.step(metric, active)
        for i in torch.nonzero(plateau.lr != before).flatten().tolist():
            drops[i].append(epoch + 1)
        improved, stop = stopper.update(metric)
        keep = (improved | (epoch == 0))[ids]   # Keras keeps the first epoch's weights too
        if bool(keep.any()):
            best[ids[keep]] = net.flat_state()[keep]
        adam.lr.copy_(plateau.lr[ids])
        if progress is not None:
            progress.update(1)
        running = ~stopper.stopped[ids]
        if not bool(running.any()):
            break
        if bool(stop.any()) and running.double().mean().item() < cfg.compact_below:
            # the stopped members' weights to keep are in `best`; drop them
            keep_idx = torch.nonzero(running).flatten()
            net = net.subset(keep_idx)
            adam.select(keep_idx, list(net.parameters()))
            ids = ids[keep_idx]
            xf, yf, xv, yv = xf[keep_idx], yf[keep_idx], xv[keep_idx], yv[keep_idx]
    # Members that ran to the limit keep their last weights, the others their best ones.
    final = best.clone()
    final[ids] = net.flat_state()
    full.load_flat_state(torch.where(stopper.stopped.unsqueeze(1), best, final))
    full.eval()
    return FitResult(full, stopper.best_epoch + 1, epochs_run, stopper.stopped.clone(),
                     stopper.best.clone(), drops)


def _train_epoch(net: BatchedMLP, adam: BatchedAdam, xf: Tensor, yf: Tensor,
                 gens: list[torch.Generator], ids: Tensor, B: int, loss: str) -> None:
    """One epoch of the working members ``ids``: the fit rows in a fresh order per member,
    one Adam step per mini-batch."""
    N = xf.shape[1]
    order = torch.stack([torch.randperm(N, generator=gens[i]) for i in ids.tolist()])
    for start in range(0, N, B):
        idx = order[:, start:start + B]
        xb = torch.gather(xf, 1, idx.unsqueeze(-1).expand(-1, -1, xf.shape[-1]))
        adam.zero_grad()
        _loss(net(xb).squeeze(-1), torch.gather(yf, 1, idx), loss).sum().backward()
        adam.step()


def fit_replay(models: Sequence[OneHiddenLayerMLP], x_fit: Tensor, y_fit: Tensor,
               lr: Sequence[float] | Tensor, cfg: FitConfig, seeds: Sequence[int],
               epochs: Sequence[int] | Tensor, lr_drops: Sequence[Sequence[int]],
               progress=None) -> FitResult:
    """The refit: member ``s`` trains on ``x_fit[s], y_fit[s]`` for exactly ``epochs[s]``
    epochs, its learning rate multiplied by ``cfg.plateau_factor`` at the end of each epoch in
    ``lr_drops[s]`` (a replayed ``ReduceLROnPlateau``), and keeps its last weights. No rows
    are monitored. The early-stopping rule this implements is "retrain on all the data for
    the selected number of epochs" (Goodfellow, Bengio & Courville 2016, *Deep Learning*,
    Sec. 7.8, Algorithm 7.2, counted in epochs), with the selected run's learning-rate cuts
    replayed at the same epochs.

    Returns a :class:`FitResult` with ``best_epoch = epochs_run = epochs``,
    ``stopped_early`` False and ``best_monitor`` NaN."""
    S = len(models)
    if x_fit.dim() != 3 or x_fit.shape[0] != S or y_fit.shape != x_fit.shape[:2] \
            or x_fit.shape[1] < 1:
        raise ValueError(f"x_fit must have shape (S={S}, N>=1, n) and y_fit (S, N), got "
                         f"{tuple(x_fit.shape)}, {tuple(y_fit.shape)}")
    if len(seeds) != S or len(lr_drops) != S:
        raise ValueError(f"need one shuffling seed and one drop list per member ({S})")
    ep = torch.as_tensor(epochs, dtype=torch.long).flatten().clone()
    if ep.shape != (S,) or not bool((ep >= 1).all()):
        raise ValueError(f"epochs must hold {S} counts >= 1, got {ep.tolist()}")
    lr_t = torch.as_tensor(lr, dtype=torch.float64).flatten().clone()
    if lr_t.shape != (S,) or not bool((lr_t > 0).all()):
        raise ValueError(f"lr must hold {S} positive learning rates, got {lr_t.tolist()}")
    cuts = [set(int(e) for e in d) for d in lr_drops]
    full = BatchedMLP.from_modules(models).train()
    net = full.subset(torch.arange(S))
    adam = BatchedAdam(list(net.parameters()), lr_t.clone(), eps=cfg.adam_eps,
                       eps_mode="keras")
    lr_now = lr_t.clone()
    final = net.flat_state().clone()
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    N = x_fit.shape[1]
    B = N if cfg.batch_size is None else min(cfg.batch_size, N)
    ids = torch.arange(S)
    xf, yf = x_fit, y_fit
    for epoch in range(int(ep.max())):
        _train_epoch(net, adam, xf, yf, gens, ids, B, cfg.loss)
        for i in ids.tolist():
            if epoch + 1 in cuts[i]:       # the plateau's arithmetic (BatchedPlateau.step)
                lr_now[i] = torch.clamp_min(lr_now[i] * cfg.plateau_factor, 0.0)
        done = ep[ids] == epoch + 1
        if progress is not None:
            progress.update(1)
        if bool(done.any()):
            final[ids[done]] = net.flat_state()[done]
            keep_idx = torch.nonzero(~done).flatten()
            if len(keep_idx) == 0:
                break
            net = net.subset(keep_idx)
            adam.select(keep_idx, list(net.parameters()))
            ids = ids[keep_idx]
            xf, yf = xf[keep_idx], yf[keep_idx]
        adam.lr.copy_(lr_now[ids])
    full.load_flat_state(final)
    full.eval()
    return FitResult(full, ep.clone(), ep.clone(), torch.zeros(S, dtype=torch.bool),
                     torch.full((S,), math.nan, dtype=torch.float64), [[] for _ in range(S)])


def fit_module(model: OneHiddenLayerMLP, x_fit: Tensor, y_fit: Tensor, x_val: Tensor,
               y_val: Tensor, lr: float, cfg: FitConfig, seed: int) -> FitResult:
    """The reference: one network trained alone, with :class:`~gmp.experiments.small.KerasAdam`,
    torch's ``ReduceLROnPlateau`` in Keras' configuration and a plain early-stopping loop.

    ``x_fit (N, n)``, ``y_fit (N,)``, ``x_val (V, n)``, ``y_val (V,)``. ``model`` is trained in
    place; the result holds it as a stack of one.
    """
    opt = KerasAdam(model.parameters(), lr=lr, eps=cfg.adam_eps)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience - 1,
        threshold=cfg.plateau_min_delta, threshold_mode="abs", eps=0.0)
    gen = torch.Generator().manual_seed(int(seed))
    N = x_fit.shape[0]
    B = N if cfg.batch_size is None else min(cfg.batch_size, N)
    best_v, best_e, wait, stopped, epochs = math.inf, 0, 0, False, 0
    best_state, drops = None, []
    for epoch in range(cfg.max_epochs):
        model.train()
        order = torch.randperm(N, generator=gen)
        for start in range(0, N, B):
            sel = order[start:start + B]
            opt.zero_grad(set_to_none=True)
            out = model(x_fit[sel]).squeeze(-1)
            _loss(out.unsqueeze(0), y_fit[sel].unsqueeze(0), cfg.loss).sum().backward()
            opt.step()
        epochs += 1
        model.eval()
        with torch.no_grad():
            err = model(x_val).squeeze(-1) - y_val
            val = float((err * err).mean())
        before = opt.param_groups[0]["lr"]
        sched.step(val)
        if opt.param_groups[0]["lr"] != before:
            drops.append(epoch + 1)
        if val < best_v:
            best_v, best_e, wait = val, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            wait += 1
            if best_state is None:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if wait >= cfg.patience:
            stopped = True
            break
    if stopped:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(BatchedMLP.from_modules([model]).eval(), torch.tensor([best_e]),
                     torch.tensor([epochs]), torch.tensor([stopped]),
                     torch.tensor([best_v], dtype=torch.float64), [drops])
