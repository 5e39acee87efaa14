"""Command line: ``python -m gmp.experiments {levy,banana,uci} ...``.

Examples::

    python -m gmp.experiments levy --preset authors --protocol official --param gmp \
        --seeds 0-19 --out results/levy_gmp.json
    python -m gmp.experiments levy --param all --seeds 0-19 --data-seed 0   # fixed data
    python -m gmp.experiments banana --protocol honest --param all --seeds 0-19
    python -m gmp.experiments uci ...        # handled by gmp.experiments.uci.main

``levy`` and ``banana`` train as the authors' notebooks do (:mod:`gmp.experiments.small`), print
one line per run and a summary per parameterization (median, range, mean ± std over seeds), and
optionally write every run, with the command, git revision, date and hardware
(:func:`gmp.provenance.record`), to a JSON file.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

import torch

from ..files import OutputError, results_target
from ..params import LABELS, PARAMS, PRESETS
from ..provenance import record
from .small import SmallRunResult, recognise_results, run, save_results, summarize
from .tasks import PROTOCOLS, TASKS, Task

__all__ = ["main", "build_parser", "parse_seeds"]


MAX_SEEDS = 10_000


def parse_seeds(items: Sequence[str], limit: int = MAX_SEEDS) -> list[int]:
    """Seeds from ``["0-19"]``, ``["0", "1", "5"]`` or ``["0,1,5"]`` (ranges inclusive).

    A seed given twice, or more than ``limit`` seeds in all (counted before any list is
    built), is an error: each seed is one run, counted once.
    """
    out: list[int] = []
    total = 0
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            try:
                if sep and lo:
                    a, b = int(lo), int(hi)
                    if b < a:
                        raise ValueError
                    span = range(a, b + 1)
                else:
                    span = range(int(part), int(part) + 1)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"bad seed {part!r}: use integers, ranges like 0-19, or commas") from None
            total += len(span)
            if total > limit:
                raise argparse.ArgumentTypeError(
                    f"too many seeds (more than {limit:,}): each seed is one training run")
            out.extend(span)
    if not out:
        raise argparse.ArgumentTypeError("no seeds given")
    twice = sorted(s for s, k in Counter(out).items() if k > 1)
    if twice:
        raise argparse.ArgumentTypeError(
            f"seed(s) {', '.join(map(str, twice))} given more than once: each seed is one run")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gmp.experiments",
        description="Experiments of Chen & Ge (NeurIPS 2024): levy (Fig. 2), banana (Fig. 3), "
                    "uci (Table 1; see 'python -m gmp.experiments uci --help').")
    sub = parser.add_subparsers(dest="experiment", required=True, metavar="{levy,banana,uci}")
    for task in TASKS.values():
        cfg = task.config()
        p = sub.add_parser(task.name, help=f"the {task.name} experiment ({task.figure})",
                           description=f"Train SP/WN/BN/GmP on {task.name} as the authors' "
                                       "notebook does.")
        p.set_defaults(task=task)
        p.add_argument("--param", "--params", dest="params", nargs="+", default=["all"],
                       metavar="P", help=f"parameterizations among {', '.join(PARAMS)} or "
                                         "'all' (default: all)")
        p.add_argument("--preset", choices=tuple(PRESETS), default="authors",
                       help="network preset, named after its source (default: authors)")
        p.add_argument("--protocol", choices=PROTOCOLS, default="official",
                       help="official: the notebook as published (Banana selects on the test "
                            "split); honest: selection on a validation split carved from the "
                            "training part (default: official)")
        seeds = p.add_mutually_exclusive_group()
        seeds.add_argument("--seed", type=int, help="one seed (default 0)")
        seeds.add_argument("--seeds", nargs="+", metavar="S",
                           help="initialization seeds: 0-19, 0 1 2, or 0,1,2")
        p.add_argument("--data-seed", type=int, default=None,
                       help="one data sample for every run (0 is the authors' own); default: "
                            "each run's data seed is its seed")
        p.add_argument("--lr", type=float, nargs="+", metavar="LR",
                       help="learning rate(s); several values run every one for every seed "
                            "(default: 0.1 for GmP, 0.01 for the others)")
        p.add_argument("--max-epochs", type=int, default=cfg.max_epochs,
                       help=f"maximum number of epochs (default {cfg.max_epochs})")
        p.add_argument("--hidden", type=int, default=cfg.hidden,
                       help=f"hidden units (default {cfg.hidden})")
        p.add_argument("--plateau-patience", type=int, default=cfg.plateau_patience,
                       help=f"epochs without improvement before LR ×{cfg.plateau_factor} "
                            f"(default {cfg.plateau_patience})")
        p.add_argument("--patience", type=int, default=cfg.patience,
                       help=f"epochs without improvement before stopping "
                            f"(default {cfg.patience})")
        p.add_argument("--engine", choices=("batched", "module"), default="batched",
                       help="train all seeds of a parameterization at once (default) or one "
                            "module at a time (reference)")
        p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
        p.add_argument("--track-every", type=int, default=10,
                       help="store CAB locations every K steps in the JSON (default 10; the "
                            "per-step maxima are always kept)")
        p.add_argument("--no-tracks", action="store_true",
                       help="one record per run in the JSON (settings and metrics): no CAB "
                            "arrays, no per-epoch history")
        p.add_argument("--out", "--output", "-o", dest="output", type=Path,
                       help="write all runs to this JSON file, at the end (checked before "
                            "any training: an existing file is replaced only with --replace)")
        p.add_argument("--replace", action="store_true",
                       help="replace an existing --out written by this command (e.g. a "
                            "committed file in results/); it is kept until the new one is "
                            "complete")
        p.add_argument("--threads", type=int, default=1,
                       help="torch CPU threads (default 1: these models are tiny)")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sub.add_parser("uci", help="UCI regression (Table 1), handled by gmp.experiments.uci",
                   add_help=False)
    return parser


def _config(args: argparse.Namespace):
    """The task's settings with the values given on the command line."""
    cfg = args.task.config()
    names = {f.name for f in fields(cfg)}
    over = {k: getattr(args, k) for k in ("max_epochs", "hidden", "plateau_patience",
                                          "patience") if k in names}
    return replace(cfg, **over)


def print_runs(results: Sequence[SmallRunResult]) -> None:
    """One line per run, then the summary per parameterization (median, range, mean ± std)."""
    if not results:
        return
    task: Task = TASKS[results[0].task]
    key = task.headline
    print(f"{'param':<7}{'seed':>5}{'data':>5}{'lr':>8}{'epochs':>7}{'stopped':>8}"
          f"{key:>11}{'r<0':>5}")
    for r in results:
        neg = r.metrics.get("r_negative", math.nan)
        print(f"{LABELS[r.param]:<7}{r.seed:>5}{r.data_seed:>5}{r.lr:>8.3g}{r.epochs_run:>7}"
              f"{'yes' if r.stopped_early else 'no':>8}{r.metrics[key]:>11.4f}"
              f"{'' if math.isnan(neg) else int(neg):>5}")
    print()
    print(f"summary ({key}; preset {results[0].preset}, protocol {results[0].protocol})")
    print(f"{'param':<7}{'lr':>8}{'n':>4}{'median':>9}{'min':>9}{'max':>9}{'mean':>9}"
          f"{'std':>9}")
    for row in summarize(results):
        print(f"{LABELS[row['param']]:<7}{row['lr']:>8.3g}{row['n']:>4}{row['median']:>9.4f}"
              f"{row['min']:>9.4f}{row['max']:>9.4f}{row['mean']:>9.4f}{row['std']:>9.4f}")
    if task.selection_leaks(results[0].protocol):
        print("note: the official protocol selects (LR schedule, early stopping) on the TEST "
              "split, as the authors' notebook does; use --protocol honest for scores that "
              "never saw the test split before the end")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "uci":
        # imported only when asked for (its own dependencies stay out of levy/banana)
        return importlib.import_module("gmp.experiments.uci").main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    params = "all" if "all" in args.params else args.params
    try:
        seeds = (parse_seeds(args.seeds) if args.seeds is not None
                 else [0 if args.seed is None else args.seed])
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    if params != "all":
        try:
            _unique(params)
        except ValueError as e:
            parser.error(str(e))
    lr = None if args.lr is None else (args.lr[0] if len(args.lr) == 1 else args.lr)
    t0 = time.perf_counter()
    target = None
    try:
        cfg = _config(args)
        if args.output is not None:       # checked and locked before any training
            target = results_target(args.output, recognise=recognise_results,
                                    replace=args.replace, resumable=False)
            if target.path.exists():
                print(f"replacing {target.path} when the runs are complete",
                      file=sys.stderr)
        results = run(args.task, params, seeds, lr, cfg, preset=args.preset,
                      protocol=args.protocol, data_seed=args.data_seed, engine=args.engine,
                      track_every=args.track_every, dtype=getattr(torch, args.dtype),
                      progress=not args.no_progress, threads=args.threads)
        print_runs(results)
        if target is not None:
            prov = record(["python", "-m", "gmp.experiments", *argv], ignore=target.path,
                          threads=args.threads,
                          extra={"wall_s": round(time.perf_counter() - t0, 1)})
            save_results(str(target.path), results, prov, tracks=not args.no_tracks)
            print(f"wrote {len(results)} runs to {target.path}")
    except (OutputError, OSError) as e:   # the output, or data not found (with where)
        print(f"python -m gmp.experiments: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        parser.error(str(e))
    finally:
        if target is not None:
            target.close()
    return 0


def _unique(params: Sequence[str]) -> None:
    twice = sorted(p for p, k in Counter(params).items() if k > 1)
    if twice:
        raise ValueError(f"--param names {', '.join(twice)} more than once")

if __name__ == "__main__":
    sys.exit(main())
