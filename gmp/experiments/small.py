"""The paper's illustrative experiments: 1-D Levy regression (Fig. 2), 2-D Banana (Fig. 3).

Chen & Ge 2024, Sec. 4.1 (NOTES.md Sec. 5). A one-hidden-layer ReLU network under SP, WN, BN
or GmP (:func:`gmp.baselines.mlp`) is trained with Adam while the characteristic activation
boundaries (CABs) of its hidden units are recorded after every optimizer step.

Protocols (the defaults of :class:`LevyConfig` and :class:`BananaConfig`):

- **Levy**: 100 hidden units, linear output, full-batch Adam on the MAE, up to 10,000
  epochs; learning rate ×0.1 after more than 500 epochs without improvement of the training
  loss; early stopping after 1,000 epochs without improvement, keeping the best weights.
  The loss of epoch ``t`` is the full-batch loss of the weights *before* that epoch's step,
  so the weights kept are exactly those that achieved the best loss.
- **Banana**: 10 hidden units, one logit output (sigmoid + binary cross-entropy, computed
  as BCE-with-logits), Adam with mini-batches of 128, up to 5,000 epochs; learning rate ×0.1
  after more than 50 epochs without improvement of the validation accuracy; early stopping
  after 100 epochs without improvement. The validation set is carved from the training part
  (:func:`gmp.data.banana.banana_splits`); the test split is used only for the final score.

Learning rates default to the paper's cross-validated choice: 0.1 for GmP, 0.01 otherwise.

Two engines compute the same thing: ``"module"`` trains each run as an ordinary PyTorch
module with :class:`torch.optim.Adam`, :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau`
and a :class:`gmp.cab.CABTracker` attached to the optimizer (the reference), and
``"batched"`` (default) trains all seeds and learning rates of one method at once with
:mod:`gmp.experiments.batched`, finished members frozen by a mask. The test suite checks that
both give the same trajectories.

Every run yields a :class:`SmallRunResult`.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..baselines import METHODS, OneHiddenLayerMLP, check_method, mlp
from ..cab import CABTracker
from ..data.banana import BananaSplits, banana_splits
from ..data.levy import LevyData, levy_data
from ..files import jsonable, write_json
from ..nn import GmPLinear
from .batched import BatchedAdam, BatchedEarlyStopping, BatchedMLP, BatchedPlateau

__all__ = [
    "DEFAULT_LR",
    "TASKS",
    "LevyConfig",
    "BananaConfig",
    "SmallRunResult",
    "default_lr",
    "run_levy",
    "run_banana",
    "run",
    "summarize",
    "save_results",
    "load_results",
]

#: Learning rates chosen by cross-validation in the paper (NOTES.md Sec. 5).
DEFAULT_LR: dict[str, float] = {"sp": 0.01, "wn": 0.01, "bn": 0.01, "gmp": 0.1}
TASKS: tuple[str, ...] = ("levy", "banana")
ENGINES: tuple[str, ...] = ("batched", "module")


def default_lr(method: str) -> float:
    """The paper's learning rate for ``method`` (0.1 for GmP, 0.01 for SP, WN, BN)."""
    return DEFAULT_LR[check_method(method)]


@dataclass(frozen=True)
class LevyConfig:
    """Protocol of the Levy experiment (Fig. 2); the defaults are the paper's.

    ``gmp_init`` and ``gmp_readout`` change the GmP network only: ``"sphere"`` is the
    initialization of Remark 3.5 (uniform direction, ``λ = 0``, ``r = 1``) and ``"glorot"``
    the authors' code (Glorot-uniform weights converted, ``r = ‖w‖``); ``"gmp"`` makes the
    output layer a GmP layer too (:func:`gmp.baselines.mlp`) and ``"linear"`` a plain
    ``nn.Linear``, as in the authors' notebooks.
    """

    hidden: int = 100
    epochs: int = 10_000
    plateau_patience: int = 500
    stop_patience: int = 1000
    factor: float = 0.1
    n_train: int = 50
    noise_std: float = 0.1
    gmp_init: str = "sphere"
    gmp_readout: str = "gmp"

    def __post_init__(self) -> None:
        _check_common(self)


@dataclass(frozen=True)
class BananaConfig:
    """Protocol of the Banana experiment (Fig. 3); the defaults are the paper's.

    ``gmp_init`` and ``gmp_readout``: as in :class:`LevyConfig`.
    """

    hidden: int = 10
    epochs: int = 5000
    batch_size: int = 128
    plateau_patience: int = 50
    stop_patience: int = 100
    factor: float = 0.1
    n_subsample: int = 1000
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    gmp_init: str = "sphere"
    gmp_readout: str = "gmp"

    def __post_init__(self) -> None:
        _check_common(self)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.val_fraction <= 0:
            raise ValueError("the Banana protocol monitors a validation split: val_fraction "
                             f"must be > 0, got {self.val_fraction}")


def _check_common(cfg: LevyConfig | BananaConfig) -> None:
    name = type(cfg).__name__
    for key in ("hidden", "epochs", "plateau_patience", "stop_patience"):
        if int(getattr(cfg, key)) < 1:
            raise ValueError(f"{name}.{key} must be >= 1, got {getattr(cfg, key)}")
    if not 0 < cfg.factor < 1:
        raise ValueError(f"{name}.factor must be in (0, 1), got {cfg.factor}")
    if cfg.gmp_init not in ("sphere", "glorot"):
        raise ValueError(f"{name}.gmp_init must be 'sphere' or 'glorot', got {cfg.gmp_init!r}")
    if cfg.gmp_readout not in ("gmp", "linear"):
        raise ValueError(f"{name}.gmp_readout must be 'gmp' or 'linear', got "
                         f"{cfg.gmp_readout!r}")


@dataclass
class SmallRunResult:
    """One training run (one method, seed and learning rate).

    Attributes:
        task: ``"levy"`` or ``"banana"``.
        method, seed, lr: the run's parameterization, seed (initialization, data sample and
            shuffling) and initial learning rate.
        epochs_run: epochs trained (≤ the configured maximum; fewer when stopped early).
        best_epoch: 0-based epoch whose weights were kept (-1 if no epoch improved on the
            start, e.g. a loss that is NaN from the first step; the last weights are kept).
        kept_step: number of optimizer steps behind the kept weights (Levy: ``best_epoch``,
            as the loss of an epoch is that of the weights before its step; Banana: the end
            of epoch ``best_epoch``).
        stopped_early: whether early stopping ended the run.
        history: per-epoch arrays ``(epochs_run,)``: ``"train_loss"``, ``"lr"`` (the rate used
            in that epoch) and for Banana ``"val_acc"``.
        metrics: final scores with the kept weights (Levy: ``test_rmse``, ``train_mae``,
            ``train_rmse``; Banana: ``test_acc``, ``val_acc``, ``train_acc``).
        steps: ``(T,)`` optimizer-step numbers of the recorded CAB states (0 = initial).
        locations: ``(T, m, n)`` spatial locations ``φ`` of the hidden CABs at ``steps``.
        max_location_change: ``(steps_run,)`` max over units of ``‖Δφ‖`` at each step.
        max_angular_change: ``(steps_run,)`` max over units of the change of the CAB
            direction at each step, in degrees.
        config: the protocol settings and engine.
        model: the trained network with the kept weights (not serialized).
    """

    task: str
    method: str
    seed: int
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
        """JSON-ready dict (NaN/inf become ``None``); ``tracks=False`` drops the CAB arrays."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "model"}
        if not tracks:
            for k in ("steps", "locations", "max_location_change", "max_angular_change"):
                d.pop(k)
        return jsonable(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SmallRunResult:
        """Inverse of :meth:`to_dict` (missing track arrays come back empty)."""
        kw = {k: d[k] for k in ("task", "method", "seed", "lr", "epochs_run", "best_epoch",
                                "kept_step", "stopped_early", "config")}
        kw["metrics"] = {k: (math.nan if v is None else float(v)) for k, v in d["metrics"].items()}
        kw["history"] = {k: _nan_array(v) for k, v in d["history"].items()}
        kw["steps"] = np.asarray(d.get("steps", []), dtype=np.int64)
        kw["locations"] = _nan_array(d.get("locations", []))
        kw["max_location_change"] = _nan_array(d.get("max_location_change", []))
        kw["max_angular_change"] = _nan_array(d.get("max_angular_change", []))
        return cls(**kw)


def _nan_array(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=object)
    return np.where(a == None, np.nan, a).astype(np.float64)  # noqa: E711 (elementwise)




# ---------------------------------------------------------------------------------------
# problems: data stacked per member
# ---------------------------------------------------------------------------------------
@dataclass
class _Problem:
    """Data of every member, stacked: ``x_*: (S, N, n)``, ``y_*: (S, N, 1)``."""

    task: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor | None
    y_val: Tensor | None
    x_test: Tensor
    y_test: Tensor

    def member(self, s: int) -> _Problem:
        def pick(t):
            return None if t is None else t[s: s + 1]
        return _Problem(self.task, *(pick(getattr(self, k)) for k in
                                     ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")))


def _stack_problem(task: str, datas: Sequence[LevyData | BananaSplits], dtype: torch.dtype
                   ) -> _Problem:
    def st(name: str) -> Tensor:
        t = torch.stack([getattr(d, name) for d in datas]).to(dtype)
        return t if t.dim() == 3 else t.unsqueeze(-1)

    if task == "levy":
        return _Problem(task, st("x_train"), st("y_train"), None, None, st("x_test"), st("y_test"))
    return _Problem(task, st("x_train"), st("y_train"), st("x_val"), st("y_val"),
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
    """Scores of every member with its current weights; ``predict(x (S,N,n)) -> (S,N,1)``."""
    if task == "levy":
        def rmse(x, y):
            return torch.sqrt(((predict(x) - y) ** 2).to(torch.float64).mean(dim=(1, 2)))
        test, train_rmse = rmse(p.x_test, p.y_test), rmse(p.x_train, p.y_train)
        train_mae = (predict(p.x_train) - p.y_train).abs().to(torch.float64).mean(dim=(1, 2))
        return [{"test_rmse": float(a), "train_mae": float(b), "train_rmse": float(c)}
                for a, b, c in zip(test, train_mae, train_rmse, strict=True)]
    accs = [_accuracy(predict(x), y) for x, y in
            ((p.x_test, p.y_test), (p.x_val, p.y_val), (p.x_train, p.y_train))]
    return [{"test_acc": float(a), "val_acc": float(b), "train_acc": float(c)}
            for a, b, c in zip(*accs, strict=True)]


def _init_model(method: str, seed: int, n_in: int, cfg: LevyConfig | BananaConfig,
                dtype: torch.dtype) -> OneHiddenLayerMLP:
    """The module version of a run: ``torch.manual_seed(seed)``, then :func:`gmp.baselines.mlp`
    (with the GmP variations of ``cfg`` applied). The caller's global RNG state is kept."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = mlp(method, n_in, cfg.hidden, 1)
        if method == "gmp" and cfg.gmp_init == "glorot":
            model.hidden = GmPLinear(n_in, cfg.hidden, init="glorot")
        if method == "gmp" and cfg.gmp_readout == "linear":
            model.out = nn.Linear(cfg.hidden, 1)
        return model.to(dtype)


# ---------------------------------------------------------------------------------------
# the batched engine
# ---------------------------------------------------------------------------------------
def _gather(x: Tensor, idx: Tensor) -> Tensor:
    """Rows ``idx (S, B)`` of ``x (S, N, k)`` per member -> ``(S, B, k)``."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _train_batched(task: str, method: str, members: Sequence[tuple[int, float]], cfg,
                   problem: _Problem, dtype: torch.dtype, track_every: int,
                   progress: bool) -> list[SmallRunResult]:
    S = len(members)
    n_in = problem.x_train.shape[-1]
    models = [_init_model(method, seed, n_in, cfg, dtype) for seed, _ in members]
    net = BatchedMLP.from_modules(models).train()
    params = list(net.parameters())
    adam = BatchedAdam(params, torch.tensor([lr for _, lr in members], dtype=torch.float64))
    levy = task == "levy"
    plateau = BatchedPlateau(adam.lr, mode="min" if levy else "max", factor=cfg.factor,
                             patience=cfg.plateau_patience)
    stopper = BatchedEarlyStopping(S, mode="min" if levy else "max", patience=cfg.stop_patience)
    # the weights to keep: every floating tensor of the model, flattened to (S, P)
    saved = [t for t in (*params, *net.buffers()) if t.is_floating_point() and t.numel() > 0]
    best = torch.cat([t.detach().reshape(S, -1) for t in saved], dim=1)
    gens = [torch.Generator().manual_seed(seed) for seed, _ in members]
    x_ref = problem.x_train if method == "bn" else None

    cab_prev = net.cab_state(x_ref)
    rec_steps, rec_loc = [0], [cab_prev[0].clone()]
    loc_change: list[Tensor] = []
    ang_change: list[Tensor] = []
    hist: dict[str, list[Tensor]] = {"train_loss": [], "lr": []} | ({} if levy else {"val_acc": []})
    epochs_run = torch.zeros(S, dtype=torch.long)
    steps_run = torch.zeros(S, dtype=torch.long)
    step = 0
    n = problem.x_train.shape[1]
    bs = n if levy else cfg.batch_size

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
            rec_loc.append(cab[0].clone())

    def snapshot(mask: Tensor) -> None:
        nonlocal best
        cur = torch.cat([t.detach().reshape(S, -1) for t in saved], dim=1)
        best = torch.where(mask.unsqueeze(1), cur, best)

    bar = tqdm(range(cfg.epochs), desc=f"{task} {method} ×{S}", disable=not progress,
               leave=False, dynamic_ncols=True)
    for _ in bar:
        active = ~stopper.stopped
        if not bool(active.any()):
            break
        hist["lr"].append(adam.lr.clone())
        epochs_run.add_(active.long())
        if levy:
            adam.zero_grad()
            loss = _loss(task, net(problem.x_train, update=active), problem.y_train)
            loss.sum().backward()
            improved, _ = stopper.update(loss.detach())
            snapshot(improved)  # the weights that produced this loss (before the step)
            tracked_step(active)
            plateau.step(loss.detach(), active)
            hist["train_loss"].append(loss.detach())
        else:
            perm = torch.stack([torch.randperm(n, generator=g) for g in gens])
            total = torch.zeros(S, dtype=torch.float64)
            for i in range(0, n, bs):
                idx = perm[:, i: i + bs]
                adam.zero_grad()
                loss = _loss(task, net(_gather(problem.x_train, idx), update=active),
                             _gather(problem.y_train, idx))
                loss.sum().backward()
                total += loss.detach().to(torch.float64) * idx.shape[1]
                tracked_step(active)
            net.eval()
            with torch.no_grad():
                val_acc = _accuracy(net(problem.x_val), problem.y_val)
            net.train()
            improved, _ = stopper.update(val_acc)
            snapshot(improved)
            plateau.step(val_acc, active)
            hist["train_loss"].append(total / n)
            hist["val_acc"].append(val_acc)
        if progress:
            bar.set_postfix(active=int((~stopper.stopped).sum()), refresh=False)
    bar.close()

    # keep the best weights (members that never improved, e.g. NaN from the start, keep
    # their last weights)
    ever = (stopper.best_epoch >= 0).unsqueeze(1)
    with torch.no_grad():
        parts = torch.split(best, [t[0].numel() for t in saved], dim=1)
        for t, b in zip(saved, parts, strict=True):
            t.copy_(torch.where(ever, b, t.reshape(S, -1)).view_as(t))
    net.eval()
    metrics = _final_metrics(task, net, problem)

    locs = torch.stack(rec_loc).transpose(0, 1).cpu().numpy()         # (S, T, m, n)
    steps_arr = np.asarray(rec_steps, dtype=np.int64)
    dl = torch.stack(loc_change).T.cpu().numpy() if loc_change else np.empty((S, 0))
    da = torch.stack(ang_change).T.cpu().numpy() if ang_change else np.empty((S, 0))
    hists = {k: torch.stack(v).T.to(torch.float64).cpu().numpy() for k, v in hist.items()}
    conf = _config_dict(cfg, "batched", track_every, dtype)
    results = []
    for s, (seed, lr) in enumerate(members):
        k, e = int(steps_run[s]), int(epochs_run[s])
        keep = steps_arr <= k
        results.append(SmallRunResult(
            task=task, method=method, seed=seed, lr=float(lr), epochs_run=e,
            best_epoch=int(stopper.best_epoch[s]),
            kept_step=_kept_step(task, int(stopper.best_epoch[s]), bs, n, k),
            stopped_early=bool(stopper.stopped[s]),
            history={name: h[s, :e] for name, h in hists.items()}, metrics=metrics[s],
            steps=steps_arr[keep], locations=locs[s][keep], max_location_change=dl[s, :k],
            max_angular_change=da[s, :k], config=conf, model=net.load_into(models[s], s)))
    return results


def _kept_step(task: str, best_epoch: int, batch_size: int, n: int, steps_run: int) -> int:
    if best_epoch < 0:
        return steps_run
    if task == "levy":
        return best_epoch
    return (best_epoch + 1) * math.ceil(n / batch_size)


def _config_dict(cfg, engine: str, track_every: int, dtype: torch.dtype) -> dict[str, Any]:
    return asdict(cfg) | {"engine": engine, "track_every": track_every,
                          "dtype": str(dtype).removeprefix("torch.")}


# ---------------------------------------------------------------------------------------
# the module engine (reference)
# ---------------------------------------------------------------------------------------
def _train_module(task: str, method: str, seed: int, lr: float, cfg, problem: _Problem,
                  dtype: torch.dtype, track_every: int, progress: bool) -> SmallRunResult:
    """One run as a plain module: torch Adam, torch ReduceLROnPlateau, gmp.cab.CABTracker."""
    p = problem  # a single member: tensors (1, N, k)
    x_train, y_train = p.x_train[0], p.y_train[0]
    model = _init_model(method, seed, x_train.shape[-1], cfg, dtype).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    levy = task == "levy"
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min" if levy else "max", factor=cfg.factor, patience=cfg.plateau_patience)
    stopper = BatchedEarlyStopping(1, mode="min" if levy else "max", patience=cfg.stop_patience)
    tracker = CABTracker(model.hidden, every=1,
                         inputs=x_train if method == "bn" else None).attach(opt)
    gen = torch.Generator().manual_seed(seed)
    best_state = None
    hist: dict[str, list[float]] = {"train_loss": [], "lr": []} | ({} if levy else {"val_acc": []})
    n = x_train.shape[0]
    bs = n if levy else cfg.batch_size
    epochs = 0
    for _ in tqdm(range(cfg.epochs), desc=f"{task} {method} seed {seed}", disable=not progress,
                  leave=False, dynamic_ncols=True):
        if bool(stopper.stopped[0]):
            break
        epochs += 1
        hist["lr"].append(opt.param_groups[0]["lr"])
        if levy:
            opt.zero_grad()
            loss = _loss(task, model(x_train)[None], y_train[None])[0]
            loss.backward()
            improved, _ = stopper.update(loss.detach()[None])
            if bool(improved[0]):
                best_state = copy.deepcopy(model.state_dict())
            opt.step()
            sched.step(loss.item())
            hist["train_loss"].append(loss.item())
        else:
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for i in range(0, n, bs):
                idx = perm[i: i + bs]
                opt.zero_grad()
                loss = _loss(task, model(x_train[idx])[None], y_train[idx][None])[0]
                loss.backward()
                total += loss.item() * len(idx)
                opt.step()
            model.eval()
            with torch.no_grad():
                val_acc = _accuracy(model(p.x_val[0])[None], p.y_val)
            model.train()
            improved, _ = stopper.update(val_acc)
            if bool(improved[0]):
                best_state = copy.deepcopy(model.state_dict())
            sched.step(val_acc.item())
            hist["train_loss"].append(total / n)
            hist["val_acc"].append(val_acc.item())
    tracker.detach()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    metrics = _final_metrics(task, lambda x: model(x[0])[None], p)[0]
    keep = tracker.steps % track_every == 0
    return SmallRunResult(
        task=task, method=method, seed=seed, lr=float(lr), epochs_run=epochs,
        best_epoch=int(stopper.best_epoch[0]),
        kept_step=_kept_step(task, int(stopper.best_epoch[0]), bs, n, len(tracker.steps) - 1),
        stopped_early=bool(stopper.stopped[0]),
        history={k: np.asarray(v, dtype=np.float64) for k, v in hist.items()}, metrics=metrics,
        steps=tracker.steps[keep], locations=tracker.locations[keep],
        max_location_change=tracker.max_location_change(),
        max_angular_change=tracker.max_angular_change(degrees=True),
        config=_config_dict(cfg, "module", track_every, dtype), model=model)


# ---------------------------------------------------------------------------------------
# public runners
# ---------------------------------------------------------------------------------------
def _methods(methods: str | Iterable[str]) -> list[str]:
    if isinstance(methods, str):
        return list(METHODS) if methods == "all" else [check_method(methods)]
    out = [check_method(m) for m in methods]
    if not out:
        raise ValueError("no methods given")
    return out


def _lrs(method: str, lr: float | Sequence[float] | dict[str, float] | None) -> list[float]:
    if lr is None:
        vals = [default_lr(method)]
    elif isinstance(lr, dict):
        vals = [float(lr.get(method, default_lr(method)))]
    elif isinstance(lr, (int, float)):
        vals = [float(lr)]
    else:
        vals = [float(v) for v in lr]
    if not vals or any(not (v > 0 and math.isfinite(v)) for v in vals):
        raise ValueError(f"learning rates must be positive and finite, got {lr!r}")
    return vals


def run(task: str, methods: str | Iterable[str] = "all", seeds: Iterable[int] = (0,),
        lr: float | Sequence[float] | dict[str, float] | None = None,
        config: LevyConfig | BananaConfig | None = None, *, engine: str = "batched",
        track_every: int = 1, dtype: torch.dtype = torch.float64, progress: bool = True,
        data: dict[int, LevyData | BananaSplits] | None = None, threads: int | None = 1
        ) -> list[SmallRunResult]:
    """Train every (method, seed, learning rate) combination of one task.

    Args:
        task: ``"levy"`` or ``"banana"``.
        methods: ``"all"``, one method or a list (see :data:`gmp.baselines.METHODS`).
        seeds: run seeds; seed ``s`` fixes the initialization (``torch.manual_seed(s)``), the
            data sample (:func:`~gmp.data.levy.levy_data` /
            :func:`~gmp.data.banana.banana_splits` with seed ``s``) and the shuffling.
        lr: ``None`` (the paper's choice per method, :data:`DEFAULT_LR`), one rate, a dict
            per method, or a list of rates (every rate is run for every seed).
        config: protocol settings; default the paper's (:class:`LevyConfig` /
            :class:`BananaConfig`).
        engine: ``"batched"`` (all seeds and rates of a method in one stacked model) or
            ``"module"`` (one plain module at a time; the reference).
        track_every: store the CAB locations every ``track_every`` steps (the per-step
            maximum changes are always computed at every step).
        dtype: ``torch.float64`` (default, as in the authors' notebooks: these tiny problems
            cost the same in either precision on a CPU, and long runs of Adam amplify
            rounding differences) or ``torch.float32``.
        progress: show a tqdm progress bar.
        data: optional ``{seed: data}`` overriding the data of given seeds (e.g. synthetic
            data in tests).
        threads: torch intra-op threads while training (restored afterwards); default 1,
            because these tiny operations only lose from threading (on a busy 2-core machine
            a batch norm of 50×100 values took 2-50 ms with 2 threads, 0.2 ms with one).
            ``None`` keeps the current setting.

    Returns:
        One :class:`SmallRunResult` per run, ordered by method, then seed, then rate.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
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
    method_list = _methods(methods)
    for m in method_list:
        _lrs(m, lr)  # validate before any data is loaded
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds given")
    data = dict(data or {})
    for s in seeds:
        if s not in data:
            data[s] = (levy_data(s, cfg.n_train, cfg.noise_std) if task == "levy" else
                       banana_splits(s, cfg.n_subsample, cfg.test_fraction, cfg.val_fraction))
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run_all(task, method_list, seeds, lr, cfg, data, engine, track_every,
                        dtype, progress)
    finally:
        torch.set_num_threads(before)


def _run_all(task, methods, seeds, lr, cfg, data, engine, track_every, dtype, progress
             ) -> list[SmallRunResult]:
    results: list[SmallRunResult] = []
    for method in methods:
        members = [(s, lr_) for s in seeds for lr_ in _lrs(method, lr)]
        problem = _stack_problem(task, [data[s] for s, _ in members], dtype)
        if engine == "batched":
            results += _train_batched(task, method, members, cfg, problem, dtype, track_every,
                                      progress)
        else:
            results += [_train_module(task, method, s, lr_, cfg, problem.member(i), dtype,
                                      track_every, progress)
                        for i, (s, lr_) in enumerate(members)]
    return results


def run_levy(methods: str | Iterable[str] = "all", seeds: Iterable[int] = (0,), lr=None,
             config: LevyConfig | None = None, **kwargs) -> list[SmallRunResult]:
    """:func:`run` for the Levy regression of Fig. 2 (see there for the arguments)."""
    return run("levy", methods, seeds, lr, config, **kwargs)


def run_banana(methods: str | Iterable[str] = "all", seeds: Iterable[int] = (0,), lr=None,
               config: BananaConfig | None = None, **kwargs) -> list[SmallRunResult]:
    """:func:`run` for the Banana classification of Fig. 3 (see there for the arguments)."""
    return run("banana", methods, seeds, lr, config, **kwargs)


def summarize(results: Sequence[SmallRunResult], metric: str | None = None
              ) -> list[dict[str, Any]]:
    """Mean and sample standard deviation of a metric per (method, lr) over seeds.

    Args:
        results: runs of one task.
        metric: a key of ``metrics`` (default the headline: ``test_rmse`` / ``test_acc``).

    Returns:
        Rows ``{"method", "lr", "n", "mean", "std", "values"}`` in the order first seen
        (``std`` is NaN for a single run).
    """
    rows: dict[tuple[str, float], list[float]] = {}
    for r in results:
        key = metric or ("test_rmse" if r.task == "levy" else "test_acc")
        rows.setdefault((r.method, r.lr), []).append(r.metrics[key])
    out = []
    for (method, lr), vals in rows.items():
        v = np.asarray(vals, dtype=np.float64)
        out.append({"method": method, "lr": lr, "n": len(v), "mean": float(v.mean()),
                    "std": float(v.std(ddof=1)) if len(v) > 1 else math.nan, "values": vals})
    return out


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
