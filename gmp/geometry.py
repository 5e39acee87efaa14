"""Hyperspherical coordinates: angles to unit vectors, the stable inverse, and the metric.

Notation (Chen & Ge 2024, Sec. 3; NOTES.md Sec. 3). For ``θ ∈ R^{n-1}``

    u_1 = cos θ_1,
    u_i = (∏_{j<i} sin θ_j) · cos θ_i      for 2 ≤ i ≤ n-1,
    u_n = ∏_{j≤n-1} sin θ_j.

Invariant used everywhere below: ``‖u(θ)‖ = 1`` for *every* real θ (the squares telescope:
``cos² + sin²·(…) = 1`` from the last coordinate inwards), so training θ needs no projection.

All functions accept any leading batch shape ``(..., n-1)``; the last axis holds the angles.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["unit_vector", "angles", "metric_diagonal", "metric_tensor"]


def _pad_one(x: Tensor) -> Tensor:
    """Append a column of ones on the last axis: ``(..., k) -> (..., k+1)``."""
    return torch.cat([x, x.new_ones(x.shape[:-1] + (1,))], dim=-1)


def _prepend_one(x: Tensor) -> Tensor:
    """Prepend a column of ones on the last axis: ``(..., k) -> (..., k+1)``."""
    return torch.cat([x.new_ones(x.shape[:-1] + (1,)), x], dim=-1)


def _unit_vector_reference(theta: Tensor) -> Tensor:
    """Plain autograd composition of ``u(θ)``; also the exact fallback of the fast backward."""
    sin, cos = torch.sin(theta), torch.cos(theta)
    # prefix[..., i] = ∏_{j<i} sin θ_j  (prefix[..., 0] = 1), shape (..., n)
    prefix = _prepend_one(torch.cumprod(sin, dim=-1))
    return prefix * _pad_one(cos)


class _UnitVector(torch.autograd.Function):
    """``u(θ)`` with a closed-form O(n) backward.

    With ``s = sin θ``, ``c = cos θ``, ``P_k = ∏_{j≤k} s_j`` and incoming gradient ``g``:

        ∂L/∂θ_k = -g_k P_{k-1} s_k + c_k P_{k-1} Σ_{i>k} g_i u_i / P_k
                = P_{k-1} (-g_k s_k) + (c_k / s_k) T_k,      T_k = Σ_{i>k} g_i u_i,

    one reverse cumulative sum. ``T_k / s_k`` is exact in floating point as long as ``s_k``
    is not (close to) zero: every ``u_i`` with ``i > k`` carries the factor ``s_k``. Rows where
    some ``|s_k|`` is tiny (e.g. angles of a vector with a zero tail, θ_k ∈ {0, π}) are sent
    through the autograd reference instead, so the gradient stays exact everywhere.
    """

    @staticmethod
    def forward(theta: Tensor) -> Tensor:  # type: ignore[override]
        return _unit_vector_reference(theta)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        (theta,) = inputs
        ctx.save_for_backward(theta, output)

    @staticmethod
    def backward(ctx, grad_u: Tensor) -> Tensor:  # type: ignore[override]
        theta, u = ctx.saved_tensors
        sin, cos = torch.sin(theta), torch.cos(theta)
        # prefix_{k-1} = ∏_{j<k} s_j for k = 1..n-1
        prefix = _prepend_one(torch.cumprod(sin[..., :-1], dim=-1))
        gu = grad_u * u
        # tail[..., k] = Σ_{i>k} g_i u_i (0-based k over the n-1 angles)
        tail = gu.flip(-1).cumsum(-1).flip(-1)[..., 1:]
        tiny = torch.finfo(theta.dtype).tiny ** 0.5
        small = sin.abs() < tiny
        safe_sin = torch.where(small, torch.ones_like(sin), sin)
        grad = -grad_u[..., :-1] * prefix * sin + cos * tail / safe_sin
        if bool(small.any()):
            rows = small.any(dim=-1)
            with torch.enable_grad():
                t = theta[rows].detach().requires_grad_(True)
                (g,) = torch.autograd.grad(_unit_vector_reference(t), t, grad_u[rows])
            grad = grad.clone()
            grad[rows] = g
        return grad


def unit_vector(theta: Tensor) -> Tensor:
    """Map angles to a unit vector on ``S^{n-1}``.

    Args:
        theta: ``(..., n-1)`` real angles, any values (no range constraint).

    Returns:
        ``(..., n)`` tensor ``u(θ)`` with ``‖u‖ = 1``. ``n - 1 = 0`` gives ``(..., 1)`` ones.
    """
    if theta.dim() == 0:
        raise ValueError("unit_vector expects angles of shape (..., n-1); got a 0-d tensor")
    if not theta.is_floating_point():
        raise TypeError(f"unit_vector expects a floating tensor, got {theta.dtype}")
    if theta.shape[-1] == 0:
        return theta.new_ones(theta.shape[:-1] + (1,))
    return _UnitVector.apply(theta)


@torch.no_grad()
def angles(v: Tensor) -> tuple[Tensor, Tensor]:
    """Stable inverse of :func:`unit_vector`: ``v = norm · u(θ)``.

    Computed in float64 without autograd (``atan2`` has a NaN gradient at (0, 0)); the
    result is cast back to ``v``'s dtype. With tail norms ``ρ_k = ‖(v_{k+1}, …, v_n)‖``:
    ``θ_k = atan2(ρ_k, v_k)`` for ``k ≤ n-2`` (so ``θ_k ∈ [0, π]``) and
    ``θ_{n-1} = atan2(v_n, v_{n-1})`` (``∈ (-π, π]``, the sign of ``v_n`` is kept). A zero
    tail gives angles 0 or π, which ``unit_vector`` maps back exactly. The zero vector gives
    θ = 0 and norm 0. ``v`` is never modified.

    Args:
        v: ``(..., n)`` vectors, ``n ≥ 1``.

    Returns:
        ``(theta, norm)`` with shapes ``(..., n-1)`` and ``(...)``. For ``n = 1`` theta is
        empty and the direction (the sign of ``v``) is not encoded: keep it separately.
    """
    if v.dim() == 0 or v.shape[-1] == 0:
        raise ValueError(f"angles expects vectors of shape (..., n) with n >= 1, got {tuple(v.shape)}")
    x = v.detach().to(torch.float64)
    n = x.shape[-1]
    norm = torch.linalg.vector_norm(x, dim=-1)
    if n == 1:
        return x.new_zeros(x.shape[:-1] + (0,)).to(v.dtype), norm.to(v.dtype)
    # rho[..., k] = ‖x[..., k+1:]‖ computed from the reversed cumulative sum of squares,
    # scaled by the max |x| per row so that squares neither overflow nor underflow.
    scale = x.abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    xs = x / scale
    tail_sq = (xs * xs).flip(-1).cumsum(-1).flip(-1)
    rho = tail_sq[..., 1:].clamp_min(0).sqrt()  # (..., n-1): ‖x_{k+1:}‖ / scale
    theta = torch.atan2(rho[..., :-1], xs[..., :-2])
    last = torch.atan2(xs[..., -1], xs[..., -2]).unsqueeze(-1)
    theta = torch.cat([theta, last], dim=-1)
    return theta.to(v.dtype), norm.to(v.dtype)


def metric_diagonal(theta: Tensor) -> Tensor:
    """Diagonal of the metric tensor ``G(θ) = J^T J`` of hyperspherical coordinates.

    ``G = diag(1, sin²θ_1, sin²θ_1 sin²θ_2, …, ∏_{j≤n-2} sin²θ_j)``; off-diagonal entries
    vanish. Every entry lies in ``[0, 1]`` (the content of Theorem 3.7).

    Args:
        theta: ``(..., n-1)`` angles.

    Returns:
        ``(..., n-1)`` diagonal entries.
    """
    sin2 = torch.sin(theta[..., :-1]) ** 2
    return _prepend_one(torch.cumprod(sin2, dim=-1))


def metric_tensor(theta: Tensor) -> Tensor:
    """Full metric tensor ``G(θ)``, shape ``(..., n-1, n-1)`` (diagonal)."""
    return torch.diag_embed(metric_diagonal(theta))
