"""Keras' ``model.fit`` for a stack of networks: the one training loop of the experiments.

The authors train every network of the small experiments (their notebooks) and of UCI
(``uci_regression/uci_regression.py``) with Keras' ``fit``; :func:`fit` is that loop for
``S`` independent *members* of one parameterization stacked along a leading axis
(:class:`~gmp.experiments.batched.BatchedMLP`), and :func:`fit_module` the same computation
for one ordinary module, the reference the tests compare it with. Per epoch, per member:

1. the fit rows in a fresh random order (the member's own ``torch.Generator``; Keras'
   ``shuffle=True``; Levy's notebook trains on the whole set in its order), mini-batches of
   ``batch_size`` (the last one smaller), each one step of Keras' Adam (``ε`` added before
   the bias correction) on the batch's mean loss;
2. the monitor (:data:`MONITORS`): the epoch's training loss (the mean of the losses computed
   during it, before each step), or a score of the monitoring rows with BN in inference mode
   and the weights at the end of the epoch (Keras' ``validation_data``);
3. ``ReduceLROnPlateau``: the learning rate ×``plateau_factor`` after ``plateau_patience``
   epochs without an improvement of the monitor by more than ``plateau_min_delta``
   (absolute);
4. ``EarlyStopping(restore_best_weights=True)``: the weights at the end of the best epoch are
   remembered (those of the first epoch in any case, so a run that never improves, e.g. a NaN
   monitor, falls back to them) and restored only when ``patience`` epochs pass without an
   improvement; a member that reaches ``max_epochs`` keeps its last weights (Keras 2, which
   the authors ran; Keras 3 restores the best weights then too).

A *replay* (:class:`Replay`) trains each member for a fixed number of epochs with its
learning rate cut at given epochs and keeps the last weights, monitoring nothing: the refit of
the honest UCI protocol.

Invariant: members never interact (batched products, per-member losses summed, elementwise
Adam, per-member schedules), so member ``s`` follows the trajectory of :func:`fit_module`
from the same initial network, data, shuffling seed and learning rate, up to rounding.
Finished members are frozen by a mask; with ``compact_below`` they also leave the working
stack (:meth:`~gmp.experiments.batched.BatchedMLP.subset`), so a long tail of a few running
members costs what they cost. Neither changes any result.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .batched import BatchedAdam, BatchedEarlyStopping, BatchedMLP, BatchedPlateau

__all__ = ["ENGINES", "FitConfig", "FitResult", "Replay", "KerasAdam", "LOSSES", "MONITORS",
           "fit", "fit_module", "predict", "accuracy", "Rows"]

_F64 = torch.float64

#: The two engines that train the networks of a run, ``"batched"`` (every member at once,
#: :func:`fit`) and ``"module"`` (one plain module at a time, :func:`fit_module`; the
#: reference).
ENGINES: tuple[str, ...] = ("batched", "module")


def _over_rows(t: Tensor) -> Tensor:
    """Per-member mean over every axis but the first: ``(S, N, ...)`` -> ``(S,)``."""
    return t.mean(dim=tuple(range(1, t.dim())))


def _mae(out: Tensor, y: Tensor) -> Tensor:
    return _over_rows((out.reshape(y.shape) - y).abs())


def _mse(out: Tensor, y: Tensor) -> Tensor:
    err = out.reshape(y.shape) - y
    return _over_rows(err * err)


def _bce_logits(out: Tensor, y: Tensor) -> Tensor:
    return _over_rows(F.binary_cross_entropy_with_logits(out.reshape(y.shape), y,
                                                         reduction="none"))


def accuracy(out: Tensor, y: Tensor) -> Tensor:
    """Per-member share of logits on the side of 0 that ``y`` (0 or 1) names: ``out``,
    ``y (S, N, ...)`` -> ``(S,)`` float64."""
    return _over_rows(((out.reshape(y.shape) > 0).to(y.dtype) == y).to(_F64))


#: The training losses by name, each ``loss(out (S, B, ...), y (S, B, ...)) -> (S,)``, the
#: mean over each member's rows (``out`` is reshaped to ``y``'s shape).
LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mae": _mae, "mse": _mse, "bce-logits": _bce_logits}

#: The monitors by name, each ``(score of the monitoring rows or None, mode)``.
#: ``"train-loss"`` is the epoch's training loss (no monitoring rows), ``"mse"`` Keras'
#: ``val_mean_squared_error``, ``"accuracy"`` the share of logits on the right side of 0.
MONITORS: dict[str, tuple[Callable[[Tensor, Tensor], Tensor] | None, str]] = {
    "train-loss": (None, "min"), "mse": (_mse, "min"), "accuracy": (accuracy, "max")}


@dataclass(frozen=True)
class FitConfig:
    """How every member is trained: Keras' ``fit`` and its callbacks (defaults: the authors'
    UCI script).

    Attributes:
        max_epochs: Keras' ``epochs``.
        patience: ``EarlyStopping(patience)`` on the monitor.
        plateau_patience: ``ReduceLROnPlateau(patience)``; None: ``patience // 2``, as the
            UCI script.
        plateau_factor, plateau_min_delta: ``ReduceLROnPlateau(factor, min_delta)``.
        batch_size: Keras' ``batch_size`` (None: one batch of all fit rows).
        shuffle: a fresh order of the fit rows every epoch (Keras' ``shuffle``).
        loss: a key of :data:`LOSSES`.
        monitor: a key of :data:`MONITORS`.
        adam_eps: Keras' Adam ``epsilon``.
        compact_below: drop the stopped members from the working stack once fewer than this
            share of it is running (speed only; results do not depend on it; 0: never).
    """

    max_epochs: int = 5000
    patience: int = 100
    plateau_patience: int | None = None
    plateau_factor: float = 0.1
    plateau_min_delta: float = 1e-4
    batch_size: int | None = 1024
    shuffle: bool = True
    loss: str = "mae"
    monitor: str = "mse"
    adam_eps: float = 1e-7
    compact_below: float = 0.75

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {tuple(LOSSES)}")
        if self.monitor not in MONITORS:
            raise ValueError(f"unknown monitor {self.monitor!r}; expected one of "
                             f"{tuple(MONITORS)}")
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
        if not self.adam_eps > 0 or self.plateau_min_delta < 0:
            raise ValueError("need adam_eps > 0 and plateau_min_delta >= 0, got "
                             f"{self.adam_eps} and {self.plateau_min_delta}")

    @property
    def mode(self) -> str:
        """``"min"`` or ``"max"``: the direction in which the monitor improves."""
        return MONITORS[self.monitor][1]


@dataclass(frozen=True)
class Replay:
    """Train member ``s`` for exactly ``epochs[s]`` epochs, its learning rate multiplied by
    the plateau factor at the end of each epoch in ``lr_drops[s]`` (a replayed
    ``ReduceLROnPlateau``), and keep its last weights; nothing is monitored."""

    epochs: tuple[int, ...]
    lr_drops: tuple[tuple[int, ...], ...]


@dataclass
class FitResult:
    """Trained members: ``net`` holds the weights Keras would hold after ``fit``.

    Attributes:
        net: the ``S`` members (evaluation mode).
        best_epoch: ``(S,)`` 1-based epoch of the best monitor value (0: none was finite;
            a replay: its epochs).
        epochs_run: ``(S,)`` epochs trained.
        steps_run: ``(S,)`` optimizer steps taken.
        stopped_early: ``(S,)`` early stopping triggered (else the epoch limit ended training).
        best_monitor: ``(S,)`` float64 best monitor value (±inf if none was finite; NaN for a
            replay).
        lr_drops: per member, the 1-based epochs at whose end the learning rate was cut.
        history: per-epoch records ``(epochs, S)``: ``"train_loss"``, ``"lr"`` (the rate
            used in the epoch) and, when rows are monitored, ``"monitor"``. A finished
            member that is only masked keeps being recorded; one dropped from the working
            stack has NaN losses and scores from then on (and its last rate).
    """

    net: BatchedMLP
    best_epoch: Tensor
    epochs_run: Tensor
    stopped_early: Tensor
    best_monitor: Tensor
    lr_drops: list[list[int]]
    steps_run: Tensor | None = None
    history: dict[str, Tensor] | None = None

    @property
    def selected_epochs(self) -> Tensor:
        """``(S,)`` epochs that produced the weights kept: the best epoch (at least 1: Keras
        keeps the first epoch's weights when none improves) when early stopping restored
        it, else every epoch run (Keras 2 keeps the last weights at the epoch limit)."""
        return torch.where(self.stopped_early, self.best_epoch.clamp_min(1), self.epochs_run)

    def drops_before(self, s: int) -> list[int]:
        """Member ``s``'s learning-rate cuts that happened before its kept weights."""
        last = int(self.selected_epochs[s])
        return [e for e in self.lr_drops[s] if e < last]


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


@torch.no_grad()
def predict(net: BatchedMLP, x: Tensor) -> Tensor:
    """Outputs ``(S, N)`` of every member on ``x (S, N, n)`` in evaluation mode (one
    output per row)."""
    was = net.training
    net.eval()
    out = net(x).squeeze(-1)
    net.train(was)
    return out


class Rows:
    """Per-step or per-epoch records, appended row by row into one float64 tensor
    ``(T, *shape)`` allocated up front (doubled if ever full).

    Not one small tensor per step: kept alive between each step's large temporaries, such
    small blocks split the heap's free space, so that the next step's temporaries no longer
    fit and the heap grew by about one temporary per step (gigabytes over a Levy grid of 80
    members and 10,000 epochs).
    """

    def __init__(self, capacity: int, shape: Sequence[int]) -> None:
        self._buf = torch.empty((max(capacity, 1), *shape), dtype=_F64)
        self._n = 0

    def append(self, row: Tensor) -> None:
        if self._n == len(self._buf):
            self._buf = torch.cat([self._buf, torch.empty_like(self._buf)])
        self._buf[self._n] = row
        self._n += 1

    def tensor(self) -> Tensor:
        """The rows appended so far, ``(n, *shape)``."""
        return self._buf[: self._n]


class _FixedEpochs:
    """The stopping rule of a replay: member ``s`` stops after ``epochs[s]`` epochs, and
    every epoch counts as an improvement (so the weights kept are the last ones)."""

    def __init__(self, epochs: Tensor) -> None:
        S = len(epochs)
        self.epochs = epochs
        self.stopped = torch.zeros(S, dtype=torch.bool)
        self.best_epoch = torch.full((S,), -1, dtype=torch.long)
        self.best = torch.full((S,), math.nan, dtype=_F64)
        self._epoch = 0

    def update(self, metric: Tensor) -> tuple[Tensor, Tensor]:
        act = ~self.stopped
        self._epoch += 1
        stop = act & (self.epochs == self._epoch)
        self.best_epoch = torch.where(act, self._epoch - 1, self.best_epoch)
        self.stopped |= stop
        return act, stop


class _ReplayCuts:
    """The learning-rate schedule of a replay: ×``factor`` at the end of the given epochs
    (the arithmetic of :meth:`BatchedPlateau.step`)."""

    def __init__(self, lr: Tensor, drops: Sequence[Sequence[int]], factor: float) -> None:
        self.lr, self.factor = lr, factor
        self._cuts = [set(int(e) for e in d) for d in drops]
        self._epoch = 0

    def step(self, metric: Tensor, active: Tensor) -> None:
        self._epoch += 1
        cut = torch.tensor([self._epoch in c for c in self._cuts]) & active
        new_lr = torch.clamp_min(self.lr * self.factor, 0.0)
        self.lr.copy_(torch.where(cut, new_lr, self.lr))


def _check_rows(S: int, **tensors: Tensor | None) -> None:
    for name, x in tensors.items():
        if x is None:
            continue
        if x.dim() < 2 or x.shape[0] != S or x.shape[1] < 1:
            raise ValueError(f"{name} must have shape (S={S}, N>=1, ...), got {tuple(x.shape)}")


def _rows(t: Tensor, idx: Tensor) -> Tensor:
    """Rows ``idx (S, B)`` of ``t (S, N, ...)`` per member -> ``(S, B, ...)``."""
    if t.dim() == 2:
        return torch.gather(t, 1, idx)
    return torch.gather(t, 1, idx.unsqueeze(-1).expand(-1, -1, t.shape[-1]))


def _keep_counts(full: BatchedMLP, net: BatchedMLP, ids: Tensor, which: Tensor) -> None:
    """Copy the integer buffers (BN's ``num_batches_tracked``) of working members ``which``
    (``(working,)`` bool) into ``full``: :meth:`BatchedMLP.flat_state` holds floats only."""
    with torch.no_grad():
        for name, buf in net.named_buffers():
            if not buf.is_floating_point():
                full.get_buffer(name)[ids[which]] = buf[which]


def fit(models: Sequence[nn.Module], x: Tensor, y: Tensor,
        lr: Sequence[float] | Tensor, cfg: FitConfig, seeds: Sequence[int], *,
        monitor: tuple[Tensor, Tensor] | None = None, replay: Replay | None = None,
        on_step: Callable[[BatchedMLP, Tensor], None] | None = None,
        progress=None) -> FitResult:
    """Train ``S`` members as Keras' ``fit`` does (module docstring).

    Args:
        models: the initial networks, :class:`~gmp.baselines.OneHiddenLayerMLP` of one
            parameterization and sizes (not modified).
        x, y: ``(S, N, n)`` and ``(S, N)`` or ``(S, N, o)``: every member's training rows.
        lr: ``(S,)`` initial learning rates.
        cfg: :class:`FitConfig`.
        seeds: ``(S,)`` seeds of the members' shuffling generators.
        monitor: ``(x_mon (S, V, n), y_mon)``, the rows a monitor other than
            ``"train-loss"`` scores (Keras' ``validation_data``).
        replay: train a :class:`Replay` instead (no monitor, no early stopping).
        on_step: called after every optimizer step with the working stack and the ``(S,)``
            mask of running members (e.g. to record the CABs; needs ``compact_below=0``).
        progress: optional tqdm bar, advanced once per epoch.
    """
    full = BatchedMLP.from_modules(models).train()   # gets the results
    S = full.size
    score, mode = MONITORS[cfg.monitor]
    if replay is not None:
        if monitor is not None:
            raise ValueError("a replay monitors nothing: pass no monitoring rows")
        score = None
    elif score is None and monitor is not None:
        raise ValueError(f"the monitor {cfg.monitor!r} scores no monitoring rows")
    elif score is not None and monitor is None:
        raise ValueError(f"the monitor {cfg.monitor!r} needs monitoring rows (x_mon, y_mon)")
    xv, yv = monitor if score is not None else (None, None)
    _check_rows(S, x=x, x_mon=xv)
    for name, a, b in (("y", x, y), ("y_mon", xv, yv)):
        if a is not None and tuple(b.shape[:2]) != tuple(a.shape[:2]):
            raise ValueError(f"{name} must have {tuple(a.shape[:2])} leading dims, got "
                             f"{tuple(b.shape)}")
    if len(seeds) != S:
        raise ValueError(f"need one shuffling seed per member ({S}), got {len(seeds)}")
    lr_t = torch.as_tensor(lr, dtype=_F64).flatten().clone()
    if lr_t.shape != (S,) or not bool((lr_t > 0).all()):
        raise ValueError(f"lr must hold {S} positive learning rates, got {lr_t.tolist()}")
    if on_step is not None and (cfg.compact_below > 0 or replay is not None):
        raise ValueError("on_step sees every member at every step: use compact_below=0")

    loss_fn = LOSSES[cfg.loss]
    max_epochs = cfg.max_epochs
    if replay is None:
        schedule = BatchedPlateau.keras(lr_t.clone(), mode, cfg.plateau_factor,
                                        cfg.plateau_patience, cfg.plateau_min_delta)
        stopper = BatchedEarlyStopping(S, mode, patience=cfg.patience)
    else:
        ep = torch.as_tensor(replay.epochs, dtype=torch.long).flatten().clone()
        if ep.shape != (S,) or not bool((ep >= 1).all()) or len(replay.lr_drops) != S:
            raise ValueError(f"a replay needs {S} epoch counts >= 1 and {S} drop lists, got "
                             f"{ep.tolist()} and {len(replay.lr_drops)} lists")
        schedule = _ReplayCuts(lr_t.clone(), replay.lr_drops, cfg.plateau_factor)
        stopper = _FixedEpochs(ep)
        max_epochs = int(ep.max())
    # a replay drops every member the epoch it finishes (the stacks keep the shapes they had
    # in the selection runs' replays); a Keras fit when few members are left running
    compact_below = math.inf if replay is not None else cfg.compact_below

    net = full.subset(torch.arange(S))          # the working stack
    adam = BatchedAdam(list(net.parameters()), lr_t, eps=cfg.adam_eps, eps_mode="keras")
    best = net.flat_state()                     # the weights to keep, (S, P)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    N = x.shape[1]
    B = N if cfg.batch_size is None else min(cfg.batch_size, N)
    ids = torch.arange(S)                       # working member -> original member
    xf, yf = x, y
    epochs_run = torch.zeros(S, dtype=torch.long)
    steps_run = torch.zeros(S, dtype=torch.long)
    drops: list[list[int]] = [[] for _ in range(S)]
    hist = {k: Rows(max_epochs, (S,))
            for k in ("train_loss", "lr") + (("monitor",) if score is not None else ())}
    for epoch in range(max_epochs):
        running = ~stopper.stopped[ids]          # (working,) members still training
        hist["lr"].append(schedule.lr)
        epochs_run[ids] += running.long()
        total = torch.zeros(len(ids), dtype=_F64)
        order = (torch.stack([torch.randperm(N, generator=gens[i]) for i in ids.tolist()])
                 if cfg.shuffle else None)
        for start in range(0, N, B):
            if order is not None:
                idx = order[:, start:start + B]
                xb, yb = _rows(xf, idx), _rows(yf, idx)
            elif B == N:
                xb, yb = xf, yf
            else:
                xb, yb = xf[:, start:start + B], yf[:, start:start + B]
            adam.zero_grad()
            loss = loss_fn(net(xb, update=running), yb)
            loss.sum().backward()
            total += loss.detach().to(_F64) * xb.shape[1]
            adam.step(running)
            steps_run[ids] += running.long()
            if on_step is not None:
                on_step(net, running)
        train_loss = torch.full((S,), math.nan, dtype=_F64)
        train_loss[ids] = total / N
        if score is None:
            metric = train_loss
        else:
            metric = torch.full((S,), math.nan, dtype=_F64)
            net.eval()
            with torch.no_grad():
                metric[ids] = score(net(xv), yv).to(_F64)
            net.train()
            hist["monitor"].append(metric)
        active = ~stopper.stopped
        before = schedule.lr.clone()
        schedule.step(metric, active)
        for i in torch.nonzero(schedule.lr != before).flatten().tolist():
            drops[i].append(epoch + 1)
        improved, stop = stopper.update(metric)
        # Keras remembers the weights at the end of an improving epoch, and those at the end
        # of epoch 0 in any case (a run that never improves, e.g. NaN, falls back to them)
        keep = (improved | (epoch == 0))[ids]
        if bool(keep.any()):
            best[ids[keep]] = net.flat_state()[keep]
        hist["train_loss"].append(train_loss)
        adam.lr.copy_(schedule.lr[ids])
        if progress is not None:
            progress.update(1)
            if hasattr(progress, "set_postfix"):
                progress.set_postfix(active=int((~stopper.stopped).sum()), refresh=False)
        running = ~stopper.stopped[ids]
        if not bool(running.any()):
            break
        if bool(stop.any()) and running.double().mean().item() < compact_below:
            # the stopped members' weights to keep are in `best`; drop them
            _keep_counts(full, net, ids, ~running)
            keep_idx = torch.nonzero(running).flatten()
            net = net.subset(keep_idx)
            adam.select(keep_idx, list(net.parameters()))
            ids = ids[keep_idx]
            xf, yf = xf[keep_idx], yf[keep_idx]
            if xv is not None:
                xv, yv = xv[keep_idx], yv[keep_idx]
    # Early stopping restores the best weights; members that ran to the limit keep their last
    final = best.clone()
    final[ids] = net.flat_state()
    _keep_counts(full, net, ids, torch.ones(len(ids), dtype=torch.bool))
    full.load_flat_state(torch.where(stopper.stopped.unsqueeze(1), best, final))
    full.eval()
    return FitResult(full, stopper.best_epoch + 1, epochs_run, stopper.stopped.clone()
                     if replay is None else torch.zeros(S, dtype=torch.bool),
                     stopper.best.clone(), drops, steps_run,
                     {k: v.tensor() for k, v in hist.items()})


def fit_module(model: nn.Module, x: Tensor, y: Tensor, lr: float, cfg: FitConfig, seed: int,
               *, monitor: tuple[Tensor, Tensor] | None = None, replay: Replay | None = None,
               on_step: Callable[[], None] | None = None, progress=None) -> FitResult:
    """The reference: one network trained alone, in place, with :class:`KerasAdam`, torch's
    ``ReduceLROnPlateau`` in Keras' configuration and a plain early-stopping loop (or, for a
    :class:`Replay` of one member, its epochs and learning-rate cuts and nothing watched).

    ``x (N, n)``, ``y (N, ...)``, ``monitor``: ``(x_mon (V, n), y_mon (V, ...))``;
    ``on_step()`` is called after every optimizer step; ``progress``, an optional tqdm bar, is
    advanced once per epoch. The result holds ``model`` as a stack of one (its history as
    ``(epochs, 1)`` columns).
    """
    score, mode = MONITORS[cfg.monitor]
    max_epochs, cuts = cfg.max_epochs, set()
    if replay is not None:
        if monitor is not None or len(replay.epochs) != 1 or replay.epochs[0] < 1:
            raise ValueError("a replay of one network: one epoch count >= 1, no monitoring "
                             f"rows; got {replay.epochs} and rows={monitor is not None}")
        score, max_epochs, cuts = None, int(replay.epochs[0]), set(replay.lr_drops[0])
    elif (score is None) != (monitor is None):
        raise ValueError(f"the monitor {cfg.monitor!r} "
                         + ("scores no monitoring rows" if score is None
                            else "needs monitoring rows (x_mon, y_mon)"))
    loss_fn = LOSSES[cfg.loss]
    opt = KerasAdam(model.parameters(), lr=lr, eps=cfg.adam_eps)
    # Keras: reduce after `patience` epochs without an absolute improvement by min_delta
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, factor=cfg.plateau_factor, patience=cfg.plateau_patience - 1,
        threshold=cfg.plateau_min_delta, threshold_mode="abs", eps=0.0)
    gen = torch.Generator().manual_seed(int(seed))
    N = x.shape[0]
    B = N if cfg.batch_size is None else min(cfg.batch_size, N)
    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    best_v = math.inf if mode == "min" else -math.inf
    best_e, wait, stopped, epochs, steps = 0, 0, False, 0, 0
    best_state, drops = None, []
    hist: dict[str, list[float]] = {"train_loss": [], "lr": []} | (
        {} if score is None else {"monitor": []})
    for epoch in range(max_epochs):
        hist["lr"].append(opt.param_groups[0]["lr"])
        model.train()
        order = torch.randperm(N, generator=gen) if cfg.shuffle else torch.arange(N)
        total = 0.0
        for start in range(0, N, B):
            sel = order[start:start + B]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[sel])[None], y[sel][None])[0]
            loss.backward()
            total += loss.item() * len(sel)
            opt.step()
            steps += 1
            if on_step is not None:
                on_step()
        epochs += 1
        if score is None:
            val = total / N
        else:
            model.eval()
            with torch.no_grad():
                val = float(score(model(monitor[0])[None], monitor[1][None]))
            hist["monitor"].append(val)
        hist["train_loss"].append(total / N)
        if progress is not None:
            progress.update(1)
        if replay is not None:           # the cuts replayed; the last weights are kept
            if epoch + 1 in cuts:
                opt.param_groups[0]["lr"] = max(opt.param_groups[0]["lr"]
                                                * cfg.plateau_factor, 0.0)
                drops.append(epoch + 1)
            best_e, best_v = epoch + 1, math.nan
            continue
        before = opt.param_groups[0]["lr"]
        sched.step(val)
        if opt.param_groups[0]["lr"] != before:
            drops.append(epoch + 1)
        if better(val, best_v):
            best_v, best_e, wait = val, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            wait += 1
            if best_state is None:        # Keras keeps the first epoch's weights too
                best_state = copy.deepcopy(model.state_dict())
        if wait >= cfg.patience:
            stopped = True
            break
    if stopped:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(BatchedMLP.from_modules([model]).eval(), torch.tensor([best_e]),
                     torch.tensor([epochs]), torch.tensor([stopped]),
                     torch.tensor([best_v], dtype=_F64), [drops], torch.tensor([steps]),
                     {k: torch.tensor(v, dtype=_F64)[:, None] for k, v in hist.items()})
