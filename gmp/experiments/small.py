"""The paper's illustrative experiments: 1-D Levy regression (Fig. 2), 2-D Banana (Fig. 3).

Chen & Ge 2024, Sec. 4.1. A one-hidden-layer ReLU network under SP, WN, BN or GmP
(:func:`gmp.baselines.mlp`, built with a *preset* of :mod:`gmp.params`, default ``"authors"``)
is trained with Adam while the characteristic activation boundaries (CABs) of its hidden units
are recorded after every optimizer step.

Training follows the authors' notebooks (Keras) setting by setting; what differs between
the two tasks (settings, data, loss, monitor, scores, plots) is a :class:`~.tasks.Task` of
:mod:`gmp.experiments.tasks`, and every network is trained by the one Keras ``fit`` loop of
:mod:`gmp.experiments.fit`. Two protocols, named after their source: ``"official"`` (the
notebooks as published; for Banana it selects on the **test** split, a leak every output of
it names) and ``"honest"`` (every selection on data carved from the training part).

Learning rates default to the paper's cross-validated choice (0.1 for GmP, 0.01 otherwise).

A run has an initialization seed (``torch.manual_seed``, and the mini-batch order) and a data
seed (the notebooks' ``np.random.seed``); by default they are equal, and fixing the data seed
varies only the initialization (``data_seed=0`` is the authors' own data set).

Two engines compute the same thing: ``"batched"`` (default) trains all seeds and learning
rates of one parameterization at once (:func:`gmp.experiments.fit.fit`), finished members
frozen by a mask, and records the CABs through its per-step callback; ``"module"`` trains
each run as an ordinary PyTorch module (:func:`gmp.experiments.fit.fit_module`, with a
:class:`gmp.cab.CABTracker`): the reference. The test suite checks that both give the same
trajectories.

Every run yields a :class:`SmallRunResult`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..baselines import OneHiddenLayerMLP, seeded_mlps
from ..cab import CABTracker, effective_weight_bias
from ..files import jsonable, write_json
from ..params import PAPER_LR, PARAMS, Preset, check_param, get_preset, get_spec
from .batched import BatchedMLP
from .fit import ENGINES, Rows, fit, fit_module
from .tasks import (
    TASKS,
    BananaConfig,
    LevyConfig,
    Problem,
    Task,
    check_protocol,
    get_task,
)

# The settings and data of the tasks are importable from here too (the book's chapters use
# ``small.LevyConfig``); they are documented in gmp.experiments.tasks.
__all__ = ["DEFAULT_LR", "SmallRunResult", "default_lr", "make_data", "run", "run_levy",
           "run_banana", "summarize", "rerun_agreement", "save_results", "load_results",
           "recognise_results"]

#: Learning rates chosen by cross-validation in the paper (Sec. 4.1), by param, read live
#: from the registry (:data:`gmp.params.PAPER_LR`).
DEFAULT_LR: Mapping[str, float] = PAPER_LR


def default_lr(param: str) -> float:
    """The paper's learning rate for ``param`` (0.1 for GmP, 0.01 for SP, WN, BN): the
    spec's ``lr`` (:class:`gmp.params.Parameterization`)."""
    lr = get_spec(check_param(param)).lr
    if lr is None:
        raise ValueError(f"parameterization {param!r} has no default learning rate; pass lr")
    return lr


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
        change = TASKS[self.task].change
        return self.max_location_change if change == "location" else self.max_angular_change

    @property
    def score(self) -> float:
        """The headline test metric, RMSE for Levy and accuracy for Banana."""
        return self.metrics[TASKS[self.task].headline]

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


def make_data(task: str | Task, seed: int, protocol: str = "official",
              config: LevyConfig | BananaConfig | None = None) -> Any:
    """The data of one run: the authors' sample for ``seed`` (:meth:`.tasks.Task.make_data`)."""
    t = get_task(task)
    return t.make_data(seed, check_protocol(protocol), t.config(config))


@dataclass(frozen=True)
class _Plan:
    """Everything a runner needs besides the members: resolved once, in :func:`run`."""

    task: Task
    cfg: LevyConfig | BananaConfig
    preset: Preset
    protocol: str
    engine: str
    track_every: int
    dtype: torch.dtype
    progress: bool

    def config_dict(self) -> dict[str, Any]:
        """The settings written into every run."""
        return asdict(self.cfg) | {
            "preset": self.preset.name, "protocol": self.protocol, "engine": self.engine,
            "track_every": self.track_every, "dtype": str(self.dtype).removeprefix("torch.")}

    def models(self, param: str, seeds: Sequence[int], n_in: int
               ) -> list[OneHiddenLayerMLP]:
        """The initial networks of runs: :func:`gmp.baselines.seeded_mlps`."""
        return seeded_mlps(param, n_in, self.cfg.hidden, seeds, preset=self.preset,
                           dtype=self.dtype)

    def kept_step(self, best_epoch: int, stopped: bool, n: int, steps_run: int) -> int:
        """Optimizer steps behind the final weights (``best_epoch`` 0-based, -1: none)."""
        if not stopped:
            return steps_run
        # Keras keeps the weights at the end of the best epoch, or of epoch 0 if none improved
        return (max(best_epoch, 0) + 1) * self.task.steps_per_epoch(self.cfg, n)


@torch.no_grad()
def _units_through(w: Tensor, b: Tensor, x: Tensor) -> Tensor:
    """Per member, how many hidden units have their CAB through the training inputs: the
    pre-activation ``wᵀx + b`` takes both signs on ``x``. ``w (S, m, n)``, ``b (S, m)``,
    ``x (S, N, n)`` -> ``(S,)``. (GmP: ``w = r·u``, ``b = r·λ``, same sign pattern up to
    ``sign(r)``; BN: its running statistics, as at evaluation.)"""
    z = torch.baddbmm(b.unsqueeze(1).to(torch.float64), x.to(torch.float64),
                      w.to(torch.float64).transpose(1, 2))
    return ((z.amax(dim=1) > 0) & (z.amin(dim=1) < 0)).sum(dim=1)


class _CABRecorder:
    """The batched engine's per-step callback: after every optimizer step, the largest CAB
    change of every member (location and angle, ``(S,)`` each) and, every ``every`` steps,
    the CAB locations ``(S, m, n)``. BN units use the batch statistics of ``x_ref``."""

    def __init__(self, net: BatchedMLP, x_ref: Tensor | None, every: int, max_steps: int):
        self.x_ref, self.every, self.step = x_ref, every, 0
        self.prev = net.cab_state(x_ref)
        self.steps = [0]
        self.loc = Rows(max_steps // every + 1, self.prev[0].shape)
        self.loc.append(self.prev[0])
        S = net.size
        self.loc_change, self.ang_change = Rows(max_steps, (S,)), Rows(max_steps, (S,))

    def __call__(self, net: BatchedMLP, active: Tensor) -> None:
        self.step += 1
        cab = net.cab_state(self.x_ref)
        dl, da = BatchedMLP.cab_change(self.prev, cab)
        self.loc_change.append(dl)
        self.ang_change.append(da)
        self.prev = cab
        if self.step % self.every == 0:
            self.steps.append(self.step)
            self.loc.append(cab[0])


def _train_batched(plan: _Plan, param: str, members: Sequence[tuple[int, int, float]],
                   problem: Problem) -> list[SmallRunResult]:
    """Every member ``(seed, data_seed, lr)`` of one param at once."""
    task, S, spec = plan.task, len(members), get_spec(param)
    n_in, n = problem.x_train.shape[-1], problem.x_train.shape[1]
    models = plan.models(param, [seed for seed, _, _ in members], n_in)
    fcfg = task.fit_config(plan.cfg)
    x_ref = problem.x_train if spec.needs_batch_stats else None
    rec = _CABRecorder(BatchedMLP.from_modules(models).train(), x_ref, plan.track_every,
                       fcfg.max_epochs * task.steps_per_epoch(plan.cfg, n))
    bar = tqdm(total=fcfg.max_epochs, desc=f"{task.name} {param} ×{S}",
               disable=not plan.progress, leave=False, dynamic_ncols=True)
    monitor = None if problem.x_mon is None else (problem.x_mon, problem.y_mon)
    res = fit(models, problem.x_train, problem.y_train, [lr for _, _, lr in members], fcfg,
              [seed for seed, _, _ in members], monitor=monitor, on_step=rec,
              progress=bar if plan.progress else None)
    bar.close()
    net = res.net
    with torch.no_grad():
        metrics = task.final_metrics(net, problem)
    through = _units_through(*net.effective_hidden(), problem.x_train)
    locs = rec.loc.tensor().transpose(0, 1).numpy()                 # (S, T, m, n)
    steps_arr = np.asarray(rec.steps, dtype=np.int64)
    dl = rec.loc_change.tensor().T.numpy()                          # (S, steps)
    da = rec.ang_change.tensor().T.numpy()
    hists = {task.history_name(k): v.T.numpy() for k, v in res.history.items()}  # (S, ep.)
    conf = plan.config_dict()
    results = []
    for s, (seed, data_seed, lr) in enumerate(members):
        k, e = int(res.steps_run[s]), int(res.epochs_run[s])
        stopped, best = bool(res.stopped_early[s]), int(res.best_epoch[s]) - 1
        model = net.load_into(models[s], s)
        metrics[s] |= {"units_through_data": float(through[s])} | {
            k: float(v) for k, v in spec.extra_metrics(model.hidden).items()}
        keep = steps_arr <= k
        results.append(SmallRunResult(
            task=task.name, param=param, preset=plan.preset.name, protocol=plan.protocol,
            seed=seed, data_seed=data_seed, lr=float(lr), epochs_run=e, best_epoch=best,
            kept_step=plan.kept_step(best, stopped, n, k), stopped_early=stopped,
            history={name: h[s, :e] for name, h in hists.items()}, metrics=metrics[s],
            steps=steps_arr[keep], locations=locs[s][keep], max_location_change=dl[s, :k],
            max_angular_change=da[s, :k], config=conf, model=model))
    return results


def _train_module(plan: _Plan, param: str, member: tuple[int, int, float], p: Problem
                  ) -> SmallRunResult:
    """One run as a plain module (the reference): :func:`gmp.experiments.fit.fit_module`
    with a :class:`gmp.cab.CABTracker` recording after every step."""
    (seed, data_seed, lr), task = member, plan.task
    x_train, y_train = p.x_train[0], p.y_train[0]       # p: a single member, (1, N, k)
    model = plan.models(param, [seed], x_train.shape[-1])[0].train()
    spec = get_spec(param)
    tracker = CABTracker(model.hidden, every=1,
                         inputs=x_train if spec.needs_batch_stats else None)
    tracker.record()                                    # step 0
    monitor = None if p.x_mon is None else (p.x_mon[0], p.y_mon[0])
    fcfg = task.fit_config(plan.cfg)
    bar = tqdm(total=fcfg.max_epochs, desc=f"{task.name} {param} seed {seed}",
               disable=not plan.progress, leave=False, dynamic_ncols=True)
    res = fit_module(model, x_train, y_train, lr, fcfg, seed, monitor=monitor,
                     on_step=tracker.record, progress=bar if plan.progress else None)
    bar.close()
    with torch.no_grad():
        metrics = task.final_metrics(lambda x: model(x[0])[None], p)[0]
    w, b = effective_weight_bias(model.hidden)
    metrics["units_through_data"] = float(_units_through(w[None], b[None], p.x_train)[0])
    metrics |= {k: float(v) for k, v in spec.extra_metrics(model.hidden).items()}
    keep = tracker.steps % plan.track_every == 0
    stopped, best = bool(res.stopped_early[0]), int(res.best_epoch[0]) - 1
    return SmallRunResult(
        task=task.name, param=param, preset=plan.preset.name, protocol=plan.protocol, seed=seed,
        data_seed=data_seed, lr=float(lr), epochs_run=int(res.epochs_run[0]), best_epoch=best,
        kept_step=plan.kept_step(best, stopped, x_train.shape[0], int(res.steps_run[0])),
        stopped_early=stopped,
        history={task.history_name(k): v[:, 0].numpy() for k, v in res.history.items()},
        metrics=metrics, steps=tracker.steps[keep], locations=tracker.locations[keep],
        max_location_change=tracker.max_location_change(),
        max_angular_change=tracker.max_angular_change(degrees=True),
        config=plan.config_dict(), model=model)


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
        vals = [float(lr[param]) if param in lr else default_lr(param)]
    elif isinstance(lr, (int, float)):
        vals = [float(lr)]
    else:
        vals = [float(v) for v in lr]
    if not vals or any(not (v > 0 and math.isfinite(v)) for v in vals):
        raise ValueError(f"learning rates must be positive and finite, got {lr!r}")
    return vals


def run(task: str | Task, params: str | Iterable[str] = "all", seeds: Iterable[int] = (0,),
        lr: float | Sequence[float] | dict[str, float] | None = None,
        config: LevyConfig | BananaConfig | None = None, *, preset: str = "authors",
        protocol: str = "official", data_seed: int | None = None, engine: str = "batched",
        track_every: int = 1, dtype: torch.dtype = torch.float64, progress: bool = True,
        data: dict[int, Any] | None = None, threads: int | None = 1
        ) -> list[SmallRunResult]:
    """Train every (param, seed, learning rate) combination of one task.

    Args:
        task: ``"levy"``, ``"banana"`` or a :class:`~.tasks.Task`.
        params: ``"all"``, one parameterization or a list (see :data:`gmp.params.PARAMS`).
        seeds: initialization seeds (``torch.manual_seed(s)`` and the mini-batch order).
        lr: ``None`` (the paper's choice per parameterization, :data:`DEFAULT_LR`), one rate, a dict
            per parameterization, or a list of rates (every rate is run for every seed).
        config: settings; default the authors' (:class:`~.tasks.LevyConfig` /
            :class:`~.tasks.BananaConfig`).
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
    t = get_task(task)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    if isinstance(track_every, bool) or not isinstance(track_every, int) or track_every < 1:
        raise ValueError(f"track_every must be a positive integer, got {track_every!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    plan = _Plan(t, t.config(config), get_preset(preset), check_protocol(protocol),
                 engine, track_every, dtype, progress)
    param_list = _params(params)
    rates = {m: _lrs(m, lr) for m in param_list}   # validated before any data is loaded
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds given")
    pairs = [(s, s if data_seed is None else int(data_seed)) for s in seeds]
    data = dict(data or {})
    for _, d in pairs:
        if d not in data:
            data[d] = t.make_data(d, plan.protocol, plan.cfg)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        results: list[SmallRunResult] = []
        for param in param_list:
            members = [(s, d, lr_) for s, d in pairs for lr_ in rates[param]]
            problem = t.problem([data[d] for _, d, _ in members], plan.protocol, dtype)
            if engine == "batched":
                results += _train_batched(plan, param, members, problem)
            else:
                results += [_train_module(plan, param, m, problem.member(i))
                            for i, m in enumerate(members)]
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
        key = metric or TASKS[r.task].headline
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
