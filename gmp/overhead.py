"""What GmP costs per training step: GmP layers against plain and weight-normalized ones.

A GmP layer rebuilds ``weight = r·u(θ)`` from its angles at every forward, O(mn) work beside
the O(batch·mn) product (Remark 3.4). :func:`measure_layer_overhead` times candidates that
compute the same function side by side, interleaved (every repeat runs each candidate once,
in a rotating order, so drifts in machine load hit all of them alike) and reports medians,
quartiles and ratios to the first candidate (the plain layer).

Modes: ``"step"`` a whole training step as users run it (``opt.zero_grad(set_to_none=True)``,
forward, backward, ``opt.step()``; fresh gradient buffers every step are part of the cost);
``"train"`` forward + backward only (gradients accumulated in place); ``"eval"`` an inference
forward.

Candidates (``param``): ``"sp"`` plain ``nn.Linear``/``nn.Conv2d``; ``"wn"`` torch's
``parametrizations.weight_norm`` on it; ``"gmp"`` the same layer after :func:`gmp.convert`;
``"gmp_compiled"`` that layer with the ``torch.compile``'d weight kernel
(:func:`gmp.geometry.set_weight_kernel`).

Typical use (small sizes run in seconds)::

    rows = measure_layer_overhead(linear_cases(batch_sizes=(16, 256), features=256))

The full protocol of issue #2 is ``benchmarks/layer_overhead.py``.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .params import get_spec

__all__ = ["CANDIDATES", "CANDIDATE_PARAMS", "Case", "VGG6_CONV_SHAPES", "linear_cases",
           "conv_cases", "vgg6_cases", "resnet18_cases", "measure_layer_overhead", "format_rows"]

#: The candidates that can be timed. Plain, weight-normalized and GmP layers, and GmP with its
#: compiled weight kernel (``gmp_compiled``).
CANDIDATES: tuple[str, ...] = ("sp", "wn", "gmp", "gmp_compiled")
#: The parameterization of each candidate (:mod:`gmp.params`).
CANDIDATE_PARAMS: dict[str, str] = {"sp": "sp", "wn": "wn", "gmp": "gmp", "gmp_compiled": "gmp"}
MODES = ("train", "eval", "step")
OPTIMIZERS = ("adam", "sgd")

#: The convolutions of VGG-6 on 32×32 inputs, as (in, out, spatial size).
VGG6_CONV_SHAPES: tuple[tuple[int, int, int], ...] = (
    (3, 128, 32), (128, 128, 32), (128, 256, 16), (256, 256, 16), (256, 512, 8), (512, 512, 8))


@dataclass(frozen=True)
class Case:
    """One workload: a plain model builder and an input shape.

    Attributes:
        name: label, e.g. ``"linear 1024→1024"``.
        batch: batch size (for the report).
        input_shape: shape of the input, batch first.
        build: returns the plain (SP) model; other parameterizations are derived from a copy of it.
        params: candidates to time; the first is the baseline of the ratios.
    """

    name: str
    batch: int
    input_shape: tuple[int, ...]
    build: Callable[[], nn.Module] = field(repr=False)
    params: tuple[str, ...] = ("sp", "gmp")


def _derive(plain: nn.Module, param: str) -> nn.Module:
    """The candidate ``param`` computing the same function as ``plain`` (a deep copy),
    rewritten by its parameterization (:meth:`gmp.params.Parameterization.convert_model`)."""
    if param not in CANDIDATES:
        raise ValueError(f"unknown candidate {param!r}; expected one of {CANDIDATES}")
    return get_spec(CANDIDATE_PARAMS[param]).convert_model(copy.deepcopy(plain))


def linear_cases(batch_sizes: Iterable[int] = (1, 4, 16, 64, 256, 1024), features: int = 1024,
                 params: Sequence[str] = ("sp", "wn", "gmp")) -> list[Case]:
    """``features → features`` linear layers (with bias) at each batch size."""
    return [Case(f"linear {features}→{features}", b, (b, features),
                 lambda: nn.Linear(features, features), tuple(params)) for b in batch_sizes]


def conv_cases(batch: int = 32, shapes: Iterable[tuple[int, int, int]] = VGG6_CONV_SHAPES,
               params: Sequence[str] = ("sp", "gmp")) -> list[Case]:
    """3×3 "same" convolutions ``(in, out, size)`` at one batch size (VGG-6's by default)."""
    return [Case(f"conv3x3 {ci}→{co} @{s}×{s}", batch, (batch, ci, s, s),
                 (lambda ci=ci, co=co: nn.Conv2d(ci, co, 3, padding="same")), tuple(params))
            for ci, co, s in shapes]


def vgg6_cases(batch: int = 32, width: float = 1.0, num_classes: int = 1000, size: int = 32,
               params: Sequence[str] = ("sp", "gmp")) -> list[Case]:
    """The whole VGG-6 of :mod:`gmp.models` (every conv and the classifier converted)."""
    from .models import vgg6

    name = f"VGG-6 (width {width:g}, {num_classes} classes) @{size}×{size}"
    return [Case(name, batch, (batch, 3, size, size),
                 lambda: vgg6("sp", num_classes=num_classes, width=width), tuple(params))]


def resnet18_cases(batch: int = 8, width: float = 0.25, num_classes: int = 1000,
                   size: int = 64, params: Sequence[str] = ("sp", "gmp")) -> list[Case]:
    """The whole ResNet-18 of :mod:`gmp.models` (every conv and the classifier converted)."""
    from .models import resnet18

    name = f"ResNet-18 (width {width:g}, {num_classes} classes) @{size}×{size}"
    return [Case(name, batch, (batch, 3, size, size),
                 lambda: resnet18("sp", num_classes=num_classes, width=width), tuple(params))]


def _optimizer(model: nn.Module, name: str) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=1e-4)
    return torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)


def _step(model: nn.Module, x: Tensor, mode: str, grad_out: Tensor | None,
          opt: torch.optim.Optimizer | None = None) -> None:
    if mode == "eval":
        with torch.no_grad():
            model(x)
        return
    if mode == "step":
        opt.zero_grad(set_to_none=True)
        x.grad = None
        model(x).backward(grad_out)
        opt.step()
        return
    for p in model.parameters():
        p.grad = None
    x.grad = None
    model(x).backward(grad_out)


def _run(param: str, model: nn.Module, x: Tensor, mode: str, grad_out: Tensor | None,
         opt: torch.optim.Optimizer | None) -> None:
    """One step of ``param``, with the compiled weight kernel for ``"gmp_compiled"``."""
    from .geometry import set_weight_kernel

    if param != "gmp_compiled":
        _step(model, x, mode, grad_out, opt)
        return
    old = set_weight_kernel("compile")
    try:
        _step(model, x, mode, grad_out, opt)
    finally:
        set_weight_kernel(old)


def measure_layer_overhead(cases: Iterable[Case], *, repeats: int = 15, warmup: int = 2,
                           modes: Sequence[str] = ("train",), input_grad: bool = True,
                           threads: int | None = None, seed: int = 0,
                           progress: bool = True, optimizer: str = "adam") -> list[dict]:
    """Time every candidate of every case, interleaved, and return one row per candidate.

    ``step`` mode times a whole training step (``zero_grad(set_to_none=True)``, forward,
    backward, ``optimizer`` step); ``train`` mode times forward + backward (parameters'
    gradients, and the input's with ``input_grad``, as for a hidden layer); ``eval`` times
    an inference forward (``model.eval()`` under ``torch.no_grad``, where GmP layers use
    their cached weight).

    Args:
        cases: workloads (:func:`linear_cases`, :func:`conv_cases`, :func:`vgg6_cases`).
        repeats: timed runs per candidate (the median is reported).
        warmup: untimed runs per candidate before timing.
        modes: any of ``"train"``, ``"eval"``.
        input_grad: in ``train`` mode, also compute the input's gradient.
        threads: ``torch.set_num_threads`` for the measurement (restored afterwards).
        seed: seeds weights and inputs.
        progress: show a tqdm bar.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9), the step of ``step`` mode.

    Returns:
        Rows ``{"case", "batch", "mode", "param", "median_ms", "q1_ms", "q3_ms", "ratio",
        "cpu_median_ms", "cpu_ratio", "repeats", "threads", "max_abs_diff", "optimizer"}``
        (``optimizer`` None outside ``step`` mode): wall-clock
        medians and quartiles, ``ratio`` = median / the first candidate's median; ``cpu_*`` the
        same for the process's CPU time (less sensitive to other processes time-slicing the
        cores, but it counts the threads' spin-waiting); ``max_abs_diff`` compares outputs
        with the first candidate's.
    """
    from tqdm.auto import tqdm

    cases = list(cases)
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
    for case in cases:
        for param in case.params:
            if param not in CANDIDATES:
                raise ValueError(f"case {case.name!r}: unknown candidate {param!r}; "
                                 f"expected one of {CANDIDATES}")
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    rows: list[dict] = []
    total = sum(len(c.params) * (warmup + repeats) for c in cases) * len(modes)
    bar = tqdm(total=total, disable=not progress, desc="overhead", leave=False)
    try:
        for case in cases:
            torch.manual_seed(seed)
            plain = case.build()
            models = {m: _derive(plain, m) for m in case.params}
            x = torch.randn(case.input_shape)
            for mode in modes:
                for model in models.values():
                    model.train(mode != "eval")
                opts = {m: _optimizer(model, optimizer) if mode == "step" else None
                        for m, model in models.items()}
                xin = x.detach().requires_grad_(mode != "eval" and input_grad)
                with torch.no_grad():
                    outs = {m: model(xin) for m, model in models.items()}
                base_out = outs[case.params[0]]
                grad_out = torch.randn_like(base_out)
                if "gmp_compiled" in models:  # compile outside the timed and warm-up runs
                    _run("gmp_compiled", models["gmp_compiled"], xin,
                         "eval" if mode == "eval" else "train", grad_out, None)
                times: dict[str, list[float]] = {m: [] for m in case.params}
                cpu: dict[str, list[float]] = {m: [] for m in case.params}
                order = list(case.params)
                for i in range(warmup + repeats):
                    for param in order:
                        start, start_cpu = time.perf_counter(), time.process_time()
                        _run(param, models[param], xin, mode, grad_out, opts[param])
                        elapsed = time.perf_counter() - start
                        elapsed_cpu = time.process_time() - start_cpu
                        if i >= warmup:
                            times[param].append(elapsed)
                            cpu[param].append(elapsed_cpu)
                        bar.update(1)
                    order = order[1:] + order[:1]
                base = statistics.median(times[case.params[0]])
                base_cpu = statistics.median(cpu[case.params[0]])
                for param in case.params:
                    ts = times[param]
                    med = statistics.median(ts)
                    q1, _, q3 = statistics.quantiles(ts, n=4) if len(ts) > 1 else (med,) * 3
                    rows.append({
                        "case": case.name, "batch": case.batch, "mode": mode, "param": param,
                        "median_ms": 1e3 * med, "q1_ms": 1e3 * q1, "q3_ms": 1e3 * q3,
                        "ratio": med / base,
                        "cpu_median_ms": 1e3 * statistics.median(cpu[param]),
                        "cpu_ratio": statistics.median(cpu[param]) / base_cpu,
                        "repeats": repeats,
                        "threads": torch.get_num_threads(),
                        "max_abs_diff": float((outs[param] - base_out).abs().max()),
                        "optimizer": optimizer if mode == "step" else None,
                    })
    finally:
        bar.close()
        torch.set_num_threads(old_threads)
    return rows


def format_rows(rows: Sequence[dict]) -> str:
    """A plain-text table of :func:`measure_layer_overhead` rows."""
    header = (f"{'case':<40} {'batch':>5} {'mode':<5} {'param':<6} {'median ms':>10} "
              f"{'ratio':>6} {'cpu ratio':>9}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['case']:<40} {r['batch']:>5} {r['mode']:<5} {r['param']:<6} "
                     f"{r['median_ms']:>10.3f} {r['ratio']:>6.3f} {r['cpu_ratio']:>9.3f}")
    return "\n".join(lines)
