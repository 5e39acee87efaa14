"""What GmP costs per training step on this machine (issue #15's protocol).

Every candidate computes the same function: ``nn.Linear``/``nn.Conv2d`` (SP, the baseline of
every ratio), torch's ``parametrizations.weight_norm`` on it (WN), the layer converted by
``gmp.convert`` (GmP, eager weight kernel) and the same with the ``torch.compile``'d weight
kernel (``gmp_compiled``). Two figures per candidate, measured in the same run:

* ``step``: a whole training step as users run it: ``opt.zero_grad(set_to_none=True)``,
  forward, backward, ``opt.step()`` (Adam for single layers, SGD with momentum for whole
  networks, as ``gmp-train``); fresh gradient buffers every step are part of the cost;
* ``train``: forward + backward only, gradients accumulated (the figure of issue #2).

Suites: ``linear`` 1024→1024 at batch 32/256/1024; ``conv`` 3×3 512→512 at 8×8 at batch
32/128; ``vgg6`` the whole VGG-6 of ``gmp.models`` at batch 32 (1000 classes, 32×32);
``resnet18`` a narrowed ResNet-18 (width 0.25, 64×64, batch 8: a CPU-sized stand-in).
Candidates are interleaved (every repeat runs each once, rotating the order) and medians and
quartiles are reported: ratios are what matter, since other processes on a shared machine
slow every candidate alike (the load average is recorded).

    python benchmarks/layer_overhead.py                       # full protocol, 2 threads
    python benchmarks/layer_overhead.py --quick               # small sizes, seconds
    python benchmarks/layer_overhead.py --out benchmarks/results/layer_overhead_cpu.json

The JSON file records the command, git revision, date, hardware, load and torch version.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Inductor compiles in worker processes that keep running after the first call: here they
# would steal the CPU from the measurements, so it compiles in this process.
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

from gmp.overhead import (
    CANDIDATE_PARAMS,
    CANDIDATES,
    conv_cases,
    format_rows,
    linear_cases,
    measure_layer_overhead,
    resnet18_cases,
    vgg6_cases,
)

TARGET_PARAM = "gmp"   # the targets bound the candidates of this parameterization
TARGETS = {  # (case prefix, batch, mode) -> maximal gmp/sp ratio, from issue #15
    ("linear 1024→1024", 256, "step"): 1.3,
    ("linear 1024→1024", 1024, "step"): 1.15,
    ("VGG-6", 32, "step"): 1.05,
}


def provenance(out: Path | None, extra: dict) -> dict:
    """The project's provenance record (:func:`gmp.provenance.record`)."""
    import gmp.provenance as prov

    argv = [Path(sys.executable).name, *sys.argv]
    return prov.record(argv, ignore=out, extra=extra)


def summarize(rows: list[dict]) -> list[dict]:
    """One line per (case, batch, param): the step and fwd+bwd ratios side by side."""
    table: dict[tuple, dict] = {}
    for r in rows:
        key = (r["case"], r["batch"], r["param"])
        line = table.setdefault(key, {"case": r["case"], "batch": r["batch"],
                                      "param": r["param"]})
        label = {"step": "step", "train": "fwd_bwd", "eval": "eval"}[r["mode"]]
        line[f"{label}_ratio"] = r["ratio"]
        line[f"{label}_median_ms"] = r["median_ms"]
        line[f"{label}_iqr_ms"] = r["q3_ms"] - r["q1_ms"]
    return list(table.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suites", nargs="+", default=["linear", "conv", "vgg6", "resnet18"],
                   choices=["linear", "conv", "vgg6", "resnet18"])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 256, 1024],
                   help="batch sizes of the linear suite")
    p.add_argument("--features", type=int, default=1024, help="linear width")
    p.add_argument("--conv-batches", type=int, nargs="+", default=[32, 128])
    p.add_argument("--vgg-batch", type=int, default=32)
    p.add_argument("--params", nargs="+", default=list(CANDIDATES), choices=CANDIDATES)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--modes", nargs="+", default=["step", "train"],
                   choices=["step", "train", "eval"])
    p.add_argument("--no-input-grad", action="store_true",
                   help="do not compute the input's gradient (a first layer)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--out", type=Path, help="write rows and metadata to this JSON file")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.out is not None:              # a bad output fails now, not after the timings
        from gmp.files import OutputError, check_output_file

        try:
            check_output_file(args.out)
        except OutputError as e:
            p.error(str(e))

    if args.quick:
        args.batches, args.features = [4, 64], 128
        args.conv_batches, args.vgg_batch = [2], 2
        args.repeats, args.warmup = 3, 1
    params = tuple(args.params)
    layer_cases, net_cases = [], []
    if "linear" in args.suites:
        layer_cases += linear_cases(args.batches, args.features, params=params)
    if "conv" in args.suites:
        for b in args.conv_batches:
            layer_cases += conv_cases(b, shapes=[(64, 64, 4) if args.quick else (512, 512, 8)],
                                      params=params)
    if "vgg6" in args.suites:
        net_cases += vgg6_cases(args.vgg_batch, width=0.125 if args.quick else 1.0,
                                num_classes=10 if args.quick else 1000, params=params)
    if "resnet18" in args.suites:
        net_cases += (resnet18_cases(2, 0.125, 10, 32, params=params) if args.quick
                      else resnet18_cases(8, 0.25, 1000, 64, params=params))
    load_before = list(os.getloadavg())
    common = {"repeats": args.repeats, "warmup": args.warmup, "modes": args.modes,
              "input_grad": not args.no_input_grad, "threads": args.threads, "seed": args.seed}
    rows = []
    if layer_cases:
        rows += measure_layer_overhead(layer_cases, optimizer="adam", **common)
    if net_cases:
        rows += measure_layer_overhead(net_cases, optimizer="sgd", **common)
    print(format_rows(rows))
    print()
    verdicts = []
    for (prefix, batch, mode), limit in TARGETS.items():
        for r in rows:
            if (r["case"].startswith(prefix) and r["batch"] == batch and r["mode"] == mode
                    and CANDIDATE_PARAMS[r["param"]] == TARGET_PARAM):
                met = r["ratio"] <= limit
                verdicts.append({"case": r["case"], "batch": batch, "mode": mode,
                                 "param": r["param"], "ratio": r["ratio"], "target": limit,
                                 "met": met})
                print(f"target {r['case']} batch {batch} {mode} {r['param']}: "
                      f"ratio to sp = {r['ratio']:.3f} (target <= {limit}: "
                      f"{'met' if met else 'NOT met'})")
    if args.out:
        meta = provenance(args.out, {
            "threads": args.threads, "repeats": args.repeats, "warmup": args.warmup,
            "input_grad": not args.no_input_grad, "load_avg_before": load_before,
            "load_avg_after": list(os.getloadavg()),
            "optimizers": {"layers": "adam", "networks": "sgd (momentum 0.9)"}})
        payload = {"provenance": meta, "summary": summarize(rows), "targets": verdicts,
                   "rows": rows}
        try:
            from gmp.files import write_json
        except ImportError:  # pragma: no cover - older checkouts
            import json

            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            write_json(args.out, payload)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
