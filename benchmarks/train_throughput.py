"""Training throughput (images/s) of every parameterization, relative to SP, in one run.

Each measurement is a few full training steps (forward, cross-entropy, backward, SGD with
momentum and weight decay — the step of ``gmp-train``) on random data already on the device.
Variants are interleaved round by round (sp, wn, …, gmp_imn, sp, wn, …) so drifts of clock
speed or machine load hit all of them alike; the table reports the median over rounds and
the ratio to SP measured in the same run.

On a GPU (default when one is visible) the paper's sizes are used: VGG-6 at 32×32, batch
256; ResNet-18 at 224×224, batch 128; bf16 autocast and channels_last as in ``gmp-train``.
On a CPU the networks are narrowed and the inputs shrunk so the run takes a minute or two;
those ratios show the relative cost of the parameterizations' extra work, not GPU speeds.

    python benchmarks/train_throughput.py                 # auto device
    python benchmarks/train_throughput.py --device cpu --rounds 3
    python benchmarks/train_throughput.py --json results/throughput_h100.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from gmp.models import PARAMS, build_model
from gmp.provenance import revision_string
from gmp.train.engine import decay_groups

#              (width, batch, image size) per device type
SIZES = {"cuda": {"vgg6": (1.0, 256, 32), "resnet18": (1.0, 128, 224)},
         "cpu": {"vgg6": (0.25, 32, 32), "resnet18": (0.25, 8, 64)}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Bench:
    """One variant's model, optimizer and a fixed random batch on ``device``."""

    def __init__(self, arch: str, param: str, width: float, batch: int, size: int,
                 device: torch.device, amp: bool, channels_last: bool) -> None:
        torch.manual_seed(0)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = build_model(arch, param, 1000, width).to(device, memory_format=fmt).train()
        self.opt = torch.optim.SGD(decay_groups(self.model, 5e-4), lr=1e-3, momentum=0.9)
        self.x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
        self.y = torch.randint(0, 1000, (batch,), device=device)
        self.device, self.amp, self.batch = device, amp, batch

    def step(self) -> None:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.model(self.x)
        loss = F.cross_entropy(logits.float(), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def images_per_s(self, steps: int) -> float:
        _sync(self.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        _sync(self.device)
        return steps * self.batch / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cuda or cpu")
    p.add_argument("--archs", default="vgg6,resnet18")
    p.add_argument("--params", default=",".join(PARAMS))
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median taken)")
    p.add_argument("--steps", type=int, default=None,
                   help="steps per measurement (default 20 on GPU, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    p.add_argument("--width", type=float, default=None, help="override the channel multiplier")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = True
    steps = args.steps or (20 if gpu else 3)
    params = [q.strip() for q in args.params.split(",") if q.strip()]
    if "sp" not in params:
        params.insert(0, "sp")  # the baseline of every ratio
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    hw = (torch.cuda.get_device_name(device) if gpu
          else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)")
    print(f"device: {device.type} ({hw}); torch {torch.__version__}; bf16+channels_last: {gpu}")

    rows = []
    for arch in archs:
        width, batch, size = SIZES[device.type][arch]
        width = args.width or width
        batch = args.batch_size or batch
        size = args.image_size or size
        benches = {q: Bench(arch, q, width, batch, size, device, gpu, gpu) for q in params}
        for b in benches.values():
            for _ in range(args.warmup):
                b.step()
        samples: dict[str, list[float]] = {q: [] for q in params}
        for _ in tqdm(range(args.rounds), desc=f"{arch} rounds", leave=False):
            for q, b in benches.items():
                samples[q].append(b.images_per_s(steps))
        base = statistics.median(samples["sp"])
        for q in params:
            med = statistics.median(samples[q])
            rows.append({"arch": arch, "param": q, "width": width, "batch": batch,
                         "image_size": size, "images_per_s": med, "ratio_vs_sp": med / base,
                         "samples": samples[q]})
        del benches
        if gpu:
            torch.cuda.empty_cache()

    print(f"\n{'arch':9} {'param':8} {'width':>5} {'batch':>5} {'size':>4} "
          f"{'images/s':>10} {'vs sp':>6}")
    for r in rows:
        print(f"{r['arch']:9} {r['param']:8} {r['width']:5.2f} {r['batch']:5d} "
              f"{r['image_size']:4d} {r['images_per_s']:10.1f} {r['ratio_vs_sp']:6.2f}")
    if args.json:
        out = {"command": " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]),
               "git_revision": revision_string(args.json),
               "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "hardware": hw, "device": device.type,
               "torch": torch.__version__, "rounds": args.rounds, "steps": steps, "rows": rows}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
