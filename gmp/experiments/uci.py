"""``gmp-uci``: the command line of the UCI regression benchmark (Chen & Ge 2024, Sec. 4.2.1,
Table 1; also ``python -m gmp.experiments.uci``).

Every string of the command line is resolved here, once: the protocol name to its
:class:`~gmp.experiments.uci_protocol.Protocol`, the lists to checked names, the settings to
one :class:`~gmp.experiments.uci_protocol.UCIConfig`; the run itself is
:func:`gmp.experiments.uci_runner.run`, and Table 1 is printed by
:func:`gmp.experiments.uci_report.markdown_table`. The protocols are described in
:mod:`gmp.experiments.uci_protocol`.

Command line::

    gmp-uci --protocol official --datasets yacht --splits 2      # writes runs/uci-...json
    gmp-uci --protocol honest-refit --datasets all --splits 10 --jobs 2 --out my/uci.json
    gmp-uci ... --out my/uci.json --resume           # continue it after an interruption

The unit of work is one (data set, parameterization); each is written to the results file
(atomically) as soon as it finishes, and ``--resume`` skips the units already there. The
committed files in ``results/`` are read, never written, unless a command names one with
``--replace`` (``make uci-results`` does): the new file is then written beside it as
``<name>.partial`` and renamed over it only when complete.

The recorded commands of the earliest files name the protocol ``honest`` (with
``--lr-choice cv``, the default, or ``paper``): they run as ``honest-no-refit`` and
``honest-no-refit-paper-lr``, the names those protocols have now; ``--lr-choice`` with any
other protocol is an error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

import torch

from ..data.uci import DATASETS, load_uci, resolve_name
from ..files import OutputError, results_target
from ..params import PARAMS
from .uci_protocol import DEFAULT_LR_GRID, DTYPES, PROTOCOLS, Protocol, UCIConfig
from .uci_report import markdown_table, recognise_results
from .uci_runner import run, tune_malloc

__all__ = ["default_out", "main"]

#: The protocol ``honest`` of the earliest files, by its ``--lr-choice``.
_HONEST = {"cv": "honest-no-refit", "paper": "honest-no-refit-paper-lr"}


def _parser() -> argparse.ArgumentParser:
    d = UCIConfig()
    p = argparse.ArgumentParser(
        prog="gmp-uci", description="UCI regression benchmark (Table 1 of Chen & Ge 2024).")
    p.add_argument("--protocol", choices=(*PROTOCOLS, "honest"), default="official",
                   metavar="{" + ",".join(PROTOCOLS) + "}",
                   help="official (default): the authors' script, which selects on the test "
                   "split; honest-refit: learning rate, schedule and training length chosen "
                   "on the training part, then refit on all of it; the others are the steps "
                   "between (see gmp.experiments.uci_protocol)")
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
    p.add_argument("--preset", default=d.preset, help="network preset (gmp.params)")
    p.add_argument("--folds", type=int, default=d.folds, help="CV folds (honest)")
    p.add_argument("--lr-grid", default=",".join(f"{v:g}" for v in DEFAULT_LR_GRID),
                   help="comma-separated learning rates for CV (honest)")
    # only with the protocol "honest" of the earliest files, so that their commands still run
    p.add_argument("--lr-choice", choices=tuple(_HONEST), default=None,
                   help=argparse.SUPPRESS)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="Keras validation_split of every model's rows (honest)")
    p.add_argument("--max-epochs", type=int, default=d.max_epochs)
    p.add_argument("--patience", type=int, default=d.patience,
                   help="early-stopping patience (the plateau's is half)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--hidden", type=int, default=d.hidden, help="hidden units")
    p.add_argument("--dtype", choices=tuple(DTYPES), default=d.dtype)
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


def _protocol(name: str, lr_choice: str | None) -> Protocol:
    """The protocol of ``--protocol name [--lr-choice lr_choice]``."""
    if name == "honest":
        return PROTOCOLS[_HONEST[lr_choice or "cv"]]
    if lr_choice is not None:
        raise ValueError(f"--lr-choice belongs to the old protocol 'honest' only, not to "
                         f"{name!r}; name the protocol instead (e.g. honest-refit-paper-lr)")
    return PROTOCOLS[name]


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


def default_out(protocol: Protocol) -> Path:
    """A new results file under ``runs/`` (ignored by git), named by protocol and time:
    committed files in ``results/`` are written only when asked (``--out`` with
    ``--replace``)."""
    import datetime as _dt

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"uci-{protocol.name}-{stamp}.json"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``gmp-uci``; returns the exit status.

    Everything that can be checked is checked before the first unit trains: the arguments,
    the data files, and the results file (writable, not held by another run, and written
    only with ``--resume`` or ``--replace`` when it exists); each failure is one line,
    ``gmp-uci: error: ...``, and exit status 2.
    """
    args = _parser().parse_args(argv)
    tune_malloc()
    try:
        datasets = (list(DATASETS) if args.datasets.strip().lower() == "all"
                    else _csv(args.datasets, "--datasets"))
        datasets = _unique([resolve_name(d) for d in datasets], "--datasets")
        protocol = _protocol(args.protocol, args.lr_choice)
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
