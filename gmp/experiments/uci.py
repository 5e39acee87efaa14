"""UCI regression benchmark: the protocols, their runner and ``gmp-uci`` (Chen & Ge 2024,
Sec. 4.2.1, Table 1 and App. C.1).

Seven data sets × 10 random 80/20 splits × four parameterizations (SP, WN, BN, GmP) of a
one-hidden-layer MLP with 100 ReLU units, built as the authors' code builds it (preset
``"authors"`` of :mod:`gmp.params`: the GmP unit ``r·ReLU(uᵀx + λ)`` with their Glorot-derived
initialization and a dense read-out; Keras' Glorot initialization, WN read-out and BN
settings for the baselines). The protocols, named after what they are (one value each,
``PROTOCOLS``; ``PROTOCOL_STEPS`` says what each changes):

``official`` (the default)
    The authors' script ``uci_regression/uci_regression.py``, setting by setting: split ``k``
    is scikit-learn's ``train_test_split(test_size=0.2, random_state=k)``; features
    standardized as Keras' ``Normalization`` adapted on the training part; raw targets; MAE
    loss; Keras' Adam at the paper's learning rates (GmP 0.1, others 0.01); mini-batches of
    1024, shuffled every epoch; at most 5000 epochs; ``ReduceLROnPlateau(factor=0.1,
    patience=50)`` and ``EarlyStopping(patience=100, restore_best_weights=True)``, both on
    the validation MSE, and the validation data **is the test split**: the schedule, the
    stopping epoch and the weights kept are selected on the numbers then reported.
``honest-refit`` (the honest number of the book)
    Nothing is selected on the test split, and the final model trains on every training row,
    as practitioners do: (1) the learning rate of every parameterization is chosen by 3-fold
    cross-validation on the training part (scikit-learn's ``KFold(3, shuffle=True,
    random_state=k)``) over :data:`DEFAULT_LR_GRID`: a fold model trains on two folds (minus
    their validation split) and is scored by RMSE on the third; the rate with the lowest mean
    fold RMSE wins; (2) a *selection run* at that rate trains on the training part minus
    Keras' ``validation_split=0.2`` (its last 20 %: the training part is already in random
    order), with the schedule and early stopping watching that validation split: it selects
    the training length (the epochs behind the weights it keeps) and the learning-rate cuts;
    (3) the *refit* trains on the whole training part for the selected number of epochs with
    the selected cuts replayed at the same epochs
    (:func:`~gmp.experiments.uci_trainer.fit_replay`; the rule "retrain on all the data for
    the selected number of steps" is Algorithm 7.2 of Goodfellow, Bengio & Courville 2016,
    *Deep Learning*, Sec. 7.8, here counted in epochs), and is scored once on the test split.
    The selection run's test RMSE is recorded too (``no_refit_test_rmse``), for the
    decomposition only; nothing reads it.
``honest-no-refit``
    Steps (1) and (2) alone: the selection run is the final model (it trained on 64 % of the
    rows). This was the book's ``honest`` protocol before the refit.
``official-fewer-rows``, ``honest-no-refit-paper-lr``, ``honest-refit-paper-lr``
    The intermediate steps from ``official`` to ``honest-refit``, at the paper's fixed
    learning rates: the official protocol trained on the training part minus its validation
    split (still watching the test split); then watching the validation split instead; then
    refitting on every training row. With ``honest-refit`` last (the learning rate by
    cross-validation) the chain takes the official–honest gap apart
    (:func:`~gmp.experiments.uci_report.decomposition`).

The final model (and the selection run) of split ``k`` starts from the same initialization
(and shuffling seed) under every protocol, so the protocols' numbers of a split are paired.

The training itself (Keras' ``fit``, many networks at once) is
:mod:`gmp.experiments.uci_trainer`. Not reproduced: TensorFlow's random streams (the
initializations and shuffles are torch's, seeded per model) and its float64 arithmetic
(``--dtype float64`` restores it; the default float32 is faster); the rows come from the
pinned copies of :mod:`gmp.data.uci`, whose order may differ from the UCI archive's files the
script downloads, so split ``k`` holds other rows than the script's split ``k``.

Command line::

    gmp-uci --protocol official --datasets yacht --splits 2      # writes runs/uci-...json
    gmp-uci --protocol honest-refit --datasets all --splits 10 --jobs 2 --out my/uci.json
    gmp-uci ... --out my/uci.json --resume           # continue it after an interruption

The unit of work is one (data set, parameterization); each is written to the results file
(atomically) as soon as it finishes, and ``--resume`` skips the units already there, so a
killed run resumes where it stopped with identical numbers (on the same machine). The
committed files in ``results/`` are read, never written, unless a command names one with
``--replace`` (``make uci-results`` does): the new file is then written beside it as
``<name>.partial`` and renamed over it only when complete.

Reading a results file (Table 1, paired comparisons, provenance) is
:mod:`gmp.experiments.uci_report`; its names are importable from here too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.uci import DATASETS, SHAPES, UCIData, load_uci, resolve_name
from ..files import OutputError, results_target, write_json
from ..params import PAPER_LR, PARAMS, check_param, get_preset
from ..provenance import record
from . import uci_report
from .uci_report import *  # noqa: F403  (re-exported: the book reads results through here)
from .uci_report import _finite_or_inf, markdown_table
from .uci_trainer import FitConfig, build_members, fit_module, fit_replay, fit_stacked, predict

__all__ = [
    "PROTOCOLS",
    "PROTOCOL_STEPS",
    "DEFAULT_LR_GRID",
    "FORMAT_VERSION",
    "OFFICIAL_LR",
    "AUTHORS_SCRIPT",
    "UCIConfig",
    "split_indices",
    "kfold_indices",
    "validation_split",
    "keras_normalizer",
    "n_models",
    "run_unit",
    "run_dataset",
    "run",
    "provenance",
    "load_results",
    "main",
    *uci_report.__all__,
]

#: For each protocol, what the schedule and early stopping watch, where the learning rate
#: comes from and what the final model trains on. In the order of the decomposition;
#: ``honest-refit`` is the book's honest number, ``honest-no-refit`` the earlier one.
PROTOCOL_STEPS: dict[str, tuple[str, str, str]] = {
    "official": ("test", "paper", "train"),
    "official-fewer-rows": ("test", "paper", "train minus validation split"),
    "honest-no-refit-paper-lr": ("validation split", "paper", "train minus validation split"),
    "honest-refit-paper-lr": ("validation split", "paper", "train (refit)"),
    "honest-refit": ("validation split", "cross-validation", "train (refit)"),
    "honest-no-refit": ("validation split", "cross-validation",
                        "train minus validation split"),
}
PROTOCOLS = tuple(PROTOCOL_STEPS)
#: Names of files written before the protocols were named after what they are.
_OLD_PROTOCOLS = {("honest", "cv"): "honest-no-refit",
                  ("honest", "paper"): "honest-no-refit-paper-lr"}
#: Learning rates the honest protocol's cross-validation chooses from, the decade grid
#: around the paper's choices (0.01 for SP/WN/BN and 0.1 for GmP, Sec. 4.1).
DEFAULT_LR_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1)
#: Fixed learning rates of the authors' script (the paper's).
OFFICIAL_LR: dict[str, float] = dict(PAPER_LR)
#: The settings of the authors' ``uci_regression.py``, as written there (its names).
AUTHORS_SCRIPT: dict[str, object] = {
    "units": 100, "n_epochs": 5000, "batch_size": 1024, "early_stop_patience": 100,
    "lr_decay_patience": 50, "lr_decay_factor": 0.1, "lr_decay_min_delta": 1e-4,
    "lr_gmp": 0.1, "lr_others": 0.01, "loss": "mean_absolute_error",
    "monitor": "val_mean_squared_error", "validation_data": "test", "test_size": 0.2,
    "adam_epsilon": 1e-7, "networks": "authors",
}
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Version of the results file's layout. Version 3 names the parameterizations ``params`` and
#: the provenance record ``provenance``; version 2 said ``methods`` and ``created``.
FORMAT_VERSION = 3
_KERAS_EPSILON = 1e-7      # keras.backend.epsilon(): Normalization's smallest scale


@dataclass(frozen=True)
class UCIConfig:
    """Settings of one benchmark run (defaults: the authors' script; see the module docstring).

    Attributes:
        protocol: one of ``PROTOCOLS`` (default ``"official"``: the authors' script).
        splits: number of random 80/20 splits (split ``k`` is ``random_state=k``).
        params: parameterizations to run.
        preset: network preset of :mod:`gmp.params` (``"authors"``; others are variants).
        hidden: hidden units.
        test_fraction: test share of every split.
        val_fraction: all but ``official``: Keras' ``validation_split`` of every model's rows.
        folds: cross-validation folds for the learning rate (``honest-refit``,
            ``honest-no-refit``).
        lr_grid: learning rates cross-validation chooses from (same protocols).
        max_epochs, patience, batch_size, loss: Keras' ``fit``
            (:class:`~gmp.experiments.uci_trainer.FitConfig`); the plateau patience is
            ``patience // 2``, as in the script.
        dtype: ``"float32"`` or ``"float64"`` (the script's).
        max_rows: members × rows trained in one stacked computation (speed and memory only).
    """

    protocol: str = "official"
    splits: int = 10
    params: tuple[str, ...] = PARAMS
    preset: str = "authors"
    hidden: int = 100
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    folds: int = 3
    lr_grid: tuple[float, ...] = DEFAULT_LR_GRID
    max_epochs: int = 5000
    patience: int = 100
    batch_size: int = 1024
    loss: str = "mae"
    dtype: str = "float32"
    max_rows: int = 1 << 16

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; expected one of {PROTOCOLS}")
        object.__setattr__(self, "params", tuple(check_param(m) for m in self.params))
        if not self.params:
            raise ValueError("params must name at least one of " + ", ".join(PARAMS))
        get_preset(self.preset)
        if self.splits < 1:
            raise ValueError(f"splits must be >= 1, got {self.splits}")
        if not 0 < self.test_fraction < 1 or not 0 < self.val_fraction < 1:
            raise ValueError("test_fraction and val_fraction must lie in (0, 1), got "
                             f"{self.test_fraction}, {self.val_fraction}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")
        grid = tuple(float(v) for v in self.lr_grid)
        if not grid or any(not (v > 0 and math.isfinite(v)) for v in grid):
            raise ValueError(f"lr_grid must hold positive learning rates, got {self.lr_grid}")
        object.__setattr__(self, "lr_grid", tuple(sorted(set(grid))))
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {tuple(_DTYPES)}, got {self.dtype!r}")
        if self.hidden < 2 or self.max_rows < 1:
            raise ValueError(f"hidden must be >= 2 and max_rows >= 1, got {self.hidden}, "
                             f"{self.max_rows}")
        self.fit_config()                      # validates the training settings

    @property
    def monitor(self) -> str:
        return PROTOCOL_STEPS[self.protocol][0]

    @property
    def lr_by_cv(self) -> bool:
        return PROTOCOL_STEPS[self.protocol][1] == "cross-validation"

    @property
    def refit(self) -> bool:
        return PROTOCOL_STEPS[self.protocol][2] == "train (refit)"

    def fit_config(self) -> FitConfig:
        return FitConfig(max_epochs=self.max_epochs, patience=self.patience,
                         batch_size=self.batch_size, loss=self.loss)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["params"], d["lr_grid"] = list(self.params), list(self.lr_grid)
        d["monitor"] = "test" if self.monitor == "test" else "validation_split"
        if not self.lr_by_cv:
            d["lr"] = {m: OFFICIAL_LR[m] for m in self.params}
            del d["lr_grid"], d["folds"]
        if self.protocol == "official":
            del d["val_fraction"]
        d["final_rows"] = PROTOCOL_STEPS[self.protocol][2]
        if self.refit:
            d["refit"] = "selected epochs, learning-rate cuts replayed"
        del d["max_rows"]            # does not affect results
        return d


# ---------------------------------------------------------------- splits, as the script's tools

def split_indices(n_rows: int, split: int, test_fraction: float = 0.2
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` row indices of split ``split``, in the order scikit-learn's
    ``train_test_split(test_size=test_fraction, random_state=split)`` returns them: a
    ``RandomState(split).permutation``, the first ``ceil(test_fraction·N)`` rows are the test
    part."""
    n_test = int(math.ceil(test_fraction * n_rows))
    if not 0 < n_test < n_rows:
        raise ValueError(f"test_fraction {test_fraction} leaves no train or test rows of {n_rows}")
    perm = np.random.RandomState(split).permutation(n_rows)
    return perm[n_test:], perm[:n_test]


def kfold_indices(n: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(rest, held)`` positions of scikit-learn's ``KFold(folds, shuffle=True,
    random_state=seed).split(range(n))``: ``RandomState(seed)`` shuffles ``0..n-1``, the
    first ``n % folds`` folds get one position more, and both parts are in ascending order."""
    if not 2 <= folds <= n:
        raise ValueError(f"need 2 <= folds <= {n}, got {folds}")
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    sizes = np.full(folds, n // folds)
    sizes[: n % folds] += 1
    out, start = [], 0
    for size in sizes:
        held = np.zeros(n, dtype=bool)
        held[order[start:start + size]] = True
        out.append((np.flatnonzero(~held), np.flatnonzero(held)))
        start += size
    return out


def validation_split(rows: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """``(fit, val)`` as Keras' ``fit(validation_split=fraction)`` cuts ``rows``
    (``train_validation_split``): the first ``floor(len·(1 - fraction))`` rows are trained
    on, the rest validate."""
    at = int(math.floor(len(rows) * (1.0 - fraction)))
    if not 0 < at < len(rows):
        raise ValueError(f"validation split {fraction} leaves no fit or validation rows of "
                         f"{len(rows)}")
    return rows[:at], rows[at:]


def keras_normalizer(X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` of Keras' ``Normalization`` adapted on ``X[rows]``:
    ``(x - mean) / max(sqrt(var), 1e-7)`` with the population variance (a constant column,
    Naval has two, becomes 0)."""
    mean, var = X[rows].mean(axis=0), X[rows].var(axis=0)
    return mean, np.maximum(np.sqrt(var), _KERAS_EPSILON)


@dataclass
class _Task:
    """One model to train (once per learning rate): row indices into the data set."""

    split: int
    fold: int              # -1: the final model of the split
    fit: np.ndarray
    val: np.ndarray        # what the schedule and early stopping watch
    score: np.ndarray      # what the trained model is scored on (RMSE)
    seen: np.ndarray       # what the normalizer is adapted on
    lrs: tuple[float, ...]
    #: a refit: (epochs, learning-rate cuts) to replay; ``val`` is then empty
    replay: tuple[int, tuple[int, ...]] | None = None


# Seed roles. The final model of split k has the same initialization under both protocols
# (and the same shuffling seed), so the two protocols' numbers of a split are paired.
_CV, _FINAL = 0, 1


def _seed(*key: int) -> int:
    return int(np.random.SeedSequence([20240521, 7, *key]).generate_state(1)[0])


def _train_tasks(data: UCIData, tasks: list[_Task], param: str, cfg: UCIConfig,
                 ds_index: int, role: int, trainer: str, bar) -> list[dict]:
    """Train every (task, learning rate); per model: RMSE on its score rows and epochs.

    Models whose fit and validation parts have the same sizes train as one stack (Keras'
    mini-batches need equal sizes), ``max_rows`` rows of members at a time. The learning
    rates of one task share its initialization and shuffling seed (common random numbers)."""
    if trainer not in ("stacked", "module"):
        raise ValueError(f"unknown trainer {trainer!r}; expected 'stacked' or 'module'")
    dtype = _DTYPES[cfg.dtype]
    fcfg = cfg.fit_config()
    mi = PARAMS.index(param)
    members = [(t, lr) for t in tasks for lr in t.lrs]
    groups: dict[tuple[int, int], list] = {}
    for t, lr in members:
        groups.setdefault((len(t.fit), len(t.val), t.replay is None), []).append((t, lr))
    results: dict[tuple[int, int, float], dict] = {}
    for t in tasks:
        if t.replay is not None and len(t.val):
            raise ValueError("a refit task watches no rows")
    for (n_fit, _, _), group in groups.items():
        chunk = max(1, cfg.max_rows // n_fit)
        for start in range(0, len(group), chunk):
            part = group[start:start + chunk]
            xs = {k: [] for k in ("xf", "yf", "xv", "yv", "xs")}
            for t, _ in part:
                mean, scale = keras_normalizer(data.X, t.seen)
                for rows, into in ((t.fit, "xf"), (t.val, "xv"), (t.score, "xs")):
                    xs[into].append((data.X[rows] - mean) / scale)
                xs["yf"].append(data.y[t.fit])
                xs["yv"].append(data.y[t.val])
            init = [_seed(ds_index, t.split, role, t.fold + 1, mi) for t, _ in part]
            shuffle = [_seed(ds_index, t.split, role, t.fold + 1, mi, 1) for t, _ in part]
            models = build_members(param, data.X.shape[1], init, cfg.hidden, cfg.preset, dtype)
            T = {k: torch.as_tensor(np.stack(v), dtype=dtype) for k, v in xs.items()
                 if k != "xs"}
            lrs = [lr for _, lr in part]
            replay = part[0][0].replay is not None
            if replay:
                res = fit_replay(models, T["xf"], T["yf"], lrs, fcfg, shuffle,
                                 [t.replay[0] for t, _ in part],
                                 [t.replay[1] for t, _ in part])
            elif trainer == "stacked":
                res = fit_stacked(models, T["xf"], T["yf"], T["xv"], T["yv"], lrs, fcfg,
                                  shuffle)
            if replay or trainer == "stacked":
                width = max(len(a) for a in xs["xs"])      # score rows may differ by one
                pad = np.zeros((len(part), width, data.X.shape[1]))
                for i, a in enumerate(xs["xs"]):
                    pad[i, :len(a)] = a
                pred = predict(res.net, torch.as_tensor(pad, dtype=dtype))
                outs = [pred[i, :len(a)] for i, a in enumerate(xs["xs"])]
                stats = [(int(res.best_epoch[i]), int(res.epochs_run[i]),
                          bool(res.stopped_early[i]), int(res.selected_epochs[i]),
                          res.drops_before(i)) for i in range(len(part))]
            else:
                outs, stats = [], []
                for i, m in enumerate(models):
                    r = fit_module(m, T["xf"][i], T["yf"][i], T["xv"][i], T["yv"][i], lrs[i],
                                   fcfg, shuffle[i])
                    outs.append(predict(r.net, torch.as_tensor(xs["xs"][i], dtype=dtype)[None])[0])
                    stats.append((int(r.best_epoch[0]), int(r.epochs_run[0]),
                                  bool(r.stopped_early[0]), int(r.selected_epochs[0]),
                                  r.drops_before(0)))
            for (t, lr), out, (best, epochs, early, sel, cuts) in zip(part, outs, stats,
                                                                      strict=True):
                err = out.double().numpy() - data.y[t.score]
                results[(t.split, t.fold, lr)] = {
                    "split": t.split, "fold": t.fold, "lr": lr,
                    "rmse": float(np.sqrt(np.mean(err * err))),
                    "best_epoch": best, "epochs": epochs, "stopped_early": early,
                    "selected_epochs": sel, "lr_drops": cuts}
            if bar is not None:
                bar.update(len(part))
    return [results[(t.split, t.fold, lr)] for t, lr in members]


def n_models(cfg: UCIConfig) -> int:
    """Models trained per (data set, param)."""
    n = cfg.splits * (2 if cfg.refit else 1)
    if cfg.lr_by_cv:
        n += cfg.splits * cfg.folds * len(cfg.lr_grid)
    return n


def _entry(r: dict) -> dict:
    return {"split": r["split"], "lr": r["lr"], "test_rmse": r["rmse"],
            "best_epoch": r["best_epoch"], "epochs": r["epochs"],
            "stopped_early": r["stopped_early"]}


def run_unit(data: UCIData, param: str, cfg: UCIConfig, *, trainer: str = "stacked",
             bar=None) -> dict:
    """One parameterization on one data set: every split of the protocol; returns the
    JSON-ready entry ``{"test_rmse_mean", "test_rmse_std", "splits": [...], "wall_s"}``
    (``test_rmse_std``: sample standard deviation over the splits, ``ddof=1``).

    A refit protocol's split entry describes the refit (``epochs`` trained, the replayed
    ``lr_drops``) and its selection run (``selection``: ``best_epoch``, ``epochs``,
    ``stopped_early``; ``no_refit_test_rmse``, that run's test RMSE)."""
    param = check_param(param)
    ds_index = list(DATASETS).index(data.name) if data.name in DATASETS else 99
    N = len(data.y)
    t0 = time.perf_counter()
    parts = {k: split_indices(N, k, cfg.test_fraction) for k in range(cfg.splits)}
    cv_tasks = []
    if cfg.lr_by_cv:
        for k, (train, _) in parts.items():
            for f, (rest, held) in enumerate(kfold_indices(len(train), cfg.folds, k)):
                fit, val = validation_split(train[rest], cfg.val_fraction)
                cv_tasks.append(_Task(k, f, fit, val, train[held], train[rest], cfg.lr_grid))
    cv = _train_tasks(data, cv_tasks, param, cfg, ds_index, _CV, trainer, bar)
    tables: dict[int, tuple | None] = {}
    final_tasks = []
    for k, (train, test) in parts.items():
        if cfg.lr_by_cv:
            mine = [r for r in cv if r["split"] == k]
            table = {lr: float(np.mean([r["rmse"] for r in mine if r["lr"] == lr]))
                     for lr in cfg.lr_grid}
            best_lr = min(cfg.lr_grid, key=lambda lr: (_finite_or_inf(table[lr]), lr))
            tables[k] = (table, mine)
        else:
            best_lr, tables[k] = OFFICIAL_LR[param], None
        if cfg.protocol == "official":
            final_tasks.append(_Task(k, -1, train, test, test, train, (best_lr,)))
            continue
        fit, val = validation_split(train, cfg.val_fraction)
        watch = test if cfg.monitor == "test" else val
        final_tasks.append(_Task(k, -1, fit, watch, test, train, (best_lr,)))
    out = {}
    for r in _train_tasks(data, final_tasks, param, cfg, ds_index, _FINAL, trainer, bar):
        entry = _entry(r)
        if tables[r["split"]] is not None:
            table, mine = tables[r["split"]]
            entry |= {"cv_rmse": {f"{lr:g}": v for lr, v in table.items()},
                      "cv_models": len(mine),
                      "cv_stopped_early": sum(c["stopped_early"] for c in mine),
                      "cv_epochs_max": max(c["epochs"] for c in mine)}
        out[r["split"]] = (entry, r)
    if cfg.refit:
        # the refit: every training row, the selection run's epochs and learning-rate cuts,
        # the same initialization and shuffling seed; nothing watched
        empty = np.zeros(0, dtype=np.int64)
        refits = [_Task(k, -1, parts[k][0], empty, parts[k][1], parts[k][0], (r["lr"],),
                        replay=(r["selected_epochs"], tuple(r["lr_drops"])))
                  for k, (_, r) in sorted(out.items())]
        for r in _train_tasks(data, refits, param, cfg, ds_index, _FINAL, trainer, bar):
            entry, sel = out[r["split"]]
            selection = {key: entry.pop(key) for key in ("best_epoch", "epochs",
                                                         "stopped_early")}
            no_refit = entry.pop("test_rmse")
            entry |= {"test_rmse": r["rmse"], "epochs": r["epochs"],
                      "lr_drops": list(sel["lr_drops"]), "selection": selection,
                      "no_refit_test_rmse": no_refit}
    rows = [out[k][0] for k in sorted(out)]
    rm = np.array([r["test_rmse"] for r in rows], dtype=np.float64)
    return {"test_rmse_mean": float(np.mean(rm)),
            "test_rmse_std": float(np.std(rm, ddof=1)) if len(rm) > 1 else 0.0,
            "splits": rows, "wall_s": round(time.perf_counter() - t0, 2)}


def run_dataset(name: str, cfg: UCIConfig, *, data: UCIData | None = None,
                trainer: str = "stacked", bar=None) -> dict:
    """Every param of ``cfg`` on one data set: ``{"n_rows", "n_features", "params",
    "wall_s"}`` (``data`` replaces loading ``name``, for tests)."""
    if data is None:
        data = load_uci(resolve_name(name))
    params = {m: run_unit(data, m, cfg, trainer=trainer, bar=bar) for m in cfg.params}
    return {"n_rows": len(data.y), "n_features": int(data.X.shape[1]), "params": params,
            "wall_s": round(sum(m["wall_s"] for m in params.values()), 2)}


# ---------------------------------------------------------------- provenance and files

def provenance(argv: Sequence[str] | None = None, out: str | Path | None = None) -> dict:
    """The :func:`gmp.provenance.record` of this run: ``argv`` (the arguments after
    ``gmp-uci``; default ``sys.argv[1:]``) and the git dirty flag not counting the results
    file ``out``."""
    return record(["gmp-uci", *(sys.argv[1:] if argv is None else argv)], ignore=out)


def load_results(path: str | Path) -> dict:
    """The results file at ``path`` (written by :func:`run`), in the current layout
    (:data:`FORMAT_VERSION`); a version-2 file is read with its keys renamed.

    Raises ``ValueError`` naming the problem when the file is not JSON or not a ``gmp-uci``
    results file.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("datasets"), dict) \
            or not isinstance(doc.get("config"), dict) \
            or doc.get("format") not in (2, FORMAT_VERSION):
        raise ValueError(f"{path} is not a gmp-uci results file (no 'format' 2 or "
                         f"{FORMAT_VERSION}, 'config' and 'datasets')")
    if doc.get("protocol") == "honest":      # before the protocols were named as they are
        c = doc["config"]
        doc["protocol"] = _OLD_PROTOCOLS[("honest", c.get("lr_choice", "cv"))]
        c.pop("lr_choice", None)
        c["protocol"] = doc["protocol"]
        c["final_rows"] = PROTOCOL_STEPS[doc["protocol"]][2]
    elif doc.get("protocol") == "official":
        doc["config"].setdefault("final_rows", "train")
    if doc.get("format") == 2:
        doc["format"] = 3
        doc["provenance"] = doc.pop("created")
        doc["config"]["params"] = doc["config"].pop("methods")
        for ds in doc["datasets"].values():
            ds["params"] = ds.pop("methods")
    return doc


def recognise_results(path: Path) -> str | None:
    """``None`` if ``path`` is a ``gmp-uci`` results file, else why not (for
    :func:`gmp.files.results_target`)."""
    try:
        load_results(path)
    except (ValueError, OSError) as e:
        return str(e)
    return None


def _worker_init(threads: int, parent: int) -> None:
    """Set-up of a :func:`run` worker process (``jobs > 1``): its threads, and a watchdog
    that ends it when the process ``parent`` that started it is gone (killed, even by
    SIGKILL), so that no worker trains on as an orphan."""
    torch.set_num_threads(threads)
    _tune_malloc()
    watch_parent(parent)


def watch_parent(parent: int, interval: float = 0.5) -> None:
    """End this process (exit status 1) within about ``interval`` seconds of its parent
    process ``parent`` ending: a daemon thread compares ``os.getppid()`` with ``parent``
    (an orphan is adopted by another process)."""
    import threading
    import time as _time

    def watch() -> None:
        while os.getppid() == parent:
            _time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="gmp-watch-parent", daemon=True).start()


def _worker(name: str, param: str, cfg: UCIConfig, trainer: str) -> dict:
    return run_unit(load_uci(name), param, cfg, trainer=trainer)


def _cost(name: str, param: str) -> float:
    """Rough relative cost of a unit, to start the longest first."""
    rows, feats = SHAPES.get(name, (1, 1))
    return rows * (feats + 20) * (1.5 if param in ("bn", "gmp") else 1.0)


def run(datasets: Sequence[str], cfg: UCIConfig, out: str | Path | None = None, *,
        argv: Sequence[str] | None = None, progress: bool = True, trainer: str = "stacked",
        jobs: int = 1) -> dict:
    """Run every (data set, param) of ``datasets`` × ``cfg.params`` and (if ``out``)
    write the results file after each one.

    An existing ``out`` written with the same configuration is resumed: the units already in
    it are skipped. A file with another configuration raises ``ValueError``.

    With ``jobs > 1`` the units run in that many worker processes (each with this process's
    torch thread count; the costliest start first) and this process writes each result as it
    arrives. A unit's numbers do not depend on ``jobs`` or on the order: each is computed
    from its own seeds, in one process.
    """
    from tqdm.auto import tqdm

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    names = [resolve_name(d) for d in datasets]
    path = Path(out) if out is not None else None
    results = {"format": FORMAT_VERSION, "protocol": cfg.protocol, "config": cfg.to_dict(),
               "provenance": provenance(argv, path), "datasets": {}}
    if path is not None and path.exists():
        old = load_results(path)
        if old.get("config") != results["config"] or old.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path} holds results of a different configuration "
                             f"({old.get('config')}); use another --out, or --replace")
        results = old
    todo = [(n, m) for n in names for m in cfg.params
            if m not in results["datasets"].get(n, {}).get("params", {})]
    data: dict[str, UCIData] = {}

    def save(name: str, param: str, entry: dict) -> None:
        entry["run"] = provenance(argv, path) | {"jobs": jobs}
        if name not in data:
            data[name] = load_uci(name)
        ds = results["datasets"].setdefault(name, {
            "n_rows": len(data[name].y), "n_features": int(data[name].X.shape[1]),
            "params": {}})
        ds["params"][param] = entry
        ds["params"] = {m: ds["params"][m] for m in PARAMS if m in ds["params"]}
        ds["wall_s"] = round(sum(e["wall_s"] for e in ds["params"].values()), 2)
        ds["run"] = entry["run"]
        if path is not None:
            write_json(path, results)

    with tqdm(total=n_models(cfg) * len(todo), desc=f"UCI {cfg.protocol}", unit="model",
              disable=not progress, dynamic_ncols=True) as bar:
        if jobs == 1 or len(todo) < 2:
            for name, param in todo:
                bar.set_postfix_str(f"{name} {param}")
                if name not in data:
                    data[name] = load_uci(name)
                save(name, param, run_unit(data[name], param, cfg, trainer=trainer,
                                            bar=bar))
            return results
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        costliest_first = sorted(todo, key=lambda u: -_cost(*u))
        bar.set_postfix_str(f"{len(todo)} units in {min(jobs, len(todo))} processes")
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)),
                                 mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init,
                                 initargs=(torch.get_num_threads(), os.getpid())) as pool:
            futures = {pool.submit(_worker, n, m, cfg, trainer): (n, m)
                       for n, m in costliest_first}
            for fut in as_completed(futures):
                name, param = futures[fut]
                save(name, param, fut.result())
                bar.update(n_models(cfg))
                bar.set_postfix_str(f"{name} {param} done")
    return results


# ---------------------------------------------------------------- CLI

def _parser() -> argparse.ArgumentParser:
    d = UCIConfig()
    p = argparse.ArgumentParser(
        prog="gmp-uci", description="UCI regression benchmark (Table 1 of Chen & Ge 2024).")
    p.add_argument("--protocol", choices=(*PROTOCOLS, "honest"), default="official",
                   metavar="{" + ",".join(PROTOCOLS) + "}",
                   help="official (default): the authors' script, which selects on the test "
                   "split; honest-refit: learning rate, schedule and training length chosen "
                   "on the training part, then refit on all of it; the others are the steps "
                   "between (see gmp.experiments.uci)")
    p.add_argument("--datasets", default="all",
                   help="'all' or a comma-separated list of: " + ", ".join(DATASETS))
    p.add_argument("--splits", type=int, default=d.splits, help="random 80/20 splits")
    p.add_argument("--out", default=None,
                   help="results JSON (default: a new file runs/uci-PROTOCOL-TIME.json); "
                   "an existing file is written only with --resume or --replace")
    p.add_argument("--resume", action="store_true",
                   help="continue the results file --out (or, with --replace, its unfinished "
                   "replacement): the units already in it are kept, the others trained")
    p.add_argument("--replace", action="store_true",
                   help="write a new --out in place of an existing one (e.g. a committed "
                   "file in results/): the run writes OUT.partial, renamed over OUT only "
                   "when complete")
    p.add_argument("--params", default=",".join(PARAMS), help="comma-separated subset of "
                   + ", ".join(PARAMS))
    # the flag's name before the rename to "param", so that recorded commands still run
    p.add_argument("--methods", dest="params", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--preset", default=d.preset, help="network preset (gmp.params)")
    p.add_argument("--folds", type=int, default=d.folds, help="CV folds (honest)")
    p.add_argument("--lr-grid", default=",".join(f"{v:g}" for v in DEFAULT_LR_GRID),
                   help="comma-separated learning rates for CV (honest)")
    # the protocol "honest" of earlier files, so that their recorded commands still run
    p.add_argument("--lr-choice", choices=("cv", "paper"), default="cv",
                   help=argparse.SUPPRESS)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="Keras validation_split of every model's rows (honest)")
    p.add_argument("--max-epochs", type=int, default=d.max_epochs)
    p.add_argument("--patience", type=int, default=d.patience,
                   help="early-stopping patience (the plateau's is half)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--hidden", type=int, default=d.hidden, help="hidden units")
    p.add_argument("--dtype", choices=tuple(_DTYPES), default=d.dtype)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per process (default: torch's; with --jobs, the "
                   "cores divided among the processes)")
    p.add_argument("--jobs", type=int, default=1,
                   help="(data set, param) units trained in parallel processes (each with "
                        "--threads threads); on a small CPU, --jobs 2 --threads 1 is fastest")
    p.add_argument("--max-rows", type=int, default=d.max_rows,
                   help="members × rows per stacked computation (speed/memory only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _csv(s: str, what: str) -> list[str]:
    """The items of a comma-separated list; an empty list or a repeated item is an error."""
    items = [t.strip() for t in s.split(",") if t.strip()]
    if not items:
        raise ValueError(f"{what} is empty")
    return _unique(items, what)


def _unique(items: list[str], what: str) -> list[str]:
    seen = sorted(v for v, k in Counter(items).items() if k > 1)
    if seen:
        raise ValueError(f"{what} names {', '.join(seen)} more than once")
    return items


def default_out(protocol: str) -> Path:
    """A new results file under ``runs/`` (ignored by git), named by protocol and time:
    committed files in ``results/`` are written only when asked (``--out`` with
    ``--replace``)."""
    import datetime as _dt

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"uci-{protocol}-{stamp}.json"


def _tune_malloc() -> None:
    """Keep freed tensor memory in the process (glibc): without this, every large temporary
    is a fresh ``mmap`` and its page faults cost about a third of the run time."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)     # M_MMAP_THRESHOLD: heap up to 32 MiB blocks
        libc.mallopt(-1, 1 << 31)      # M_TRIM_THRESHOLD: do not give the heap back eagerly
        libc.mallopt(-2, 128 << 20)    # M_TOP_PAD
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``gmp-uci``; returns the exit status.

    Everything that can be checked is checked before the first unit trains: the arguments,
    the data files, and the results file (writable, not held by another run, and written
    only with ``--resume`` or ``--replace`` when it exists); each failure is one line,
    ``gmp-uci: error: ...``, and exit status 2.
    """
    args = _parser().parse_args(argv)
    _tune_malloc()
    try:
        datasets = (list(DATASETS) if args.datasets.strip().lower() == "all"
                    else _csv(args.datasets, "--datasets"))
        datasets = _unique([resolve_name(d) for d in datasets], "--datasets")
        protocol = args.protocol
        if protocol == "honest":
            protocol = _OLD_PROTOCOLS[("honest", args.lr_choice)]
        elif args.lr_choice != "cv":
            raise ValueError("--lr-choice belongs to the old protocol 'honest'; name the "
                             "protocol instead (e.g. honest-refit-paper-lr)")
        cfg = UCIConfig(protocol=protocol, splits=args.splits,
                        params=tuple(_csv(args.params, "--params")), preset=args.preset,
                        hidden=args.hidden, folds=args.folds, val_fraction=args.val_fraction,
                        lr_grid=tuple(float(v) for v in _csv(args.lr_grid, "--lr-grid")),
                        max_epochs=args.max_epochs, patience=args.patience,
                        batch_size=args.batch_size, dtype=args.dtype, max_rows=args.max_rows)
        threads = args.threads
        if threads is None and args.jobs > 1:     # share the cores among the processes
            threads = max(1, (os.cpu_count() or 1) // args.jobs)
        if threads is not None:
            if threads < 1:
                raise ValueError(f"--threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        if args.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
        for name in datasets:                 # every data file found before any work
            load_uci(name)
        out = Path(args.out) if args.out else default_out(protocol)
        with results_target(out, recognise=recognise_results, resume=args.resume,
                            replace=args.replace) as target:
            if target.replacing:
                print(f"gmp-uci: replacing {target.path} (writing {target.work} until the "
                      "run is complete)", file=sys.stderr)
            results = run(datasets, cfg, target.work,
                          argv=sys.argv[1:] if argv is None else argv,
                          progress=not args.quiet, jobs=args.jobs)
            target.finish()
    except (ValueError, OSError, OutputError) as e:
        print(f"gmp-uci: error: {e}", file=sys.stderr)
        return 2
    print(markdown_table(results))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

