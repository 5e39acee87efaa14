"""What the book's ImageNet chapters show: recorded results and cost estimates.

- :func:`load_results` / :func:`results_table`: the ``summary.json`` files that ``gmp-train
  --results-dir results/<task>`` writes (command, git revision, date, hardware, metrics);
- :func:`cost_estimate`: FLOPs per image counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` on one forward pass, and a rough memory
  budget. These are **estimates**, labelled as such.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models import build_model, count_parameters
from ..provenance import normalize

__all__ = ["CostEstimate", "cost_estimate", "format_table", "load_results", "results_table"]


def load_results(folder: str | Path, task: str | None = None) -> list[dict[str, Any]]:
    """Every ``*.json`` summary in ``folder`` (optionally only those of ``task``), sorted by
    name; an absent folder gives an empty list. Files that are not run summaries are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.glob("*.json")):
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(d, dict) or "config" not in d or "final" not in d:
            continue
        if task is None or d["config"].get("task") == task:
            d["_file"] = p.name
            out.append(d)
    return out


def results_table(runs: list[dict[str, Any]]) -> str:
    """A plain-text table, one row per run: variant, batch, epochs, best and final top-1 /
    top-5, validation images, hardware, git revision and date."""
    rows = []
    for d in runs:
        c, f = d["config"], d["final"] or {}
        prov = normalize(d.get("provenance", d))  # older summaries kept it at the top level
        dev = prov.get("device") or {}
        hw = prov["hardware"]
        where = (f"{dev.get('processes', hw.get('processes', '?'))}x "
                 f"{dev.get('name') or hw.get('gpu') or dev.get('type') or hw.get('device', '?')}")
        rows.append([
            c["arch"], c["param"], str(c["batch_size"]), f"{c['lr']:g}",
            f"{d['epochs_completed']}/{c['epochs']}"
            + (" diverged" if d.get("diverged") else ""),
            _num(d["best_val_top1"]), _num(d["best_val_top5"]), _num(f.get("val_top1")),
            _num(f.get("val_top5")), str(f.get("val_images", "-")),
            where, str(prov["git_revision"] or "unknown")[:10],
            str(d.get("updated", ""))[:10]])
    return format_table(["arch", "param", "batch", "lr", "epochs", "best top-1", "best top-5",
                         "final top-1", "final top-5", "val images", "hardware", "revision",
                         "date"], rows)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned fixed-width text table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


@dataclass
class CostEstimate:
    arch: str
    param: str
    parameters: int
    forward_gflops_per_image: float  # counted convolution / matmul FLOPs (2 per MAC)
    activation_values_per_image: int  # outputs of every leaf module, kept for backward

    def train_flops(self, images: int, epochs: int) -> float:
        """Training FLOPs ≈ 3 × forward (backward costs about twice the forward)."""
        return 3.0 * self.forward_gflops_per_image * 1e9 * images * epochs

    def memory_gib(self, batch: int, bytes_per_activation: int = 2) -> float:
        """Rough training memory: activations (bf16) + fp32 weights, gradients, momentum.

        A lower bound: cuDNN workspaces, the allocator's cache and temporaries come on top
        (``gmp-train`` records the measured peak, ``gpu_mem_gib``, on CUDA)."""
        act = self.activation_values_per_image * batch * bytes_per_activation
        return (act + 3 * 4 * self.parameters) / 2**30


def cost_estimate(arch: str, param: str, image_size: int, num_classes: int = 1000) -> CostEstimate:
    """Count forward FLOPs and stored activations of one image at full width (CPU, no grad).

    GmP's extra work — forming ``r·u(θ)`` once per step, O(mn) per layer (Remark 3.4) — does
    not grow with the batch and is not part of the per-image count.
    """
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(arch, param, num_classes).eval()
    values = 0

    def hook(_m: nn.Module, _i, out) -> None:
        nonlocal values
        if isinstance(out, torch.Tensor):
            values += out.numel()

    # Layer outputs only: leaf modules and parametrized layers (a WN conv's children compute
    # its weight, once per step, not once per image), never nn.Identity.
    skip = {id(q) for m in model.modules() if hasattr(m, "parametrizations")
            for q in m.parametrizations.modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if (hasattr(m, "parametrizations") or not list(m.children()))
               and not isinstance(m, nn.Identity) and id(m) not in skip]
    x = torch.zeros(1, 3, image_size, image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    for h in handles:
        h.remove()
    return CostEstimate(arch, param, count_parameters(model), fc.get_total_flops() / 1e9, values)
