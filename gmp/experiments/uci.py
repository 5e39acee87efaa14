"""UCI regression benchmark: the protocol, its runner and ``gmp-uci`` (Chen & Ge 2024,
Sec. 4.2.1, Table 1 and App. C.1).

Seven data sets × 10 random 80/20 splits × four parameterizations (SP, WN, BN, GmP) of a
one-hidden-layer MLP with 100 ReLU units, Adam. Two protocols:

``honest`` (default)
    For split ``k`` (permutation seeded by ``k``), the test part is touched once, to score
    the final model. Learning rate: for every method, ``folds``-fold cross-validation on the
    training part over ``lr_grid``; each fold model trains full batch on its fold's
    training rows minus a validation carve (``val_fraction``) that drives early stopping,
    and is scored by RMSE on the held-out fold. The LR with the lowest mean fold RMSE is
    retrained on the whole training part (again minus a validation carve for early
    stopping) and scored on the test part. Features and targets are standardized with the
    statistics of the rows the model may see (fold training rows, or the training part);
    RMSE is reported in original units. Loss MSE.
``official``
    The authors' script, reproduced as a protocol: features standardized on the training
    part, raw targets, MAE loss, batch 1024, at most 5000 epochs, LR ×0.1 after 50 epochs
    without improvement (Keras' absolute ``min_delta = 1e-4``), early stopping with
    patience 100 restoring the best weights, fixed LRs (GmP 0.1, others 0.01) — and both
    schedules monitor the MSE **on the test split**, so the reported number is selected on
    the data it is measured on. ``monitor="validation"`` keeps everything else and monitors
    a validation carve of the training part instead, isolating the effect of that choice.

Not reproduced from the script (our module versions are used instead): Keras' Adam
(ε = 1e-7) and initializers, BN's ε = 1e-3 / momentum 0.99 (torch defaults here), and the
plain linear read-out of its GmP model (here a GmP read-out, as :func:`gmp.baselines.mlp`).

Command line::

    gmp-uci --datasets all --splits 10 --out results/uci.json
    gmp-uci --datasets all --splits 10 --out results/uci.json --jobs 2 --threads 1  # 2 cores
    python -m gmp.experiments.uci --protocol official --out results/uci_official.json

Each data set's results are written (atomically) as soon as it finishes; a rerun with the
same settings skips the data sets already in the file.

Reading a results file (Table 1, per-split views, provenance) is :mod:`gmp.experiments.uci_report`;
its names are importable from here too.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..baselines import METHODS, check_method
from ..data.uci import DATASETS, SHAPES, UCIData, load_uci, resolve_name
from ..files import write_json
from ..provenance import record
from . import uci_report
from .uci_report import *  # noqa: F403  (re-exported: the book reads results through here)
from .uci_report import _finite_or_inf, markdown_table
from .uci_trainer import TrainConfig, init_params, predict, train_batched, train_loop

__all__ = [
    "PROTOCOLS",
    "DEFAULT_LR_GRID",
    "OFFICIAL_LR",
    "UCIConfig",
    "split_indices",
    "run_dataset",
    "run",
    "provenance",
    "main",
    *uci_report.__all__,
]

PROTOCOLS = ("honest", "official")
#: Learning-rate grid of the honest protocol; it brackets the paper's choices (0.01, 0.1).
DEFAULT_LR_GRID: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
#: Fixed learning rates of the authors' script.
OFFICIAL_LR: dict[str, float] = {"sp": 0.01, "wn": 0.01, "bn": 0.01, "gmp": 0.1}
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
FORMAT_VERSION = 1


@dataclass(frozen=True)
class UCIConfig:
    """Settings of one benchmark run. ``None`` fields take the protocol's default.

    Attributes:
        protocol: ``"honest"`` or ``"official"`` (module docstring).
        splits: number of random 80/20 splits (split ``k`` seeded by ``k``).
        methods: parameterizations to run.
        hidden: hidden units.
        test_fraction: test share of every split (``ceil(test_fraction·N)`` rows).
        folds: cross-validation folds (honest).
        val_fraction: share of a model's training rows carved out for early stopping (honest).
        lr_grid: learning rates tried by cross-validation (honest).
        max_epochs: epoch budget (honest default 500, official 5000).
        patience: early-stopping patience in epochs (both protocols: 100).
        batch_size: None = full batch (honest); official 1024.
        dtype: ``"float32"`` or ``"float64"``.
        max_rows: members × rows trained in one batched computation (a memory/cache knob;
            members never interact, so results change at most by rounding).
        monitor: official protocol only: ``"test"`` (the script) or ``"validation"`` (a
            ``val_fraction`` carve of the training part drives the schedules instead).
    """

    protocol: str = "honest"
    splits: int = 10
    methods: tuple[str, ...] = METHODS
    hidden: int = 100
    test_fraction: float = 0.2
    folds: int = 3
    val_fraction: float = 0.1
    lr_grid: tuple[float, ...] = DEFAULT_LR_GRID
    max_epochs: int | None = None
    patience: int = 100
    batch_size: int | None = None
    dtype: str = "float32"
    max_rows: int = 1 << 13
    monitor: str = "test"

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; expected one of {PROTOCOLS}")
        if self.monitor not in ("test", "validation"):
            raise ValueError(f"monitor must be 'test' or 'validation', got {self.monitor!r}")
        object.__setattr__(self, "methods", tuple(check_method(m) for m in self.methods))
        if not self.methods:
            raise ValueError("methods must name at least one of " + ", ".join(METHODS))
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
        if self.max_epochs is None:
            object.__setattr__(self, "max_epochs", 500 if self.protocol == "honest" else 5000)
        if self.batch_size is None and self.protocol == "official":
            object.__setattr__(self, "batch_size", 1024)
        if self.hidden < 2 or self.max_rows < 1:
            raise ValueError(f"hidden must be >= 2 and max_rows >= 1, got {self.hidden}, "
                             f"{self.max_rows}")
        TrainConfig(max_epochs=self.max_epochs, patience=self.patience,  # validates
                    batch_size=self.batch_size)

    def train_config(self) -> TrainConfig:
        if self.protocol == "official":
            return TrainConfig(max_epochs=self.max_epochs, patience=self.patience, loss="mae",
                               batch_size=self.batch_size, plateau_patience=self.patience // 2,
                               plateau_factor=0.1, plateau_min_delta=1e-4, bn_eval="running")
        return TrainConfig(max_epochs=self.max_epochs, patience=self.patience, loss="mse",
                           batch_size=self.batch_size, bn_eval="population")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["methods"], d["lr_grid"] = list(self.methods), list(self.lr_grid)
        if self.protocol == "official":
            d["lr"] = {m: OFFICIAL_LR[m] for m in self.methods}
            del d["lr_grid"], d["folds"]
            if self.monitor == "test":
                del d["val_fraction"], d["monitor"]
        else:
            del d["monitor"]
        del d["max_rows"]            # does not affect results
        return d


# ---------------------------------------------------------------- splits

def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([20240521, *key]))


def split_indices(n_rows: int, split: int, test_fraction: float = 0.2
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` row indices of split ``split`` (a permutation seeded by ``split``)."""
    perm = _rng(0, split).permutation(n_rows)
    n_test = int(math.ceil(test_fraction * n_rows))
    if not 0 < n_test < n_rows:
        raise ValueError(f"test_fraction {test_fraction} leaves no train or test rows of {n_rows}")
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _folds(train: np.ndarray, split: int, folds: int) -> list[np.ndarray]:
    perm = _rng(1, split).permutation(train)
    return [np.sort(f) for f in np.array_split(perm, folds)]


def _carve(rows: np.ndarray, frac: float, *key: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``rows`` into ``(fit, val)`` with ``ceil(frac·len)`` validation rows."""
    perm = _rng(2, *(k + 1 for k in key)).permutation(rows)
    n_val = int(math.ceil(frac * len(rows)))
    if not 0 < n_val < len(rows):
        raise ValueError(f"val_fraction {frac} leaves no fit or validation rows of {len(rows)}")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


@dataclass
class _Task:
    """One model to train (for every LR of the grid): rows are indices into the data set."""

    split: int
    fold: int              # -1: final model on the whole training part
    fit: np.ndarray
    val: np.ndarray        # monitoring rows (early stopping / plateau)
    score: np.ndarray      # rows the trained model is scored on
    seen: np.ndarray       # rows whose statistics standardize the data
    lrs: tuple[float, ...] = ()


def _standardizer(X: np.ndarray, y: np.ndarray, rows: np.ndarray, scale_y: bool):
    mu, sd = X[rows].mean(0), X[rows].std(0)
    sd = np.where(np.ptp(X[rows], axis=0) == 0, 1.0, sd)   # constant columns (Naval): → 0
    if scale_y:
        ym, ys = float(y[rows].mean()), float(y[rows].std())
        ys = ys if ys > 0 else 1.0
    else:
        ym, ys = 0.0, 1.0
    return mu, sd, ym, ys


# ---------------------------------------------------------------- training a group of tasks

def _seed(*key: int) -> int:
    return int(np.random.SeedSequence([20240521, 7, *key]).generate_state(1)[0])


def _pad(parts: list[np.ndarray], width: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Stack 1-D/2-D arrays of different lengths along a new axis 0, zero-padded, + mask."""
    n = max(len(p) for p in parts) if width is None else width
    shape = (len(parts), n) + parts[0].shape[1:]
    out = np.zeros(shape, dtype=np.float64)
    mask = np.zeros((len(parts), n), dtype=bool)
    for i, p in enumerate(parts):
        out[i, :len(p)] = p
        mask[i, :len(p)] = True
    return out, (None if mask.all() else mask)


def _train_tasks(data: UCIData, tasks: list[_Task], method: str, cfg: UCIConfig,
                 ds_index: int, role: int, trainer: str, bar) -> list[dict]:
    """Train every (task, lr) member; returns per member: rmse on its score rows, epochs."""
    tcfg = cfg.train_config()
    dtype = _DTYPES[cfg.dtype]
    X, y = data.X, data.y
    members = [(t, lr) for t in tasks for lr in t.lrs]
    n_rows = max(len(t.fit) for t in tasks)
    chunk = max(1, cfg.max_rows // n_rows)
    mi = METHODS.index(method)
    results: list[dict] = []
    for start in range(0, len(members), chunk):
        group = members[start:start + chunk]
        xf, yf, xv, yv, xs, ys_raw, stats, seeds = [], [], [], [], [], [], [], []
        for t, _ in group:
            mu, sd, ym, ysd = _standardizer(X, y, t.seen, cfg.protocol == "honest")
            xf.append((X[t.fit] - mu) / sd)
            yf.append((y[t.fit] - ym) / ysd)
            xv.append((X[t.val] - mu) / sd)
            yv.append((y[t.val] - ym) / ysd)
            xs.append((X[t.score] - mu) / sd)
            ys_raw.append(y[t.score])
            stats.append((ym, ysd))
            seeds.append(_seed(ds_index, t.split, role, t.fold + 1, mi))
        perm_seeds = [_seed(ds_index, t.split, role, t.fold + 1, mi, 1) for t, _ in group]
        lrs = [lr for _, lr in group]
        # one initialization per task, shared by its learning rates (common random numbers)
        init = init_params(method, X.shape[1], seeds, hidden=cfg.hidden, dtype=dtype)
        if trainer == "batched":
            (xf_a, fmask), (yf_a, _) = _pad(xf), _pad(yf)
            (xv_a, vmask), (yv_a, _) = _pad(xv), _pad(yv)
            T = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
            M = lambda m: None if m is None else torch.as_tensor(m)  # noqa: E731
            res = train_batched(method, init, T(xf_a), T(yf_a), T(xv_a), T(yv_a), lrs, tcfg,
                                fit_mask=M(fmask), val_mask=M(vmask), seeds=perm_seeds)
        elif trainer == "loop":
            T = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
            res = train_loop(method, init, [T(a) for a in xf], [T(a) for a in yf],
                             [T(a) for a in xv], [T(a) for a in yv], lrs, tcfg,
                             seeds=perm_seeds)
        else:
            raise ValueError(f"unknown trainer {trainer!r}; expected 'batched' or 'loop'")
        for i, (t, lr) in enumerate(group):
            pred = predict(res, torch.as_tensor(xs[i], dtype=dtype).unsqueeze(0),
                           idx=torch.tensor([i]))[0].double().numpy()
            ym, ysd = stats[i]
            err = pred * ysd + ym - ys_raw[i]
            results.append({
                "split": t.split, "fold": t.fold, "lr": lr,
                "rmse": float(np.sqrt(np.mean(err * err))),
                "best_epoch": int(res.best_epoch[i]), "stopped_epoch": int(res.stopped_epoch[i]),
            })
        if bar is not None:
            bar.update(len(group))
    return results


def _n_members(cfg: UCIConfig) -> int:
    """Models trained per method for one data set (for the progress bar)."""
    if cfg.protocol == "official":
        return cfg.splits
    return cfg.splits * (cfg.folds * len(cfg.lr_grid) + 1)


def run_dataset(name: str, cfg: UCIConfig, *, data: UCIData | None = None,
                trainer: str = "batched", bar=None) -> dict:
    """Run the benchmark on one data set; returns its JSON-ready result entry.

    Args:
        name: data set (friendly or folder name).
        cfg: settings.
        data: use these arrays instead of loading ``name`` (tests).
        trainer: ``"batched"`` (default) or ``"loop"`` (one model at a time; reference).
        bar: optional tqdm bar, advanced by one per trained model.
    """
    friendly = resolve_name(name) if data is None else data.name
    if data is None:
        data = load_uci(friendly)
    ds_index = list(DATASETS).index(friendly) if friendly in DATASETS else 99
    N = len(data.y)
    t0 = time.perf_counter()
    out: dict = {"n_rows": N, "n_features": int(data.X.shape[1]), "methods": {}}
    for method in cfg.methods:
        splits_out = []
        if cfg.protocol == "official":
            tasks = []
            for k in range(cfg.splits):
                train, test = split_indices(N, k, cfg.test_fraction)
                if cfg.monitor == "test":      # the script: schedules watch the test split
                    fit, val = train, test
                else:
                    fit, val = _carve(train, cfg.val_fraction, k, -1)
                tasks.append(_Task(k, -1, fit, val, test, train, (OFFICIAL_LR[method],)))
            for r in _train_tasks(data, tasks, method, cfg, ds_index, 2, trainer, bar):
                splits_out.append({"split": r["split"], "lr": r["lr"], "test_rmse": r["rmse"],
                                   "best_epoch": r["best_epoch"],
                                   "stopped_epoch": r["stopped_epoch"]})
        else:
            cv_tasks, parts = [], {}
            for k in range(cfg.splits):
                train, test = split_indices(N, k, cfg.test_fraction)
                parts[k] = (train, test)
                held = _folds(train, k, cfg.folds)
                for f, hold in enumerate(held):
                    rest = np.setdiff1d(train, hold)
                    fit, val = _carve(rest, cfg.val_fraction, k, f)
                    cv_tasks.append(_Task(k, f, fit, val, hold, rest, cfg.lr_grid))
            cv = _train_tasks(data, cv_tasks, method, cfg, ds_index, 0, trainer, bar)
            final_tasks, cv_table = [], {}
            for k in range(cfg.splits):
                table = {lr: float(np.mean([r["rmse"] for r in cv
                                            if r["split"] == k and r["lr"] == lr]))
                         for lr in cfg.lr_grid}
                best_lr = min(cfg.lr_grid, key=lambda lr: (_finite_or_inf(table[lr]), lr))
                cv_table[k] = table
                train, test = parts[k]
                fit, val = _carve(train, cfg.val_fraction, k, -1)
                final_tasks.append(_Task(k, -1, fit, val, test, train, (best_lr,)))
            final = _train_tasks(data, final_tasks, method, cfg, ds_index, 1, trainer, bar)
            for r in final:
                k = r["split"]
                cv_epochs = [c["best_epoch"] for c in cv if c["split"] == k and c["lr"] == r["lr"]]
                splits_out.append({
                    "split": k, "lr": r["lr"], "test_rmse": r["rmse"],
                    "best_epoch": r["best_epoch"], "stopped_epoch": r["stopped_epoch"],
                    "cv_rmse": {f"{lr:g}": v for lr, v in cv_table[k].items()},
                    "cv_best_epochs": cv_epochs,
                    # CV models of this split (all LRs) that used the whole epoch budget
                    "cv_capped": sum(c["stopped_epoch"] >= cfg.max_epochs
                                     for c in cv if c["split"] == k),
                })
        splits_out.sort(key=lambda r: r["split"])
        rm = np.array([r["test_rmse"] for r in splits_out], dtype=np.float64)
        out["methods"][method] = {
            "test_rmse_mean": float(np.mean(rm)),
            "test_rmse_std": float(np.std(rm, ddof=1)) if len(rm) > 1 else 0.0,
            "splits": splits_out,
        }
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    return out


# ---------------------------------------------------------------- provenance and files

def provenance(argv: Sequence[str] | None = None, out: str | Path | None = None) -> dict:
    """The :func:`gmp.provenance.record` of this run: ``argv`` (the arguments after
    ``gmp-uci``; default ``sys.argv[1:]``) and the git dirty flag not counting the results
    file ``out``."""
    return record(["gmp-uci", *(sys.argv[1:] if argv is None else argv)], ignore=out)


def _worker_init(threads: int) -> None:
    """Set-up of a :func:`run` worker process (``jobs > 1``)."""
    torch.set_num_threads(threads)
    _tune_malloc()


def _worker(name: str, cfg: UCIConfig, trainer: str) -> dict:
    return run_dataset(name, cfg, trainer=trainer)


def run(datasets: Sequence[str], cfg: UCIConfig, out: str | Path | None = None, *,
        argv: Sequence[str] | None = None, progress: bool = True, trainer: str = "batched",
        jobs: int = 1) -> dict:
    """Run ``datasets`` and (if ``out``) write/extend the results file after each one.

    An existing ``out`` written with the same configuration is resumed: data sets already
    in it are skipped. A file with a different configuration raises ``ValueError``.

    With ``jobs > 1`` the data sets run in that many worker processes (each with this
    process's torch thread count; the largest data sets start first) and this process writes
    each result as it arrives. A data set's numbers do not depend on ``jobs``: each is
    computed from its own seeds, in one process.
    """
    from tqdm.auto import tqdm

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    names = [resolve_name(d) for d in datasets]
    path = Path(out) if out is not None else None
    prov = provenance(argv, path)
    results = {"format": FORMAT_VERSION, "protocol": cfg.protocol, "config": cfg.to_dict(),
               "created": prov, "datasets": {}}
    if path is not None and path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} exists but is not valid JSON ({e}); move it away or "
                             "pass --overwrite") from e
        if old.get("config") != results["config"] or old.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path} holds results of a different configuration "
                             f"({old.get('config')}); use another --out or --overwrite")
        results = old
    todo = [n for n in names if n not in results["datasets"]]
    per_set = _n_members(cfg) * len(cfg.methods)

    def record(name: str, entry: dict) -> None:
        entry["run"] = provenance(argv, path)
        entry["run"]["max_rows"] = cfg.max_rows
        entry["run"]["jobs"] = jobs
        results["datasets"][name] = entry
        if path is not None:
            write_json(path, results)

    with tqdm(total=per_set * len(todo), desc="UCI", unit="model", disable=not progress,
              dynamic_ncols=True) as bar:
        if jobs == 1 or len(todo) < 2:
            for name in todo:
                bar.set_postfix_str(name)
                record(name, run_dataset(name, cfg, trainer=trainer, bar=bar))
            return results
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        largest_first = sorted(todo, key=lambda n: -math.prod(SHAPES[n]))
        bar.set_postfix_str(f"{len(todo)} data sets in {min(jobs, len(todo))} processes")
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)),
                                 mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init,
                                 initargs=(torch.get_num_threads(),)) as pool:
            futures = {pool.submit(_worker, n, cfg, trainer): n for n in largest_first}
            for fut in as_completed(futures):
                name = futures[fut]
                record(name, fut.result())
                bar.update(per_set)
                bar.set_postfix_str(f"{name} done")
    return results


# ---------------------------------------------------------------- CLI

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gmp-uci", description="UCI regression benchmark (Table 1 of Chen & Ge 2024).")
    p.add_argument("--datasets", default="all",
                   help="'all' or a comma-separated list of: " + ", ".join(DATASETS))
    p.add_argument("--splits", type=int, default=10, help="random 80/20 splits (default 10)")
    p.add_argument("--out", default="results/uci.json", help="results JSON (resumable)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="honest")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of "
                   + ", ".join(METHODS))
    p.add_argument("--folds", type=int, default=3, help="CV folds (honest)")
    p.add_argument("--lr-grid", default=",".join(f"{v:g}" for v in DEFAULT_LR_GRID),
                   help="comma-separated learning rates for CV (honest)")
    p.add_argument("--max-epochs", type=int, default=None,
                   help="epoch budget (default: honest 500, official 5000)")
    p.add_argument("--patience", type=int, default=100, help="early-stopping patience")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="validation carve for early stopping (honest)")
    p.add_argument("--monitor", choices=("test", "validation"), default="test",
                   help="official protocol: split watched by early stopping and the plateau "
                   "schedule (the script: test)")
    p.add_argument("--hidden", type=int, default=100, help="hidden units")
    p.add_argument("--dtype", choices=tuple(_DTYPES), default="float32")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--jobs", type=int, default=1,
                   help="data sets trained in parallel processes (each with --threads threads); "
                        "on a small CPU, --jobs 2 --threads 1 beats --threads 2")
    p.add_argument("--max-rows", type=int, default=1 << 13,
                   help="members × rows per batched computation (speed/memory only)")
    p.add_argument("--overwrite", action="store_true", help="start the results file afresh")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _csv(s: str) -> list[str]:
    return [t.strip() for t in s.split(",") if t.strip()]


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
    """Entry point of ``gmp-uci``; returns the exit status."""
    args = _parser().parse_args(argv)
    _tune_malloc()
    try:
        datasets = list(DATASETS) if args.datasets.strip().lower() == "all" else _csv(args.datasets)
        datasets = [resolve_name(d) for d in datasets]
        cfg = UCIConfig(protocol=args.protocol, splits=args.splits,
                        methods=tuple(_csv(args.methods)), hidden=args.hidden,
                        folds=args.folds, val_fraction=args.val_fraction,
                        lr_grid=tuple(float(v) for v in _csv(args.lr_grid)),
                        max_epochs=args.max_epochs, patience=args.patience, dtype=args.dtype,
                        max_rows=args.max_rows, monitor=args.monitor)
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        if args.overwrite and Path(args.out).exists():
            Path(args.out).unlink()
        results = run(datasets, cfg, args.out, argv=sys.argv[1:] if argv is None else argv,
                      progress=not args.quiet, jobs=args.jobs)
    except (ValueError, FileNotFoundError) as e:
        print(f"gmp-uci: error: {e}", file=sys.stderr)
        return 2
    print(markdown_table(results))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

