"""The perturbation experiment of Fig. 1(b–e): how far does a small parameter step move a CAB?

Chen & Ge 2024, Sec. 2.3 and 3.3 (NOTES.md Sec. 2). Protocol:

1. draw ``m`` units with weights ``w ∈ Rⁿ`` and biases ``b`` i.i.d. ``N(0, std²)``, by default
   ``std = 1e-3`` (variance 1e-6) in ``n = 2`` dimensions: *small* weights, as weight decay
   produces;
2. write the same units under each parameterization (:data:`gmp.baselines.METHODS`), so that
   every method starts from the same boundaries:

   - ``"sp"``: ``nn.Linear`` with ``weight = w``, ``bias = b``;
   - ``"wn"``: weight-normalised ``nn.Linear`` with ``v = w``, ``g = ‖w‖``, ``bias = b``;
   - ``"bn"``: ``nn.Linear(w, b)`` followed by ``nn.BatchNorm1d`` (``γ = 1``, ``β = 0``) in
     training mode, normalising with the statistics of a fixed zero-mean input batch;
   - ``"gmp"``: :meth:`gmp.nn.GmPLinear.from_linear`, i.e. ``θ = angles(w)``, ``λ = b/‖w‖``,
     ``r = ‖w‖``;

3. add ``δ`` to every entry of every parameter (``ε = δ·𝟏``); under GmP to ``θ`` and ``λ``
   only, since ``r`` scales the output and does not move the CAB;
4. compare the CABs before and after: the angle between the directions and the distance
   between the spatial locations.

The units are independent draws; a result holds them all, so one call gives both a picture
(one unit) and statistics (many units). Everything is computed in float64 on the CPU and is
deterministic given ``seed``. The global torch RNG is left untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .baselines import check_method, hidden_layer
from .cab import angular_change, directions, effective_weight_bias, spatial_locations
from .nn import GmPLinear

__all__ = [
    "PerturbationResult",
    "sample_units",
    "centred_batch",
    "build_layer",
    "perturb_",
    "run_perturbation",
    "perturbation_grid",
    "summarize",
]

_F64 = torch.float64


@dataclass(frozen=True)
class PerturbationResult:
    """CABs of ``m`` units with input in ``Rⁿ`` before and after one perturbation.

    Attributes:
        method: the parameterization (``"sp"``, ``"wn"``, ``"bn"`` or ``"gmp"``).
        delta: the perturbation added to every parameter.
        weight_before, weight_after: ``(m, n)`` effective weights ``w`` of ``wᵀx + b``.
        bias_before, bias_after: ``(m,)`` effective biases ``b``.
        location_before, location_after: ``(m, n)`` spatial locations ``φ = -b·w/‖w‖²``.
        direction_before, direction_after: ``(m, n)`` unit normals ``w/‖w‖`` of the CABs.
        angle_change: ``(m,)`` angle between the directions, radians in ``[0, π]``.
        location_shift: ``(m,)`` Euclidean distance ``‖φ_after - φ_before‖``.
    """

    method: str
    delta: float
    weight_before: np.ndarray
    bias_before: np.ndarray
    weight_after: np.ndarray
    bias_after: np.ndarray
    location_before: np.ndarray
    location_after: np.ndarray
    direction_before: np.ndarray
    direction_after: np.ndarray
    angle_change: np.ndarray
    location_shift: np.ndarray

    @property
    def angle_change_deg(self) -> np.ndarray:
        """``(m,)`` angle between the directions in degrees."""
        return np.degrees(self.angle_change)


def sample_units(m: int = 1, n: int = 2, std: float = 1e-3,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(m, n)`` and biases ``(m,)`` drawn i.i.d. from ``N(0, std²)`` (float64)."""
    if m < 1 or n < 1:
        raise ValueError(f"need m >= 1 units with fan-in n >= 1, got m={m}, n={n}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, std, size=(m, n))
    b = rng.normal(0.0, std, size=m)
    return w, b


def centred_batch(n: int = 2, size: int = 256, seed: int = 0) -> Tensor:
    """A standard-Gaussian input batch ``(size, n)`` shifted to zero mean exactly (float64).

    Prop. 2.5 assumes zero-mean input; BN normalises with this batch's statistics.
    """
    if size < 2:
        raise ValueError(f"a batch for BN statistics needs size >= 2, got {size}")
    x = torch.as_tensor(np.random.default_rng(seed).standard_normal((size, n)), dtype=_F64)
    return x - x.mean(dim=0)


def build_layer(method: str, w: np.ndarray | Tensor, b: np.ndarray | Tensor) -> nn.Module:
    """A float64 layer of ``method`` whose units have effective weights ``w`` and biases ``b``.

    Args:
        method: one of :data:`gmp.baselines.METHODS`.
        w: ``(m, n)`` weights; b: ``(m,)`` biases.

    Returns:
        the layer built by :func:`gmp.baselines.hidden_layer` (BN block in training mode:
        its effective parameters depend on the input batch, see :func:`run_perturbation`).
    """
    method = check_method(method)
    w_t = torch.as_tensor(np.asarray(w, dtype=np.float64))
    b_t = torch.as_tensor(np.asarray(b, dtype=np.float64))
    if w_t.dim() != 2 or b_t.shape != (w_t.shape[0],):
        raise ValueError(f"expected w of shape (m, n) and b of shape (m,), got "
                         f"{tuple(w_t.shape)} and {tuple(b_t.shape)}")
    m, n = w_t.shape
    with torch.random.fork_rng(devices=[]):  # the default init below must not consume
        torch.manual_seed(0)                   # the caller's random stream
        layer = hidden_layer("sp" if method == "gmp" else method, n, m).to(_F64)
    linear = layer[0] if method == "bn" else layer
    with torch.no_grad():
        # WN: assigning the weight goes through weight_norm's right inverse: v = w, g = ‖w‖.
        if method == "wn":
            linear.weight = w_t.clone()
        else:
            linear.weight.copy_(w_t)
        linear.bias.copy_(b_t)
    if method == "gmp":
        return GmPLinear.from_linear(layer)
    return layer


@torch.no_grad()
def perturb_(layer: nn.Module, delta: float) -> nn.Module:
    """Add ``delta`` to every entry of every parameter, in place (GmP: ``θ`` and ``λ`` only)."""
    if isinstance(layer, GmPLinear):
        params: Iterable[nn.Parameter] = [p for p in (layer.theta, layer.lam) if p is not None]
    else:
        params = layer.parameters()
    for p in params:
        p.add_(delta)
    return layer


def _state(layer: nn.Module, x: Tensor | None) -> tuple[np.ndarray, ...]:
    # Copies: for a float64 layer the effective weight may share memory with the parameter,
    # which perturb_ then changes in place.
    w, b = effective_weight_bias(layer, x)
    phi = spatial_locations(layer, x)
    d = directions(layer, x)
    return tuple(t.numpy().copy() for t in (w, b, phi, d))


def run_perturbation(method: str, delta: float, m: int = 1, n: int = 2, std: float = 1e-3,
                     seed: int = 0, batch: Tensor | None = None) -> PerturbationResult:
    """Perturb ``m`` units of ``method`` by ``δ`` and measure how their CABs move.

    The units come from :func:`sample_units` with ``seed``, so every method starts from the
    same boundaries. ``batch`` is the ``(N, n)`` input used for BN's statistics (default:
    :func:`centred_batch` with ``seed``); other methods ignore it.
    """
    method = check_method(method)
    w, b = sample_units(m, n, std, seed)
    x = None
    if method == "bn":
        x = centred_batch(n, seed=seed) if batch is None else torch.as_tensor(batch, dtype=_F64)
        if x.dim() != 2 or x.shape[1] != n:
            raise ValueError(f"batch must have shape (N, {n}), got {tuple(x.shape)}")
    layer = build_layer(method, w, b)
    w0, b0, phi0, d0 = _state(layer, x)
    perturb_(layer, float(delta))
    w1, b1, phi1, d1 = _state(layer, x)
    return PerturbationResult(
        method=method, delta=float(delta),
        weight_before=w0, bias_before=b0, weight_after=w1, bias_after=b1,
        location_before=phi0, location_after=phi1,
        direction_before=d0, direction_after=d1,
        angle_change=angular_change(d0, d1).numpy(),
        location_shift=np.linalg.norm(phi1 - phi0, axis=-1),
    )


def perturbation_grid(methods: Sequence[str], deltas: Sequence[float], m: int = 1, n: int = 2,
                      std: float = 1e-3, seed: int = 0) -> list[list[PerturbationResult]]:
    """``grid[i][j] = run_perturbation(methods[i], deltas[j], ...)``, same units throughout."""
    return [[run_perturbation(meth, d, m, n, std, seed) for d in deltas] for meth in methods]


def summarize(results: Iterable[PerturbationResult]) -> list[dict[str, float | str]]:
    """One row per result: median and max angle change (degrees) and location shift."""
    rows: list[dict[str, float | str]] = []
    for r in results:
        ang = r.angle_change_deg
        rows.append({
            "method": r.method, "delta": r.delta, "units": int(ang.shape[0]),
            "median_angle_deg": float(np.median(ang)), "max_angle_deg": float(np.max(ang)),
            "median_shift": float(np.median(r.location_shift)),
            "max_shift": float(np.max(r.location_shift)),
        })
    return rows
