"""Training throughput (images/s) of every parameterization, relative to SP, in one run.

Two figures per variant, measured in the same interleaved rounds:

* ``step``: full training steps as ``gmp-train`` runs them: ``opt.zero_grad(set_to_none=True)``,
  forward, cross-entropy, backward, ``opt.step()`` (SGD with momentum and weight decay);
* ``fwd_bwd``: forward, cross-entropy and backward only, gradients accumulated.

Variants are interleaved round by round (sp, wn, …, gmp_imn, sp, wn, …) so drifts of clock
speed or machine load hit all of them alike; the table reports the median and the
interquartile range over rounds and the ratio of medians to SP measured in the same run.

On a GPU (default when one is visible) the paper's sizes are used: VGG-6 at 32×32, batch
256; ResNet-18 at 224×224, batch 256; bf16 autocast and channels_last as in ``gmp-train``
(``--compile`` adds ``torch.compile`` of the whole model, ``--gmp-kernel compile`` the
compiled GmP weight kernel of :func:`gmp.geometry.set_weight_kernel`). On a CPU the networks
are narrowed and the inputs shrunk so the run takes minutes; those ratios show the relative
cost of the parameterizations' extra work, not GPU speeds.

    python benchmarks/train_throughput.py                 # auto device
    python benchmarks/train_throughput.py --device cpu --rounds 5 --threads 2
    python benchmarks/train_throughput.py --compile --json results/gpu/throughput_compiled.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from gmp.geometry import set_weight_kernel
from gmp.models import build_model
from gmp.params import ALL_PARAMS

#              (width, batch, image size) per device type
SIZES = {"cuda": {"vgg6": (1.0, 256, 32), "resnet18": (1.0, 256, 224)},
         "cpu": {"vgg6": (0.25, 32, 32), "resnet18": (0.25, 8, 64)}}


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list:
    try:  # the groups of gmp-train (no decay on biases, norm parameters, GmP angles/offsets)
        from gmp.train.engine import decay_groups
    except ImportError:  # pragma: no cover - the training package is being refactored
        return [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    return decay_groups(model, weight_decay)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Bench:
    """One variant's model, optimizer and a fixed random batch on ``device``."""

    def __init__(self, arch: str, param: str, width: float, batch: int, size: int,
                 device: torch.device, amp: bool, channels_last: bool,
                 compile_model: bool = False) -> None:
        torch.manual_seed(0)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = build_model(arch, param, 1000, width).to(device, memory_format=fmt).train()
        self.opt = torch.optim.SGD(_param_groups(self.model, 5e-4), lr=1e-3, momentum=0.9)
        self.run = torch.compile(self.model) if compile_model else self.model
        self.x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
        self.y = torch.randint(0, 1000, (batch,), device=device)
        self.device, self.amp, self.batch = device, amp, batch

    def _loss(self) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.run(self.x)
        return F.cross_entropy(logits.float(), self.y)

    def step(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        self._loss().backward()
        self.opt.step()

    def fwd_bwd(self) -> None:
        self._loss().backward()

    def images_per_s(self, steps: int, fn) -> float:
        _sync(self.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        _sync(self.device)
        return steps * self.batch / (time.perf_counter() - t0)


def _iqr(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(xs, n=4)
    return q3 - q1


def _provenance(out: str | None, argv: list[str], extra: dict) -> dict:
    import gmp.provenance as prov

    return prov.record(argv, ignore=out, extra=extra)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cuda or cpu")
    p.add_argument("--archs", default="vgg6,resnet18")
    p.add_argument("--params", default=",".join(ALL_PARAMS))
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median taken)")
    p.add_argument("--steps", type=int, default=None,
                   help="steps per measurement (default 20 on GPU, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    p.add_argument("--width", type=float, default=None, help="override the channel multiplier")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch)")
    p.add_argument("--amp", choices=["auto", "bf16", "off"], default="auto",
                   help="bf16 autocast (auto: on for CUDA)")
    p.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile each model")
    p.add_argument("--gmp-kernel", choices=["eager", "compile"], default="eager",
                   help="GmP weight kernel (gmp.geometry.set_weight_kernel)")
    p.add_argument("--no-fwd-bwd", action="store_true",
                   help="time only full steps (skip the fwd+bwd column)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.json is not None:             # a bad output fails now, not after the timings
        from gmp.files import OutputError, check_output_file

        try:
            check_output_file(args.json)
        except OutputError as e:
            p.error(str(e))

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = True
    amp = gpu if args.amp == "auto" else args.amp == "bf16"
    channels_last = gpu if args.channels_last == "auto" else args.channels_last == "on"
    set_weight_kernel(args.gmp_kernel)
    steps = args.steps or (20 if gpu else 3)
    params = [q.strip() for q in args.params.split(",") if q.strip()]
    if "sp" not in params:
        params.insert(0, "sp")  # the baseline of every ratio
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    hw = (torch.cuda.get_device_name(device) if gpu
          else f"CPU, {torch.get_num_threads()} thread(s)")
    print(f"device: {device.type} ({hw}); torch {torch.__version__}; bf16: {amp}; "
          f"channels_last: {channels_last}; compile: {args.compile}; "
          f"gmp kernel: {args.gmp_kernel}")
    load_before = list(os.getloadavg())
    kinds = ["step"] + ([] if args.no_fwd_bwd else ["fwd_bwd"])

    rows = []
    for arch in archs:
        width, batch, size = SIZES["cuda" if gpu else "cpu"][arch]
        width = args.width or width
        batch = args.batch_size or batch
        size = args.image_size or size
        benches = {q: Bench(arch, q, width, batch, size, device, amp, channels_last,
                            args.compile) for q in params}
        for b in benches.values():
            for _ in range(args.warmup):
                b.step()
        samples = {k: {q: [] for q in params} for k in kinds}
        for _ in tqdm(range(args.rounds), desc=f"{arch} rounds", leave=False):
            for kind in kinds:
                for q, b in benches.items():
                    fn = b.step if kind == "step" else b.fwd_bwd
                    if kind == "fwd_bwd":
                        b.opt.zero_grad(set_to_none=True)
                    samples[kind][q].append(b.images_per_s(steps, fn))
        base = {k: statistics.median(samples[k]["sp"]) for k in kinds}
        for q in params:
            row = {"arch": arch, "param": q, "width": width, "batch": batch,
                   "image_size": size}
            for k in kinds:
                med = statistics.median(samples[k][q])
                row[f"{k}_images_per_s"] = med
                row[f"{k}_iqr"] = _iqr(samples[k][q])
                row[f"{k}_ratio_vs_sp"] = med / base[k]
                row[f"{k}_samples"] = samples[k][q]
            rows.append(row)
        del benches
        if gpu:
            torch.cuda.empty_cache()

    print(f"\n{'arch':9} {'param':8} {'width':>5} {'batch':>5} {'size':>4} "
          f"{'step img/s':>10} {'vs sp':>6} {'fwd+bwd img/s':>13} {'vs sp':>6}")
    for r in rows:
        fb = (f"{r['fwd_bwd_images_per_s']:13.1f} {r['fwd_bwd_ratio_vs_sp']:6.3f}"
              if "fwd_bwd_images_per_s" in r else "")
        print(f"{r['arch']:9} {r['param']:8} {r['width']:5.2f} {r['batch']:5d} "
              f"{r['image_size']:4d} {r['step_images_per_s']:10.1f} "
              f"{r['step_ratio_vs_sp']:6.3f} {fb}")
    if args.json:
        command = [Path(sys.executable).name, *sys.argv] if argv is None else \
            ["benchmarks/train_throughput.py", *argv]
        out = {"provenance": _provenance(args.json, command, {
            "device": device.type, "device_name": hw, "amp_bf16": amp,
            "channels_last": channels_last, "compile": args.compile,
            "gmp_kernel": args.gmp_kernel, "rounds": args.rounds, "steps": steps,
            "warmup": args.warmup, "load_avg_before": load_before,
            "load_avg_after": list(os.getloadavg())}), "rows": rows}
        from gmp.files import write_json

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, out)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
