"""Command line: ``python -m gmp.experiments {levy,banana,uci} ...``.

Examples::

    python -m gmp.experiments levy --method gmp --seed 0
    python -m gmp.experiments banana --method all --seeds 0 1 2 3 4 --output banana.json
    python -m gmp.experiments uci ...        # handled by gmp.experiments.uci.main

``levy`` and ``banana`` train with the paper's protocol (:mod:`gmp.experiments.small`), print
a summary table (mean ± std over seeds) and optionally write every run, with the command,
git revision, date and hardware, to a JSON file.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from ..baselines import METHODS
from ..provenance import revision_string
from .small import TASKS, BananaConfig, LevyConfig, run, save_results, summarize

__all__ = ["main", "build_parser", "provenance"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gmp.experiments",
        description="Experiments of Chen & Ge (NeurIPS 2024): levy (Fig. 2), banana (Fig. 3), "
                    "uci (Table 1; see 'python -m gmp.experiments uci --help').")
    sub = parser.add_subparsers(dest="task", required=True, metavar="{levy,banana,uci}")
    for task in TASKS:
        cfg = LevyConfig() if task == "levy" else BananaConfig()
        p = sub.add_parser(task, help=f"the {task} experiment",
                           description=f"Train SP/WN/BN/GmP on {task} with the paper's protocol.")
        p.add_argument("--method", "--methods", dest="methods", nargs="+", default=["all"],
                       metavar="M", help=f"methods among {', '.join(METHODS)} or 'all' "
                                         "(default: all)")
        seeds = p.add_mutually_exclusive_group()
        seeds.add_argument("--seed", type=int, help="one seed (default 0)")
        seeds.add_argument("--seeds", type=int, nargs="+", help="several seeds, e.g. 0 1 2 3 4")
        p.add_argument("--lr", type=float, nargs="+", metavar="LR",
                       help="learning rate(s); several values run every one for every seed "
                            "(default: 0.1 for GmP, 0.01 for the others)")
        p.add_argument("--epochs", type=int, default=cfg.epochs,
                       help=f"maximum number of epochs (default {cfg.epochs})")
        p.add_argument("--hidden", type=int, default=cfg.hidden,
                       help=f"hidden units (default {cfg.hidden})")
        p.add_argument("--plateau-patience", type=int, default=cfg.plateau_patience,
                       help=f"epochs without improvement before LR ×{cfg.factor} "
                            f"(default {cfg.plateau_patience})")
        p.add_argument("--stop-patience", type=int, default=cfg.stop_patience,
                       help=f"epochs without improvement before stopping "
                            f"(default {cfg.stop_patience})")
        p.add_argument("--gmp-init", choices=("sphere", "glorot"), default=cfg.gmp_init,
                       help="GmP initialization: Remark 3.5 ('sphere', default) or the "
                            "authors' code ('glorot')")
        p.add_argument("--gmp-readout", choices=("gmp", "linear"), default=cfg.gmp_readout,
                       help="GmP output layer: GmP ('gmp', default) or plain nn.Linear "
                            "('linear', as in the authors' notebooks)")
        p.add_argument("--engine", choices=("batched", "module"), default="batched",
                       help="train all seeds of a method at once (default) or one module at "
                            "a time (reference)")
        p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
        p.add_argument("--track-every", type=int, default=10,
                       help="store CAB locations every K steps in the JSON (default 10; the "
                            "per-step maxima are always kept)")
        p.add_argument("--no-tracks", action="store_true",
                       help="leave the CAB arrays out of the JSON")
        p.add_argument("--output", "-o", type=Path, help="write all runs to this JSON file")
        p.add_argument("--threads", type=int, default=1,
                       help="torch CPU threads (default 1: these models are tiny)")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sub.add_parser("uci", help="UCI regression (Table 1), handled by gmp.experiments.uci",
                   add_help=False)
    return parser


def provenance(argv: Sequence[str], threads: int | None = None) -> dict[str, Any]:
    """Command, git revision, date and hardware of this invocation."""
    rev = revision_string()
    return {
        "command": "python -m gmp.experiments " + shlex.join(argv),
        "git_revision": rev,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hardware": {"machine": platform.machine(), "processor": platform.processor(),
                     "cpu_count": os.cpu_count(),
                     "torch_threads": threads or torch.get_num_threads(),
                     "python": platform.python_version(), "torch": torch.__version__},
    }


def _config(args: argparse.Namespace) -> LevyConfig | BananaConfig:
    cfg = LevyConfig() if args.task == "levy" else BananaConfig()
    names = {f.name for f in fields(cfg)}
    over = {k: getattr(args, k) for k in ("epochs", "hidden", "plateau_patience",
                                          "stop_patience", "gmp_init", "gmp_readout")
            if k in names}
    return replace(cfg, **over)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "uci":
        # imported only when asked for (its own dependencies stay out of levy/banana)
        try:
            uci = importlib.import_module("gmp.experiments.uci")
        except ModuleNotFoundError as e:
            if e.name != "gmp.experiments.uci":
                raise
            print("python -m gmp.experiments: error: the 'uci' experiment "
                  "(gmp.experiments.uci) is not installed", file=sys.stderr)
            return 2
        return uci.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    methods = "all" if "all" in args.methods else args.methods
    seeds = args.seeds if args.seeds is not None else [0 if args.seed is None else args.seed]
    lr = None if args.lr is None else (args.lr[0] if len(args.lr) == 1 else args.lr)
    try:
        cfg = _config(args)
        results = run(args.task, methods, seeds, lr, cfg, engine=args.engine,
                      track_every=args.track_every, dtype=getattr(torch, args.dtype),
                      progress=not args.no_progress, threads=args.threads)
    except ValueError as e:
        parser.error(str(e))
    metric = "test RMSE" if args.task == "levy" else "test accuracy"
    print(f"{args.task}: {metric}, mean ± std over seeds {seeds}")
    print(f"{'method':<8}{'lr':>10}{'n':>4}{'mean':>10}{'std':>10}")
    for row in summarize(results):
        print(f"{row['method']:<8}{row['lr']:>10.4g}{row['n']:>4}{row['mean']:>10.4f}"
              f"{row['std']:>10.4f}")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        save_results(str(args.output), results, provenance(argv, args.threads),
                     tracks=not args.no_tracks)
        print(f"wrote {len(results)} runs to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
