"""Measure what GmP costs per training step on this machine (issue #2's speed protocol).

GmPLinear vs nn.Linear vs weight-normalized nn.Linear (torch's parametrizations.weight_norm)
at 1024→1024 over batch sizes 1…1024; GmPConv2d vs nn.Conv2d at the VGG-6 conv shapes
(ImageNet32, batch 32); and a whole VGG-6 (every Conv/Linear converted by gmp.convert) vs
plain, forward + backward at batch 32. Candidates are interleaved (every repeat runs each
once, rotating the order) and medians are compared: ratios are what matter, since other
processes on the machine slow every candidate alike. ``--modes eval`` adds inference
(eval mode, no autograd: GmP layers use their cached weight).

    python benchmarks/layer_overhead.py                       # full protocol, 2 threads
    python benchmarks/layer_overhead.py --quick               # small sizes, seconds
    python benchmarks/layer_overhead.py --out results.json    # also save rows + metadata

The JSON file records the command, git revision, date, hardware and torch version.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import torch

from gmp.overhead import conv_cases, format_rows, linear_cases, measure_layer_overhead, vgg6_cases
from gmp.provenance import cpu_model, revision_string

TARGETS = {  # (case prefix, batch, mode) -> maximal gmp/sp ratio, from issue #2
    ("linear 1024→1024", 256, "train"): 1.5,
    ("linear 1024→1024", 1024, "train"): 1.2,
    ("VGG-6", 32, "train"): 1.05,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suites", nargs="+", default=["linear", "conv", "vgg6"],
                   choices=["linear", "conv", "vgg6"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024],
                   help="batch sizes of the linear suite")
    p.add_argument("--features", type=int, default=1024, help="linear width")
    p.add_argument("--conv-batch", type=int, default=32)
    p.add_argument("--vgg-batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--modes", nargs="+", default=["train"], choices=["train", "eval"])
    p.add_argument("--no-input-grad", action="store_true",
                   help="do not compute the input's gradient (a first layer)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--out", type=Path, help="write rows and metadata to this JSON file")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    if args.quick:
        args.batches, args.features = [4, 64], 128
        args.conv_batch = args.vgg_batch = 2
        args.repeats, args.warmup = 5, 1
    cases = []
    if "linear" in args.suites:
        cases += linear_cases(args.batches, args.features)
    if "conv" in args.suites:
        cases += conv_cases(args.conv_batch)
    if "vgg6" in args.suites:
        cases += vgg6_cases(args.vgg_batch, width=0.125 if args.quick else 1.0,
                            num_classes=10 if args.quick else 1000)
    started = datetime.datetime.now(datetime.timezone.utc)
    rows = measure_layer_overhead(cases, repeats=args.repeats, warmup=args.warmup,
                                  modes=args.modes, input_grad=not args.no_input_grad,
                                  threads=args.threads, seed=args.seed)
    print(format_rows(rows))
    print()
    for (prefix, batch, mode), limit in TARGETS.items():
        for r in rows:
            if (r["case"].startswith(prefix) and r["batch"] == batch and r["mode"] == mode
                    and r["method"] == "gmp"):
                verdict = "met" if r["ratio"] <= limit else "NOT met"
                print(f"target {r['case']} batch {batch} {mode}: gmp/sp = {r['ratio']:.3f} "
                      f"(target <= {limit}: {verdict})")
    if args.out:
        meta = {
            "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
            "git_revision": revision_string(args.out),
            "date_utc": started.isoformat(timespec="seconds"),
            "hardware": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
                         "machine": platform.machine()},
            "torch": torch.__version__, "python": platform.python_version(),
            "threads": args.threads, "repeats": args.repeats, "warmup": args.warmup,
            "input_grad": not args.no_input_grad,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1,
                                       ensure_ascii=False) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
