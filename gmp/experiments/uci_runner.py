"""The training of a UCI run (:mod:`gmp.experiments.uci_protocol`): every split of a
(data set, parameterization) *unit*, the units of a run in one process or a pool of worker
processes, and the results file written after each unit, from which a run resumes.

The unit of work is one (data set, parameterization); each is written to the results file
(atomically) as soon as it finishes, and a run on an existing file with the same
configuration skips the units already there, so a killed run resumes where it stopped with
identical numbers (on the same machine). The final model (and the selection run) of split
``k`` starts from the same initialization (and shuffling seed) under every protocol, so the
protocols' numbers of a split are paired.

The training itself is the one Keras ``fit`` loop of :mod:`gmp.experiments.fit`, as the
authors' script calls it (the mean absolute error, mini-batches of 1,024, the mean squared
error of the monitoring rows watched; a refit is a :class:`~gmp.experiments.fit.Replay`); the
layout of the results file and its reading are
:mod:`gmp.experiments.uci_report`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..baselines import seeded_mlps
from ..data.uci import DATASETS, SHAPES, UCIData, load_uci, resolve_name
from ..files import write_json
from ..params import get_spec, seed_id
from ..params import names as param_names
from ..provenance import record
from .fit import ENGINES, FitConfig, Replay, fit, fit_module, predict
from .uci_protocol import (
    OFFICIAL_LR,
    UCIConfig,
    keras_normalizer,
    kfold_indices,
    split_indices,
    validation_split,
)
from .uci_report import FORMAT_VERSION, finite_or_inf, load_results

__all__ = ["n_models", "run_unit", "run_dataset", "run", "provenance",
           "tune_malloc", "watch_parent"]



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


@dataclass(frozen=True)
class _Unit:
    """One (data set, param) of a run, with everything resolved once: its index for the
    seeds, the training settings, the engine and the progress bar."""

    data: UCIData
    param: str
    cfg: UCIConfig
    ds_index: int
    fit: FitConfig
    batched: bool
    bar: object = None


# Seed roles. The final model of split k has the same initialization under every protocol
# (and the same shuffling seed), so the protocols' numbers of a split are paired.
_CV, _FINAL = 0, 1


def _seed(*key: int) -> int:
    return int(np.random.SeedSequence([20240521, 7, *key]).generate_state(1)[0])


def _train_tasks(unit: _Unit, tasks: list[_Task], role: int) -> list[dict]:
    """Train every (task, learning rate); per model: RMSE on its score rows and epochs.

    Models whose fit and validation parts have the same sizes train as one stack (Keras'
    mini-batches need equal sizes), ``max_rows`` rows of members at a time. The learning
    rates of one task share its initialization and shuffling seed (common random numbers)."""
    data, cfg, param, fcfg = unit.data, unit.cfg, unit.param, unit.fit
    dtype = cfg.torch_dtype
    mi = seed_id(param)        # by name: a new param never moves another's seeds
    members = [(t, lr) for t in tasks for lr in t.lrs]
    groups: dict[tuple[int, int, bool], list] = {}
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
            init = [_seed(unit.ds_index, t.split, role, t.fold + 1, mi) for t, _ in part]
            shuffle = [_seed(unit.ds_index, t.split, role, t.fold + 1, mi, 1) for t, _ in part]
            models = seeded_mlps(param, data.X.shape[1], cfg.hidden, init,
                                 preset=cfg.preset, dtype=dtype)
            T = {k: torch.as_tensor(np.stack(v), dtype=dtype) for k, v in xs.items()
                 if k != "xs"}
            lrs = [lr for _, lr in part]
            # a refit replays its selection run's epochs and cuts, watching nothing
            replay = (Replay(tuple(t.replay[0] for t, _ in part),
                             tuple(t.replay[1] for t, _ in part))
                      if part[0][0].replay is not None else None)
            if unit.batched:
                watch = dict(replay=replay) if replay else dict(monitor=(T["xv"], T["yv"]))
                res = fit(models, T["xf"], T["yf"], lrs, fcfg, shuffle, **watch)
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
                    watch = (dict(replay=Replay(replay.epochs[i:i + 1],
                                                replay.lr_drops[i:i + 1])) if replay
                             else dict(monitor=(T["xv"][i], T["yv"][i])))
                    r = fit_module(m, T["xf"][i], T["yf"][i], lrs[i], fcfg, shuffle[i], **watch)
                    x_score = torch.as_tensor(xs["xs"][i], dtype=dtype)[None]
                    outs.append(predict(r.net, x_score)[0])
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
            if unit.bar is not None:
                unit.bar.update(len(part))
    return [results[(t.split, t.fold, lr)] for t, lr in members]


def n_models(cfg: UCIConfig) -> int:
    """Models trained per (data set, param)."""
    n = cfg.splits * (2 if cfg.protocol.refit else 1)
    if cfg.protocol.lr_by_cv:
        n += cfg.splits * cfg.folds * len(cfg.lr_grid)
    return n


def _entry(r: dict) -> dict:
    return {"split": r["split"], "lr": r["lr"], "test_rmse": r["rmse"],
            "best_epoch": r["best_epoch"], "epochs": r["epochs"],
            "stopped_early": r["stopped_early"]}


def run_unit(data: UCIData, param: str, cfg: UCIConfig, *, engine: str = "batched",
             bar=None) -> dict:
    """One parameterization (one of ``cfg.params``) on one data set: every split of the
    protocol; returns the JSON-ready entry ``{"test_rmse_mean", "test_rmse_std", "splits":
    [...], "wall_s"}`` (``test_rmse_std``: sample standard deviation over the splits,
    ``ddof=1``).

    A refit protocol's split entry describes the refit (``epochs`` trained, the replayed
    ``lr_drops``) and its selection run (``selection``: ``best_epoch``, ``epochs``,
    ``stopped_early``; ``no_refit_test_rmse``, that run's test RMSE)."""
    if param not in cfg.params:
        raise ValueError(f"param {param!r} is not one of the run's params {cfg.params}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    protocol = cfg.protocol
    ds_index = list(DATASETS).index(data.name) if data.name in DATASETS else 99
    unit = _Unit(data, param, cfg, ds_index, cfg.fit_config(), engine == "batched", bar)
    N = len(data.y)
    t0 = time.perf_counter()
    parts = {k: split_indices(N, k, cfg.test_fraction) for k in range(cfg.splits)}
    cv_tasks = []
    if protocol.lr_by_cv:
        for k, (train, _) in parts.items():
            for f, (rest, held) in enumerate(kfold_indices(len(train), cfg.folds, k)):
                fit, val = validation_split(train[rest], cfg.val_fraction)
                cv_tasks.append(_Task(k, f, fit, val, train[held], train[rest], cfg.lr_grid))
    cv = _train_tasks(unit, cv_tasks, _CV)
    tables: dict[int, tuple | None] = {}
    final_tasks = []
    for k, (train, test) in parts.items():
        if protocol.lr_by_cv:
            mine = [r for r in cv if r["split"] == k]
            table = {lr: float(np.mean([r["rmse"] for r in mine if r["lr"] == lr]))
                     for lr in cfg.lr_grid}
            best_lr = min(cfg.lr_grid, key=lambda lr: (finite_or_inf(table[lr]), lr))
            tables[k] = (table, mine)
        else:
            best_lr, tables[k] = OFFICIAL_LR[param], None
        if not protocol.splits_validation:
            final_tasks.append(_Task(k, -1, train, test, test, train, (best_lr,)))
            continue
        fit, val = validation_split(train, cfg.val_fraction)
        watch = test if protocol.watches_test else val
        final_tasks.append(_Task(k, -1, fit, watch, test, train, (best_lr,)))
    out = {}
    for r in _train_tasks(unit, final_tasks, _FINAL):
        entry = _entry(r)
        if tables[r["split"]] is not None:
            table, mine = tables[r["split"]]
            entry |= {"cv_rmse": {f"{lr:g}": v for lr, v in table.items()},
                      "cv_models": len(mine),
                      "cv_stopped_early": sum(c["stopped_early"] for c in mine),
                      "cv_epochs_max": max(c["epochs"] for c in mine)}
        out[r["split"]] = (entry, r)
    if protocol.refit:
        # the refit: every training row, the selection run's epochs and learning-rate cuts,
        # the same initialization and shuffling seed; nothing watched
        empty = np.zeros(0, dtype=np.int64)
        refits = [_Task(k, -1, parts[k][0], empty, parts[k][1], parts[k][0], (r["lr"],),
                        replay=(r["selected_epochs"], tuple(r["lr_drops"])))
                  for k, (_, r) in sorted(out.items())]
        for r in _train_tasks(unit, refits, _FINAL):
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
                engine: str = "batched", bar=None) -> dict:
    """Every param of ``cfg`` on one data set: ``{"n_rows", "n_features", "params",
    "wall_s"}`` (``data`` replaces loading ``name``, for tests)."""
    if data is None:
        data = load_uci(resolve_name(name))
    params = {m: run_unit(data, m, cfg, engine=engine, bar=bar) for m in cfg.params}
    return {"n_rows": len(data.y), "n_features": int(data.X.shape[1]), "params": params,
            "wall_s": round(sum(m["wall_s"] for m in params.values()), 2)}


# ---------------------------------------------------------------- provenance, processes

def provenance(argv: Sequence[str] | None = None, out: str | Path | None = None) -> dict:
    """The :func:`gmp.provenance.record` of this run: ``argv`` (the arguments after
    ``gmp-uci``; default ``sys.argv[1:]``) and the git dirty flag not counting the results
    file ``out``."""
    return record(["gmp-uci", *(sys.argv[1:] if argv is None else argv)], ignore=out)


def tune_malloc() -> None:
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


def _worker_init(threads: int, parent: int) -> None:
    """Set-up of a :func:`run` worker process (``jobs > 1``): its threads, and a watchdog
    that ends it when the process ``parent`` that started it is gone (killed, even by
    SIGKILL), so that no worker trains on as an orphan."""
    torch.set_num_threads(threads)
    tune_malloc()
    watch_parent(parent)


def watch_parent(parent: int, interval: float = 0.5) -> None:
    """End this process (exit status 1) within about ``interval`` seconds of its parent
    process ``parent`` ending: a daemon thread compares ``os.getppid()`` with ``parent``
    (an orphan is adopted by another process)."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="gmp-watch-parent", daemon=True).start()


def _worker(name: str, param: str, cfg: UCIConfig, engine: str) -> dict:
    return run_unit(load_uci(name), param, cfg, engine=engine)


def _cost(name: str, param: str) -> float:
    """Rough relative cost of a unit, to start the longest first."""
    rows, feats = SHAPES.get(name, (1, 1))
    return rows * (feats + 20) * get_spec(param).cost_factor


def run(datasets: Sequence[str], cfg: UCIConfig, out: str | Path | None = None, *,
        argv: Sequence[str] | None = None, progress: bool = True, engine: str = "batched",
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
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    names = [resolve_name(d) for d in datasets]
    path = Path(out) if out is not None else None
    results = {"format": FORMAT_VERSION, "protocol": cfg.protocol.name,
               "config": cfg.to_dict(), "provenance": provenance(argv, path), "datasets": {}}
    if path is not None and path.exists():
        old = load_results(path)
        if old.get("config") != results["config"]:
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
        ds["params"] = {m: ds["params"][m] for m in param_names() if m in ds["params"]}
        ds["wall_s"] = round(sum(e["wall_s"] for e in ds["params"].values()), 2)
        ds["run"] = entry["run"]
        if path is not None:
            write_json(path, results)

    with tqdm(total=n_models(cfg) * len(todo), desc=f"UCI {cfg.protocol.name}", unit="model",
              disable=not progress, dynamic_ncols=True) as bar:
        if jobs == 1 or len(todo) < 2:
            for name, param in todo:
                bar.set_postfix_str(f"{name} {param}")
                if name not in data:
                    data[name] = load_uci(name)
                save(name, param, run_unit(data[name], param, cfg, engine=engine,
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
            futures = {pool.submit(_worker, n, m, cfg, engine): (n, m)
                       for n, m in costliest_first}
            for fut in as_completed(futures):
                name, param = futures[fut]
                save(name, param, fut.result())
                bar.update(n_models(cfg))
                bar.set_postfix_str(f"{name} {param} done")
    return results
