"""The batched engine vs one model at a time, on the same UCI work, in one run.

Runs a UCI protocol (default honest-no-refit: cross-validation over a learning-rate grid,
then the final model) on one data set for a few splits twice: with
:func:`gmp.experiments.fit.fit` (the members of a phase stacked) and with
:func:`~gmp.experiments.fit.fit_module` (each member alone as a ``gmp.baselines``
module). Same initializations, data and protocol, so the results must agree: the script
prints the speed ratio and checks the agreement (chosen learning rates, epochs, test RMSE).

    GMP_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/uci_speed.py
    ... --dataset concrete --splits 2 --max-epochs 300 --dtype float64 --threads 2

In float64 both engines agree to rounding (same epochs, same learning rates). In float32
the stacked and the per-model kernels round differently, and a near-tie between two epochs
(or two learning rates) can then be resolved differently; the RMSEs still agree within the
tolerance, and the script lists every such case instead of hiding it.
"""

from __future__ import annotations

import argparse
import time

import torch

from gmp.experiments.fit import ENGINES
from gmp.experiments.uci_protocol import PROTOCOLS, UCIConfig
from gmp.experiments.uci_runner import n_models, run_dataset
from gmp.params import PARAMS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="boston")
    p.add_argument("--protocol", choices=tuple(PROTOCOLS), default="honest-no-refit")
    p.add_argument("--splits", type=int, default=2)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--lr-grid", default="0.001,0.01,0.1")
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=100)
    p.add_argument("--params", default=",".join(PARAMS))
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rtol", type=float, default=None,
                   help="relative tolerance on RMSEs (default 1e-6 float64, 2e-2 float32)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = UCIConfig(protocol=PROTOCOLS[args.protocol], splits=args.splits, folds=args.folds,
                    params=tuple(args.params.split(",")),
                    lr_grid=tuple(float(v) for v in args.lr_grid.split(",")),
                    max_epochs=args.max_epochs, patience=args.patience, dtype=args.dtype)
    rtol = args.rtol if args.rtol is not None else (1e-6 if args.dtype == "float64" else 2e-2)
    models = n_models(cfg) * len(cfg.params)
    print(f"{args.dataset}, {args.protocol}: {models} models, ≤ {cfg.max_epochs} epochs, "
          f"{args.dtype}, {torch.get_num_threads()} thread(s)")
    timings, res = {}, {}
    for engine in ENGINES:
        t0 = time.perf_counter()
        res[engine] = run_dataset(args.dataset, cfg, engine=engine)
        timings[engine] = time.perf_counter() - t0
        print(f"  {engine:8s} {timings[engine]:8.1f} s")
    print(f"speed-up batched / module: {timings['module'] / timings['batched']:.1f}x")

    worst, worst_cv, notes, n = 0.0, 0.0, [], 0
    for m in cfg.params:
        for a, b in zip(res["batched"]["params"][m]["splits"],
                        res["module"]["params"][m]["splits"], strict=True):
            n += 1
            worst = max(worst, abs(a["test_rmse"] - b["test_rmse"]) / abs(b["test_rmse"]))
            for lr, v in a.get("cv_rmse", {}).items():
                worst_cv = max(worst_cv, abs(v - b["cv_rmse"][lr]) / abs(b["cv_rmse"][lr]))
            if (a["lr"], a["best_epoch"]) != (b["lr"], b["best_epoch"]):
                notes.append(f"{m} split {a['split']}: lr {a['lr']:g} vs {b['lr']:g}, best epoch "
                             f"{a['best_epoch']} vs {b['best_epoch']}, test RMSE "
                             f"{a['test_rmse']:.5f} vs {b['test_rmse']:.5f}")
    print(f"agreement over {n} final models: max relative difference of test RMSE {worst:.2e}, "
          f"of mean CV RMSE (every LR) {worst_cv:.2e}; tolerance {rtol:g}")
    print(f"{n - len(notes)}/{n} final models with the same chosen LR and best epoch")
    for line in notes:
        print("  near-tie resolved differently:", line)
    ok = max(worst, worst_cv) <= rtol and (args.dtype == "float32" or not notes)
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
