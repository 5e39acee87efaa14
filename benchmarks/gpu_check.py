"""One command that checks the GPU path end to end (``make gpu-check``), within a time budget.

On a machine with a CUDA device (≤ 8 minutes on one GPU), in this order:

1. ``tests``: the CUDA tests (``pytest -k cuda``: no host synchronization in the GmP weight's
   backward, the Triton-compiled weight kernel, GmP layers under bf16 and channels_last);
2. ``throughput-eager``: ``benchmarks/train_throughput.py`` for every VGG-6 and ResNet-18
   variant of :mod:`gmp.models` (bf16 autocast, channels_last, batch 256);
3. ``imagenet32`` and ``imagenet32-resume``: a short ``gmp-train imagenet32`` run on synthetic
   data written in the official on-disk format (``gmp.data.imagenet32.write_synthetic``),
   then the same command with ``--resume`` and one more epoch;
4. ``torchrun-1``: ``torchrun --nproc_per_node=1 -m gmp.train imagenet32 ...`` on the GPU, and
   ``torchrun-2-gloo``: two CPU processes (gloo), the path that wraps the model in DDP (a
   single process never does: ``gmp.train`` uses DDP only when ``WORLD_SIZE > 1``);
5. ``throughput-compiled-*``: the throughput benchmark again with ``torch.compile`` (last:
   compiling every variant is the slowest part; what the budget leaves is used, and a part
   cut short is recorded as such).

Everything goes under ``results/gpu/`` (``--out``): each part's JSON results and log, and
``manifest.json`` with the provenance of the whole check (command, git revision, date,
hardware) and every part's command, exit status and duration; ``summary`` in the manifest
gives the images/s of GmP+IMN relative to BN (issue #15's GPU goal: ≥ 0.95).

Without a CUDA device it says so and runs the CPU-capable parts at toy sizes (about a minute
or two; the compiled throughput is skipped), writing under ``runs/gpu-check-cpu/`` unless
``--out`` is given; it exits 0 when those parts pass.

    python benchmarks/gpu_check.py                   # make gpu-check
    python benchmarks/gpu_check.py --dry-run         # print the plan only
    python benchmarks/gpu_check.py --only tests,imagenet32 --budget 120
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GPU_BUDGET_S = 480  # 8 minutes on one GPU


@dataclass
class Part:
    """One sub-process of the check: a name, its argv, a time cap and what it writes."""

    name: str
    argv: list[str]
    cap_s: float
    outputs: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def _train_args(data: Path, run: Path, gpu: bool, results: Path) -> list[str]:
    """A short ``gmp-train imagenet32`` run (one epoch; resume adds one)."""
    if gpu:
        size = ["--batch-size", "256", "--max-steps-per-epoch", "20", "--limit-val", "512",
                "--device", "cuda"]
    else:
        size = ["--batch-size", "16", "--max-steps-per-epoch", "2", "--limit-val", "32",
                "--width", "0.125", "--device", "cpu"]
    return ["imagenet32", "--data", str(data), "--out", str(run), "--param", "gmp_imn",
            "--num-classes", "10", "--epochs", "1", "--no-tensorboard", "--no-progress",
            "--results-dir", str(results), *size]


def plan(gpu: bool, out: Path, scratch: Path, python: str = sys.executable) -> list[Part]:
    """The parts of the check, in order (see the module docstring)."""
    data = scratch / "imagenet32-synthetic"
    bench = [python, str(ROOT / "benchmarks" / "train_throughput.py")]
    train = [python, "-m", "gmp.train"]
    torchrun = [python, "-m", "torch.distributed.run", "--standalone"]
    parts: list[Part] = []
    if gpu:
        parts.append(Part("tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                    "-k", "cuda", "tests/test_geometry.py",
                                    "tests/test_gpu_check.py"], 120))
        parts.append(Part("throughput-eager", [
            *bench, "--device", "cuda", "--rounds", "3", "--steps", "10",
            "--json", str(out / "throughput_eager.json")], 150,
            [str(out / "throughput_eager.json")]))
    else:
        parts.append(Part("tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                    "-k", "host or device_path or fallback or cuda",
                                    "tests/test_geometry.py"], 60))
        parts.append(Part("throughput-eager", [
            *bench, "--device", "cpu", "--width", "0.125", "--batch-size", "2",
            "--image-size", "32", "--rounds", "1", "--steps", "1", "--warmup", "1",
            "--no-fwd-bwd", "--json", str(out / "throughput_eager.json")], 90,
            [str(out / "throughput_eager.json")]))
    results = out / "imagenet32"
    first = _train_args(data, scratch / "run-imagenet32", gpu, results)
    parts.append(Part("imagenet32", [*train, *first], 90, [str(results)]))
    resumed = [a if a != "1" or first[i - 1] != "--epochs" else "2"
               for i, a in enumerate(first)] + ["--resume"]
    parts.append(Part("imagenet32-resume", [*train, *resumed], 90, [str(results)]))
    one = _train_args(data, scratch / "run-torchrun-1", gpu, out / "torchrun-1")
    parts.append(Part("torchrun-1", [*torchrun, "--nproc_per_node=1", "-m", "gmp.train", *one],
                      90, [str(out / "torchrun-1")]))
    two = _train_args(data, scratch / "run-torchrun-2-gloo", False, out / "torchrun-2-gloo")
    parts.append(Part("torchrun-2-gloo", [*torchrun, "--nproc_per_node=2", "-m", "gmp.train",
                                          *two], 120, [str(out / "torchrun-2-gloo")],
                      env={"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}))
    if gpu:
        for arch, params in (("vgg6", "sp,wn,wn_mbn,bn,gmp,gmp_imn"),
                             ("resnet18", "sp,bn,gmp_imn"), ("resnet18", "wn,wn_mbn,gmp")):
            tag = f"{arch}-{params.split(',')[0]}"
            path = out / f"throughput_compiled_{tag}.json"
            parts.append(Part(f"throughput-compiled-{tag}", [
                *bench, "--device", "cuda", "--compile", "--archs", arch, "--params", params,
                "--rounds", "2", "--steps", "10", "--no-fwd-bwd", "--json", str(path)], 240,
                [str(path)]))
    return parts


def _run(part: Part, remaining: float, logs: Path) -> dict:
    """Run ``part`` with a timeout of ``min(cap, remaining)``; its output goes to a log."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{part.name}.log"
    timeout = max(1.0, min(part.cap_s, remaining))
    env = {**os.environ, "PYTHONHASHSEED": "0", **part.env}
    t0 = time.perf_counter()
    with log.open("w") as f:
        f.write("$ " + " ".join(part.argv) + "\n")
        f.flush()
        try:
            rc = subprocess.run(part.argv, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                env=env, timeout=timeout).returncode
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            rc, status = None, "timeout"
    seconds = time.perf_counter() - t0
    tail = log.read_text(errors="replace").splitlines()[-3:]
    return {"name": part.name, "command": part.argv, "status": status, "returncode": rc,
            "seconds": round(seconds, 1), "timeout_s": round(timeout, 1),
            "log": str(log), "outputs": part.outputs, "log_tail": tail}


def gpu_goal(out: Path) -> list[dict]:
    """images/s of GmP+IMN relative to BN (goal ≥ 0.95) from the throughput files in ``out``."""
    rows = []
    for path in sorted(out.glob("throughput_*.json")):
        try:
            res = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        by = {(r["arch"], r["param"]): r for r in res.get("rows", [])}
        for arch in ("vgg6", "resnet18"):
            if (arch, "bn") in by and (arch, "gmp_imn") in by:
                gmp, bn = by[arch, "gmp_imn"], by[arch, "bn"]
                ratio = gmp["step_images_per_s"] / bn["step_images_per_s"]
                rows.append({"file": path.name, "arch": arch, "batch": gmp["batch"],
                             "compile": res.get("provenance", res).get("compile"),
                             "gmp_imn_over_bn": ratio,
                             "goal": 0.95, "met": ratio >= 0.95})
    return rows


def _provenance(out: Path, argv: list[str], extra: dict) -> dict:
    import gmp.provenance as prov

    return prov.record(argv, ignore=out / "manifest.json", extra=extra)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default results/gpu, or runs/gpu-check-cpu on a CPU)")
    p.add_argument("--scratch", type=Path, default=None,
                   help="synthetic data and run folders (default runs/gpu-check[-cpu])")
    p.add_argument("--budget", type=float, default=None,
                   help=f"seconds for the whole check (default {GPU_BUDGET_S} on a GPU, 150 "
                        "on a CPU)")
    p.add_argument("--cpu", action="store_true", help="CPU mode even if a GPU is visible")
    p.add_argument("--only", default=None, help="comma-separated part names to run")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = p.parse_args(argv)

    import torch

    gpu = torch.cuda.is_available() and not args.cpu
    if not gpu:
        print("gpu-check: no CUDA device visible: running the CPU-capable parts at toy sizes "
              "(the GPU figures need a GPU; nothing here measures one)", flush=True)
    out = (args.out or ROOT / ("results/gpu" if gpu else "runs/gpu-check-cpu")).resolve()
    scratch = (args.scratch or ROOT / ("runs/gpu-check" if gpu else "runs/gpu-check-cpu/scratch")
               ).resolve()
    budget = args.budget or (GPU_BUDGET_S if gpu else 150)
    parts = plan(gpu, out, scratch)
    if args.only:
        wanted = {s.strip() for s in args.only.split(",") if s.strip()}
        unknown = wanted - {q.name for q in parts}
        if unknown:
            p.error(f"--only: unknown part(s) {sorted(unknown)}; the parts are "
                    f"{[q.name for q in parts]}")
        parts = [q for q in parts if q.name in wanted]
    if args.dry_run:
        for q in parts:
            print(f"{q.name:32} cap {q.cap_s:5.0f}s  {' '.join(q.argv)}")
        return 0

    import shutil

    from gmp.data.imagenet32 import write_synthetic

    out.mkdir(parents=True, exist_ok=True)
    for run in scratch.glob("run-*"):  # every check starts fresh runs (resume is a part)
        shutil.rmtree(run)
    write_synthetic(scratch / "imagenet32-synthetic", n_train=5120 if gpu else 64,
                    n_val=512 if gpu else 32, num_classes=10, fmt="pickle", seed=0)
    start = time.perf_counter()
    results = []
    for part in parts:
        remaining = budget - (time.perf_counter() - start)
        if remaining < 5:
            results.append({"name": part.name, "command": part.argv, "status": "skipped",
                            "reason": "time budget spent"})
            print(f"gpu-check: {part.name}: skipped (budget spent)", flush=True)
            continue
        res = _run(part, remaining, out / "logs")
        results.append(res)
        print(f"gpu-check: {part.name}: {res['status']} in {res['seconds']:.0f}s "
              f"(log {res['log']})", flush=True)
    if not gpu:
        results.append({"name": "throughput-compiled", "status": "skipped",
                        "reason": "no GPU (torch.compile of whole models takes minutes on a CPU)"})
    command = ["benchmarks/gpu_check.py", *(sys.argv[1:] if argv is None else argv)]
    manifest = {"provenance": _provenance(out, command, {
        "budget_s": budget, "seconds": round(time.perf_counter() - start, 1),
        "gpu": ({"name": torch.cuda.get_device_name(0),
                 "capability": list(torch.cuda.get_device_capability(0)),
                 "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30,
                                     1)} if gpu else None)}),
        "mode": "gpu" if gpu else "cpu", "parts": results,
        "summary": gpu_goal(out) if gpu else []}
    from gmp.files import write_json

    write_json(out / "manifest.json", manifest, indent=2)
    for g in manifest["summary"]:
        print(f"gpu-check: {g['arch']} batch {g['batch']} (compile {g['compile']}): GmP+IMN / BN "
              f"= {g['gmp_imn_over_bn']:.3f} (goal >= 0.95: {'met' if g['met'] else 'NOT met'})")
    # The compiled throughput is the optional tail: cut short by the budget is not a failure.
    failed = [r["name"] for r in results if r["status"] == "failed"
              or (r["status"] in ("timeout", "skipped")
                  and not r["name"].startswith("throughput-compiled"))]
    print(f"gpu-check: wrote {out / 'manifest.json'}; "
          + (f"FAILED: {', '.join(failed)}" if failed else "all parts passed"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
