"""Hyperspherical coordinates: angles to unit vectors, the stable inverse, and the metric.

Notation (Chen & Ge 2024, Sec. 3). For ``θ ∈ R^{n-1}``

    u_1 = cos θ_1,
    u_i = (∏_{j<i} sin θ_j) · cos θ_i      for 2 ≤ i ≤ n-1,
    u_n = ∏_{j≤n-1} sin θ_j.

Invariant used everywhere below: ``‖u(θ)‖ = 1`` for *every* real θ (the squares telescope:
``cos² + sin²·(…) = 1`` from the last coordinate inwards), so training θ needs no projection.

All functions accept any leading batch shape ``(..., n-1)``; the last axis holds the angles.
:func:`scaled_unit_vector` computes ``r·u(θ)`` (the weight of a GmP layer) with one fused
autograd Function whose backward is closed-form and O(n) per row.

Two interchangeable kernels compute it (:func:`set_weight_kernel`): ``"eager"`` (the default:
a few PyTorch operations per pass) and ``"compile"`` (the forward's elementwise passes fused
by ``torch.compile``: C++ on a CPU, Triton on a GPU; eager is used whenever compiling fails).
Neither synchronizes with the host on an accelerator: the rows that need the exact fallback
are selected on the device with ``torch.where`` (a CPU, where a host check costs nothing,
recomputes only those rows).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch
from torch import Tensor
from torch._C._functorch import is_functorch_wrapped_tensor

__all__ = ["unit_vector", "scaled_unit_vector", "angles", "metric_diagonal", "metric_tensor",
           "set_weight_kernel", "weight_kernel"]

KERNELS = ("eager", "compile")
#: The weight kernel in use; ``GMP_WEIGHT_KERNEL=compile`` in the environment opts in at import.
_kernel = {"name": os.environ.get("GMP_WEIGHT_KERNEL", "eager"), "compiled": None}
if _kernel["name"] not in KERNELS:
    raise ValueError(f"GMP_WEIGHT_KERNEL={_kernel['name']!r}; expected one of {KERNELS}")


def set_weight_kernel(name: str) -> str:
    """Choose how :func:`scaled_unit_vector` computes its forward; returns the previous choice.

    ``"eager"`` (default): plain PyTorch operations. ``"compile"``: the forward's passes over
    the ``(..., n-1)`` angles (sine, cosine, cotangent, products, the weight) fused into one
    generated kernel by ``torch.compile`` (``dynamic=True``: one compilation for every layer
    shape; the first call takes seconds). Weights of fewer than 2^15 angles keep the eager
    kernel (there a compiled call's fixed cost exceeds the saving). If compilation fails
    (e.g. no C++ compiler) a warning is issued and eager is used from then on. Results equal
    eager's up to rounding; the backward (closed form, see ``_ScaledUnitVector``) is the same
    for both. Under ``vmap``/``jacrev`` the eager kernel is used.
    """
    if name not in KERNELS:
        raise ValueError(f"set_weight_kernel: unknown kernel {name!r}; expected one of {KERNELS}")
    old = _kernel["name"]
    _kernel["name"] = name
    return old


def weight_kernel() -> str:
    """The current kernel of :func:`scaled_unit_vector`: ``"eager"`` or ``"compile"``."""
    return _kernel["name"]


def _check_angles(theta: Tensor, fn: str) -> None:
    if not isinstance(theta, Tensor):
        raise TypeError(f"{fn} expects a tensor of angles, got {type(theta).__name__}")
    if theta.dim() == 0:
        raise ValueError(f"{fn} expects angles of shape (..., n-1); got a 0-d tensor")
    if not theta.is_floating_point():
        raise TypeError(f"{fn} expects a floating-point tensor, got {theta.dtype}")


def _unit_vector_reference(theta: Tensor) -> Tensor:
    """Plain autograd composition of ``u(θ)``: ``(..., n-1) -> (..., n)``, ``n ≥ 2``.

    The definition the fused Function is tested against, and its exact fallback.
    """
    sin, cos = torch.sin(theta), torch.cos(theta)
    ones = theta.new_ones(theta.shape[:-1] + (1,))
    # prefix[..., i] = ∏_{j<i} sin θ_j  (prefix[..., 0] = 1), shape (..., n)
    prefix = torch.cat([ones, torch.cumprod(sin, dim=-1)], dim=-1)
    return prefix * torch.cat([cos, ones], dim=-1)


def _small_sine(dtype: torch.dtype) -> float:
    """``|sin θ_k|`` below this sends a row of the fast backward to the exact fallback.

    The closed form divides by ``sin θ_k``: exact while the factor ``sin θ_k`` it cancels is
    representable, 0/0 for ``sin θ_k = 0`` exactly (angles of zero-tail vectors).
    """
    return torch.finfo(dtype).tiny ** 0.5


def _parts_eager(theta: Tensor, r: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """``(w, cot, r·P)`` (shapes ``(..., n)``, ``(..., n-1)``, ``(..., n-1)``) in PyTorch ops.

    Every op is one pass over an ``(m, n)`` array, and on a CPU every fresh buffer is paid
    again in page faults, so exactly three are allocated, the three outputs: ``sin`` becomes
    ``r·P`` by an in-place cumulative product, ``cos`` becomes ``cot`` once ``w`` holds a copy
    of it, and ``w`` is scaled in place. (sin and cos write contiguous outputs: into a
    strided view of ``w`` cos is ~40% slower.)
    """
    if is_functorch_wrapped_tensor(theta):  # vmap/jacrev: out-of-place ops only
        return _parts_traceable(theta, r)
    cos = torch.cos(theta)
    r_prod = torch.sin(theta)
    w = theta.new_empty(theta.shape[:-1] + (theta.shape[-1] + 1,))
    w[..., :-1] = cos
    cot = torch.div(cos, r_prod, out=cos)  # ±inf or nan where s = 0 (those rows are redone)
    r_prod.cumprod_(dim=-1)  # P, then r·P
    if r is not None:
        r_prod.mul_(r.unsqueeze(-1))
        w[..., 0].mul_(r)  # w_0 = r·c_0
    w[..., 1:-1].mul_(r_prod[..., :-1])  # w_k = r·P_{k-1}·c_k
    w[..., -1] = r_prod[..., -1]  # w_{n-1} = r·P_{n-2}
    return w, cot, r_prod


def _parts_traceable(theta: Tensor, r: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`_parts_eager` without ``out=`` or in-place writes (Dynamo graph-breaks on a
    strided ``out=``): the form ``torch.compile`` fuses."""
    cos, sin = torch.cos(theta), torch.sin(theta)
    r_prod = torch.cumprod(sin, dim=-1)
    head = cos[..., :1]
    if r is not None:
        rr = r.unsqueeze(-1)
        r_prod = r_prod * rr
        head = head * rr
    w = torch.cat([head, r_prod[..., :-1] * cos[..., 1:], r_prod[..., -1:]], dim=-1)
    return w, cos / sin, r_prod


#: Smaller weights keep the eager kernel under ``"compile"``: a compiled call's fixed cost
#: (guards, launch) exceeds what fusing saves on them.
_COMPILE_MIN_NUMEL = 1 << 15


def _compiled_parts() -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    if _kernel["compiled"] is None:
        _kernel["compiled"] = torch.compile(_parts_traceable, dynamic=True)
    return _kernel["compiled"]


def _forward_parts(theta: Tensor, r: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """``(w, cot, r·P)`` with the kernel chosen by :func:`set_weight_kernel`."""
    if torch.compiler.is_compiling():  # inside a user's torch.compile: let it trace
        return _parts_traceable(theta, r)
    if (_kernel["name"] == "compile" and theta.numel() >= _COMPILE_MIN_NUMEL
            and not is_functorch_wrapped_tensor(theta)):
        try:  # detached: Dynamo keeps nn.Parameter shapes static (a recompile per layer)
            return _compiled_parts()(theta.detach(), None if r is None else r.detach())
        except Exception as err:  # noqa: BLE001 - any backend failure: fall back to eager
            warnings.warn(f"gmp.geometry: torch.compile of the weight kernel failed "
                          f"({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                          "using the eager kernel from now on", RuntimeWarning, stacklevel=3)
            _kernel["name"] = "eager"
    return _parts_eager(theta, r)


class _ScaledUnitVector(torch.autograd.Function):
    """``w = r·u(θ)``: ``(..., n-1), (...) -> (..., n)`` with ``n ≥ 2``; ``r = None`` gives ``u``.

    Forward, with ``s = sin θ``, ``c = cos θ`` and ``P_k = ∏_{j≤k} s_j`` (0-based ``k``,
    ``P_{-1} = 1``): ``u_k = P_{k-1} c_k`` for ``k < n-1`` and ``u_{n-1} = P_{n-2}``, one
    cumulative product. ``cot = c/s`` and ``r·P`` are returned as extra non-differentiable
    outputs and saved with ``w``: the backward evaluates no transcendental function and
    keeps no copy of ``u``.

    Backward, for the incoming ``g = ∂L/∂w``, ``h = g ⊙ w`` and ``rT_k = Σ_{i>k} h_i`` (one
    reverse cumulative sum, whose full total is ``r·∂L/∂r``):

        ∂L/∂r   = Σ_i h_i / r              (Σ_i g_i u_i recomputed on rows with r = 0),
        ∂L/∂θ_k = cot_k · rT_k − g_k · rP_k,

    since ``∂u_k/∂θ_k = −P_k`` and ``∂u_i/∂θ_k = (c_k/s_k)·u_i`` for ``i > k``. Every such
    ``u_i`` carries the factor ``s_k``, so ``T_k / s_k`` is exact in floating point unless
    ``s_k`` is (nearly) zero; those rows are recomputed exactly (on a CPU
    :func:`_rows_with_small_sine` and :func:`_exact_rows`; elsewhere, with no host
    synchronization, :func:`_exact_rows_on_device`). Cost: O(n) per row; no Jacobian is formed.
    """

    @staticmethod
    def forward(theta: Tensor, r: Tensor | None):  # type: ignore[override]
        return _forward_parts(theta, r)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        theta, r = inputs
        w, cot, r_prod = output
        ctx.mark_non_differentiable(cot, r_prod)
        ctx.set_materialize_grads(False)  # no zero-filled gradients for the extra outputs
        ctx.save_for_backward(theta, r, w, cot, r_prod)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_w, *_unused):  # type: ignore[override]
        theta, r, w, cot, r_prod = ctx.saved_tensors
        need_theta, need_r = ctx.needs_input_grad[:2]
        if grad_w is None:
            return None, None
        h = grad_w * w
        tail = _suffix_sums(h)  # tail[..., k] = Σ_{i>k} h_i = r·T_k
        grad_r = _grad_r(tail[..., 0] + h[..., 0], r, theta, grad_w) if need_r else None
        grad_theta = None
        if need_theta:
            if is_functorch_wrapped_tensor(h) or not h.is_contiguous():
                # Under vmap/jacrev: out-of-place ops (they have batching rules); likewise
                # when h inherited strides from a non-contiguous grad_w (e.g. a stacked
                # (S, m, n) weight used transposed by bmm): its buffer cannot be viewed flat.
                t = tail[..., :-1].mul_(cot)
                grad_theta = torch.addcmul(t, grad_w[..., :-1], r_prod, value=-1)
            else:
                # Written into h's buffer (no longer needed), viewed as a contiguous
                # (..., n-1) array: a third fresh (m, n) buffer would cost page faults on a
                # CPU; AccumulateGrad adopts the contiguous view without a copy.
                k = theta.shape[-1]
                grad_theta = h.view(-1)[: h.numel() // (k + 1) * k].view(theta.shape)
                torch.mul(tail[..., :-1], cot, out=grad_theta)
                grad_theta.addcmul_(grad_w[..., :-1], r_prod, value=-1)
            del h, tail
            if _host_checks(theta):
                rows = _rows_with_small_sine(cot, r_prod, r)
                if rows is not None:
                    grad_theta = _exact_rows(grad_theta, rows, theta, r, grad_w)
            else:
                grad_theta = _exact_rows_on_device(grad_theta, cot, theta, r, grad_w)
        return grad_theta, grad_r


def _host_checks(t: Tensor) -> bool:
    """Whether the backward may test on the host which rows need the exact fallback.

    On a CPU such a test reads memory the CPU has just written (free), and lets the
    fallback run on those rows only. On an accelerator it would stall the host until the
    device catches up (a synchronization per GmP layer per step), so there the fallback
    rows are selected on the device (:func:`_exact_rows_on_device`)."""
    return t.device.type == "cpu"


def _scan_block(n: int) -> int | None:
    """Block length for :func:`_suffix_sums`: a divisor of ``n`` in [8, 32], near 16."""
    for b in (16, 12, 20, 24, 10, 32, 8, 14, 18, 9, 11, 13, 15, 17, 19, 21, 22, 23, 25, 26,
              27, 28, 29, 30, 31):
        if n % b == 0 and n > b:
            return b
    return None


def _suffix_sums(h: Tensor) -> Tensor:
    """Exclusive suffix sums along the last axis, ``out[..., k] = Σ_{i>k} h[..., i]``.

    A row-wise scan is latency-bound (one dependent add per element, ~1 ns each on a CPU);
    instead the blocks of ``b`` entries are summed by one matrix product with the strictly
    lower-triangular ones matrix, and only the ``n/b`` block totals are scanned. As in a
    reverse cumulative sum, ``out[..., k]`` adds up entries ``i > k`` only, so its rounding
    error scales with the tail it sums, not with the row total.
    """
    n = h.shape[-1]
    b = _scan_block(n)
    if b is None:
        out = torch.zeros_like(h)
        out[..., :-1] = h[..., 1:].flip(-1).cumsum(-1).flip(-1)
        return out
    rows, nb = h.numel() // n, n // b
    lower = torch.ones(b, b, dtype=h.dtype, device=h.device).tril_(-1)  # [i, k] = 1 if i > k
    out = torch.mm(h.reshape(rows * nb, b), lower).view(rows, nb, b)
    block = out[..., 0] + h.reshape(rows, nb, b)[..., 0]  # block totals, (rows, nb)
    carry = torch.zeros_like(block)  # Σ of the totals of later blocks
    carry[..., :-1] = block[..., 1:].flip(-1).cumsum(-1).flip(-1)
    out += carry.unsqueeze(-1)
    return out.view(h.shape)


def _grad_r(r_total: Tensor, r: Tensor, theta: Tensor, grad_w: Tensor) -> Tensor:
    """``∂L/∂r = Σ_i g_i u_i`` from ``r_total = Σ_i g_i w_i = r·∂L/∂r``; rows with
    ``r = 0`` (0/0) or ``|r|`` so small that ``w = r·u`` may underflow are recomputed from
    ``u(θ)``."""
    zero = r.abs() < _small_sine(r.dtype)
    grad_r = r_total / torch.where(zero, torch.ones_like(r), r)
    if not _host_checks(r):  # every row recomputed, the right one kept: no synchronization
        fix = (grad_w * _unit_vector_reference(theta)).sum(-1)
        return torch.where(zero, fix, grad_r)
    if bool(zero.any()):
        k = theta.shape[-1]
        rows = zero.reshape(-1)
        u = _unit_vector_reference(theta.reshape(-1, k)[rows])
        fix = (grad_w.reshape(-1, k + 1)[rows] * u).sum(-1)
        grad_r = grad_r.reshape(-1).index_put((rows,), fix).view(r.shape)
    return grad_r


def _rows_with_small_sine(cot: Tensor, r_prod: Tensor, r: Tensor | None) -> Tensor | None:
    """Flattened bool mask of the rows having some ``|sin θ_k| <`` :func:`_small_sine`, or
    None. Shapes: ``cot``, ``r_prod`` ``(..., n-1)``, ``r`` ``(...)`` or None.

    Screened in O(m) by ``|P_{n-2}| ≤ min_k |sin θ_k|`` (read from ``r·P``; rows with ``r = 0``
    or an underflowing product are flagged too), then checked on the flagged rows from the
    saved ``cot = cos θ / sin θ``: ``|sin θ_k| < ε`` implies ``|cos θ_k| > 1/2`` and so
    ``|cot_k| > 1/(2ε)`` (``±inf`` for ``sin θ_k = 0``). Both tests admit a superset of the
    rows; the fallback is exact on any row."""
    tiny = _small_sine(cot.dtype)
    last = r_prod[..., -1].abs()
    if r is not None:
        last = last / r.abs().where(r != 0, 1.0)
    rows = (last < tiny).reshape(-1)
    if not bool(rows.any()):
        return None
    k = cot.shape[-1]
    rows[rows.clone()] = (cot.reshape(-1, k)[rows].abs() > 0.5 / tiny).any(dim=-1)
    return rows if bool(rows.any()) else None


def _exact_rows(grad_theta: Tensor, rows: Tensor, theta: Tensor, r: Tensor | None,
                grad_w: Tensor) -> Tensor:
    """Recompute ``grad_theta`` on the ``rows`` (flattened bool mask) with the
    vector-Jacobian product of the reference composition (``torch.func.vjp``, so this also
    runs under ``jacrev``/``vmap``). Shapes: ``grad_theta``, ``theta`` ``(..., n-1)``."""
    k = theta.shape[-1]
    rows = rows.reshape(-1)
    t = theta.reshape(-1, k)[rows]
    if r is None:
        _, vjp = torch.func.vjp(_unit_vector_reference, t)
    else:
        rr = r.reshape(-1, 1)[rows]
        _, vjp = torch.func.vjp(lambda a: _unit_vector_reference(a) * rr, t)
    (g,) = vjp(grad_w.reshape(-1, k + 1)[rows])
    return grad_theta.reshape(-1, k).index_put((rows,), g).view(grad_theta.shape)


def _exact_rows_on_device(grad_theta: Tensor, cot: Tensor, theta: Tensor, r: Tensor | None,
                          grad_w: Tensor) -> Tensor:
    """:func:`_exact_rows` without a host synchronization: the rows with some
    ``|sin θ_k| <`` :func:`_small_sine` (``|cot_k| > 1/(2ε)``, see
    :func:`_rows_with_small_sine`) are found on the device, the reference vector-Jacobian
    product is evaluated for every row, and ``torch.where`` keeps it on those rows only.
    About twice the work of the closed form, in a fixed number of kernels."""
    rows = (cot.abs() > 0.5 / _small_sine(cot.dtype)).any(dim=-1, keepdim=True)
    if r is None:
        _, vjp = torch.func.vjp(_unit_vector_reference, theta)
    else:
        rr = r.unsqueeze(-1)
        _, vjp = torch.func.vjp(lambda a: _unit_vector_reference(a) * rr, theta)
    (exact,) = vjp(grad_w)
    return torch.where(rows, exact, grad_theta)


def scaled_unit_vector(theta: Tensor, r: Tensor | None = None) -> Tensor:
    """``r·u(θ)``: the weight of GmP units with directions ``θ`` and radii ``r``.

    One fused autograd Function (forward: one cumulative product; backward: closed form,
    one reverse cumulative sum, no transcendental function re-evaluated; see
    ``_ScaledUnitVector``). It is differentiable once (no double backward) and works under
    ``torch.func.jacrev``/``vjp``.

    Args:
        theta: ``(..., n-1)`` real angles, any values (no range constraint).
        r: ``(...)`` radii (any sign), or None for the unit vector itself.

    Returns:
        ``(..., n)``. ``n - 1 = 0`` gives ``r`` (or ones) with a trailing axis of size 1.
    """
    _check_angles(theta, "scaled_unit_vector")
    if r is not None:
        if r.shape != theta.shape[:-1]:
            raise ValueError(f"scaled_unit_vector: r must have shape {tuple(theta.shape[:-1])} "
                             f"(the leading shape of theta {tuple(theta.shape)}), "
                             f"got {tuple(r.shape)}")
        if r.dtype != theta.dtype or r.device != theta.device:
            raise TypeError(f"scaled_unit_vector: r ({r.dtype}, {r.device}) must match theta "
                            f"({theta.dtype}, {theta.device})")
    if theta.shape[-1] == 0:
        ones = theta.new_ones(theta.shape[:-1] + (1,))
        return ones if r is None else r.unsqueeze(-1) * ones
    return _ScaledUnitVector.apply(theta, r)[0]


def unit_vector(theta: Tensor) -> Tensor:
    """Map angles to a unit vector on ``S^{n-1}``.

    Args:
        theta: ``(..., n-1)`` real angles, any values (no range constraint).

    Returns:
        ``(..., n)`` tensor ``u(θ)`` with ``‖u‖ = 1``. ``n - 1 = 0`` gives ``(..., 1)`` ones.
    """
    _check_angles(theta, "unit_vector")
    return scaled_unit_vector(theta)


@torch.no_grad()
def angles(v: Tensor) -> tuple[Tensor, Tensor]:
    """Stable inverse of :func:`unit_vector`: ``v = norm · u(θ)``.

    Computed in float64 without autograd (``atan2`` has a NaN gradient at (0, 0)) and cast
    back to ``v``'s dtype. With tail norms ``ρ_k = ‖(v_{k+1}, …, v_n)‖``:
    ``θ_k = atan2(ρ_k, v_k)`` for ``k ≤ n-2`` (so ``θ_k ∈ [0, π]``) and
    ``θ_{n-1} = atan2(v_n, v_{n-1})`` (``∈ [-π, π]``: the sign of ``v_n`` is kept). A zero
    tail gives angles 0 or π, which :func:`unit_vector` maps back exactly. The zero vector
    gives ``θ = 0`` and norm 0. ``v`` is never modified. Non-finite input gives NaN angles.

    Args:
        v: ``(..., n)`` vectors, ``n ≥ 1``, floating point.

    Returns:
        ``(theta, norm)`` with shapes ``(..., n-1)`` and ``(...)``, dtype of ``v``. For
        ``n = 1`` theta is empty and the direction (the sign of ``v``) is not encoded: keep it
        separately (as :class:`gmp.nn.GmPLinear` does in its ``direction`` buffer).
    """
    if not isinstance(v, Tensor):
        raise TypeError(f"angles expects a tensor, got {type(v).__name__}")
    if v.dim() == 0 or v.shape[-1] == 0:
        raise ValueError(f"angles expects vectors of shape (..., n) with n >= 1, "
                         f"got {tuple(v.shape)}")
    if not v.is_floating_point():
        raise TypeError(f"angles expects a floating-point tensor, got {v.dtype}")
    # Out of place only from here on: ``x`` may share memory with ``v`` (float64 input).
    x = v.detach().to(torch.float64)
    n = x.shape[-1]
    # Work on x scaled by its largest |x| (per row) so squares neither overflow nor underflow.
    scale = x.abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    xs = x / scale
    # ρ from the reversed cumulative sum of squares (summed from the tail: small tails are not
    # swamped by the large head); tail_sq[..., 0] is the squared norm of the row.
    tail_sq = (xs * xs).flip(-1).cumsum(-1).flip(-1)
    norm = (tail_sq[..., 0].sqrt() * scale[..., 0]).to(v.dtype)
    if n == 1:
        return x.new_zeros(x.shape[:-1] + (0,)).to(v.dtype), norm
    rho = tail_sq[..., 1:-1].sqrt()  # (..., n-2): ‖xs_{k+1:}‖ for k = 0..n-3
    theta = torch.cat([torch.atan2(rho, xs[..., :-2]),
                       torch.atan2(xs[..., -1:], xs[..., -2:-1])], dim=-1)
    return theta.to(v.dtype), norm


def metric_diagonal(theta: Tensor) -> Tensor:
    """Diagonal of the metric tensor ``G(θ) = JᵀJ`` of hyperspherical coordinates.

    ``G = diag(1, sin²θ_1, sin²θ_1 sin²θ_2, …, ∏_{j≤n-2} sin²θ_j)``; off-diagonal entries
    vanish. Every entry lies in ``[0, 1]`` (the content of Theorem 3.7).

    Args:
        theta: ``(..., n-1)`` angles.

    Returns:
        ``(..., n-1)`` diagonal entries (empty for ``n = 1``).
    """
    _check_angles(theta, "metric_diagonal")
    if theta.shape[-1] == 0:
        return theta.new_empty(theta.shape)
    sin2 = torch.sin(theta[..., :-1]) ** 2
    ones = theta.new_ones(theta.shape[:-1] + (1,))
    return torch.cat([ones, torch.cumprod(sin2, dim=-1)], dim=-1)


def metric_tensor(theta: Tensor) -> Tensor:
    """Full metric tensor ``G(θ)``, shape ``(..., n-1, n-1)`` (diagonal)."""
    return torch.diag_embed(metric_diagonal(theta))
