"""Characteristic activation boundaries (CABs): effective parameters, geometry, tracking.

Chen & Ge 2024, Sec. 2.2 (Defs. 2.1-2.2) and Sec. 3.2. A ReLU unit with pre-activation ``wᵀx + b``
switches on and off across its CAB, the hyperplane ``{x : wᵀx + b = 0}``. Three numbers
describe the hyperplane:

- its unit normal (the *direction*) ``w/‖w‖``;
- its *spatial location* ``φ = -b·w/‖w‖²``, the point of the hyperplane nearest the origin;
- for 1-D input (``n = 1``) the hyperplane is the single *characteristic point*
  ``x* = -b/w`` (which is ``φ`` itself).

Every parameterization studied in the paper computes a pre-activation of this affine form,
so everything below works from the *effective* ``(w, b)`` of a layer (see
:func:`effective_weight_bias`); GmP layers are read from their own parameters directly
(``φ = -λ·u(θ)``, exact and independent of ``r``). Directions are unit normals pointing into
the active side: ``u(θ)`` for the paper's unit form ``r·ReLU(uᵀx + λ)`` and ``sign(r)·u(θ)``
for the weight form ``ReLU((r·u)ᵀx + r·λ)``, where a sign change of ``r`` swaps the active
side (see :func:`directions`).

Shapes: a layer of ``m`` units with fan-in ``n`` has ``w: (m, n)``, ``b: (m,)``; a
convolution's unit acts on a flattened patch of ``n = C_in/groups · kh · kw`` values.
Results are detached float64 tensors on the layer's device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .geometry import unit_vector
from .nn import GmPConv2d, GmPLinear

__all__ = [
    "cab_geometry",
    "gmp_cab_geometry",
    "effective_weight_bias",
    "spatial_locations",
    "directions",
    "characteristic_points",
    "angular_change",
    "direction_change",
    "CABTracker",
]

_SUPPORTED = (
    "nn.Linear (SP), nn.Linear with torch.nn.utils.parametrizations.weight_norm (WN) or the "
    "legacy torch.nn.utils.weight_norm, nn.Sequential(nn.Linear, nn.BatchNorm1d) (BN), "
    "nn.Conv1d/2d/3d, gmp.nn.GmPLinear, gmp.nn.GmPConv2d (GmP)"
)
_F64 = torch.float64
_GmP = (GmPLinear, GmPConv2d)
_Conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _unsupported(layer: object) -> TypeError:
    return TypeError(f"unsupported layer type {type(layer).__name__}; supported: {_SUPPORTED}")


def _is_bn_block(layer: nn.Module) -> bool:
    return (isinstance(layer, nn.Sequential) and len(layer) == 2
            and isinstance(layer[1], nn.BatchNorm1d))


def _plain_weight(layer: nn.Module) -> Tensor:
    """Float64 weight ``(m, n)`` of an ``nn.Linear`` / ``nn.Conv*d`` (WN-aware), detached."""
    if parametrize.is_parametrized(layer, "weight"):
        plist = layer.parametrizations.weight
        wn = type(plist[0]).__name__ == "_WeightNorm"
        if len(plist) == 1 and wn:
            # Recompute g·v/‖v‖ in float64 from the originals with torch's own module.
            w = plist[0](plist.original0.detach().to(_F64), plist.original1.detach().to(_F64))
        else:  # any other parametrization: trust torch's (possibly float32) evaluation
            w = layer.weight.detach().to(_F64)
    elif hasattr(layer, "weight_g") and hasattr(layer, "weight_v"):
        # Legacy torch.nn.utils.weight_norm: ``layer.weight`` is only refreshed by forward.
        hook = next((h for h in layer._forward_pre_hooks.values()
                     if getattr(h, "name", None) == "weight" and hasattr(h, "dim")), None)
        if hook is None:
            raise _unsupported(layer)
        w = torch._weight_norm(layer.weight_v.detach().to(_F64),
                               layer.weight_g.detach().to(_F64), hook.dim)
    else:
        w = layer.weight.detach().to(_F64)
    return w.reshape(w.shape[0], -1)


def _plain_bias(layer: nn.Module, m: int, device: torch.device) -> Tensor:
    if getattr(layer, "bias", None) is None:
        return torch.zeros(m, dtype=_F64, device=device)
    return layer.bias.detach().to(_F64)


@torch.no_grad()
def _affine(layer: nn.Module) -> tuple[Tensor, Tensor]:
    """Effective ``(w, b)`` of a layer without normalization (SP, WN, conv, GmP)."""
    if isinstance(layer, _GmP):
        if layer.fan_in == 1:
            u = layer.direction.detach().to(_F64)
        else:
            u = unit_vector(layer.theta.detach().to(_F64))
        r = layer.r.detach().to(_F64)
        w = r.unsqueeze(-1) * u
        b = r * layer.lam.detach().to(_F64) if layer.lam is not None else torch.zeros_like(r)
        return w, b
    if isinstance(layer, (nn.Linear, *_Conv)):
        w = _plain_weight(layer)
        return w, _plain_bias(layer, w.shape[0], w.device)
    raise _unsupported(layer)


@torch.no_grad()
def effective_weight_bias(layer: nn.Module, x: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Effective weight and bias of the pre-activation ``wᵀx + b`` of each unit of ``layer``.

    - ``nn.Linear`` (SP): its own ``weight``, ``bias`` (zero if absent).
    - WN ``nn.Linear``: ``w = g·v/‖v‖`` recomputed in float64 from ``g`` and ``v``.
    - ``nn.Sequential(nn.Linear, nn.BatchNorm1d)`` (BN): with ``z = Linear(x)`` normalised
      by mean ``μ`` and ``σ = sqrt(var + eps)``, ``w = γ·w_lin/σ`` and
      ``b = β + γ·(b_lin - μ)/σ``. The statistics are those BN itself would use: the batch
      statistics of ``Linear(x)`` (biased variance) when ``x`` is given and the BN module is
      in train mode (or keeps no running statistics), the running statistics otherwise.
      The BN module's running statistics are never updated here.
    - ``GmPLinear`` / ``GmPConv2d``: ``w = r·u(θ)``, ``b = r·λ`` (``u = direction`` for
      ``n = 1``). For ``r < 0`` the unit computes ``r·ReLU(uᵀx + λ)``, whose CAB is still
      ``{uᵀx + λ = 0}`` but which is not ``ReLU(wᵀx + b)``.
    - ``nn.Conv*d``: the flattened kernel, one row per output channel.

    Args:
        layer: the layer whose units are studied.
        x: ``(N, n)`` input batch, used only for BN batch statistics.

    Returns:
        ``(w, b)``: detached float64 tensors of shape ``(m, n)`` and ``(m,)``.

    Raises:
        TypeError: for any other module type (the message lists the supported ones).
        ValueError: BN without usable statistics, or an input of the wrong shape.
    """
    if not isinstance(layer, nn.Module):
        raise _unsupported(layer)
    if not _is_bn_block(layer):
        return _affine(layer)
    lin, bn = layer[0], layer[1]
    if not isinstance(lin, (nn.Linear, GmPLinear)):
        raise _unsupported(layer)
    w, b = _affine(lin)
    if w.shape[0] != bn.num_features:
        raise ValueError(f"BN block: linear layer has {w.shape[0]} units but BatchNorm1d has "
                         f"{bn.num_features} features")
    use_batch = x is not None and (bn.training or not bn.track_running_stats)
    if use_batch:
        if x.dim() != 2 or x.shape[1] != w.shape[1]:
            raise ValueError(f"BN block: expected input x of shape (N, {w.shape[1]}), "
                             f"got {tuple(x.shape)}")
        if x.shape[0] < 2:
            raise ValueError("BN block: batch statistics need at least 2 samples, got "
                             f"{x.shape[0]}")
        z = F.linear(x.detach().to(device=w.device, dtype=_F64), w, b)
        mean, var = z.mean(dim=0), z.var(dim=0, unbiased=False)
    elif bn.track_running_stats and bn.running_mean is not None:
        mean, var = bn.running_mean.detach().to(_F64), bn.running_var.detach().to(_F64)
    else:
        raise ValueError("BN block keeps no running statistics "
                         "(track_running_stats=False): pass the input batch x")
    sigma = torch.sqrt(var + bn.eps)
    if bn.affine:
        gamma, beta = bn.weight.detach().to(_F64), bn.bias.detach().to(_F64)
    else:
        gamma, beta = torch.ones_like(sigma), torch.zeros_like(sigma)
    scale = gamma / sigma
    return scale.unsqueeze(-1) * w, beta + scale * (b - mean)


def cab_geometry(w, b):
    """The CAB of units ``ReLU(wᵀx + b)``: spatial location ``φ = -b·w/‖w‖²`` and unit normal
    ``w/‖w‖`` (Sec. 3.1). ``w (..., n)``, ``b (...)`` -> each ``(..., n)``; NumPy arrays or
    tensors (the one place this formula is written). ``w = 0`` gives NaN (no boundary)."""
    sq = (w * w).sum(-1)[..., None]
    return -b[..., None] * w / sq, w / sq ** 0.5


def gmp_cab_geometry(lam, u):
    """The CAB of GmP units ``r·ReLU(uᵀx + λ)`` from their own coordinates, exactly:
    ``φ = -λ·u`` and normal ``u`` (Sec. 3.3; no division by ``r``). ``lam (...)``,
    ``u (..., n)`` unit vectors -> each ``(..., n)``."""
    return -lam[..., None] * u, u


@torch.no_grad()
def _gmp_unit(layer: nn.Module) -> Tensor:
    if layer.fan_in == 1:
        return layer.direction.detach().to(_F64)
    return unit_vector(layer.theta.detach().to(_F64))


@torch.no_grad()
def _gmp_orientation(layer: nn.Module) -> Tensor:
    """``(m,)`` sign that turns ``u(θ)`` into the normal towards the active side.

    Unit form ``r·act(uᵀx + λ)``: the active side is ``{uᵀx + λ > 0}`` whatever ``r``, so 1.
    Weight form ``act((r·u)ᵀx + r·λ)``: the active side is ``{r·(uᵀx + λ) > 0}``, so
    ``sign(r)``, and NaN for ``r = 0`` (``w = 0``: no boundary), as for SP.
    """
    r = layer.r.detach().to(_F64)
    if layer.activation is not None:
        return torch.ones_like(r)
    return torch.where(r == 0, torch.full_like(r, float("nan")), torch.sign(r))


@torch.no_grad()
def _cab_state(layer: nn.Module, x: Tensor | None = None, towards_active: bool = True
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(w, b, φ, direction)`` of every unit, computed once (see the public functions)."""
    w, b = effective_weight_bias(layer, x)
    if isinstance(layer, _GmP):
        # Exact GmP geometry from (θ, λ): φ = -λ·u(θ), no division by r; the normal is
        # u(θ) oriented towards the active side (sign(r)·u(θ) in weight form).
        u = _gmp_unit(layer)
        lam = torch.zeros(u.shape[:-1], dtype=_F64) if layer.lam is None else layer.lam
        phi, normal = gmp_cab_geometry(lam.detach().to(_F64), u)
        if towards_active:
            normal = _gmp_orientation(layer).unsqueeze(-1) * normal
        return w, b, phi, normal
    return (w, b, *cab_geometry(w, b))


def spatial_locations(layer: nn.Module, x: Tensor | None = None) -> Tensor:
    """Spatial location ``φ = -b·w/‖w‖²`` of every unit's CAB, ``(m, n)`` float64.

    For GmP layers exactly ``φ = -λ·u(θ)`` (independent of ``r``). A unit with ``w = 0``
    has no CAB and gets NaN. ``x`` is forwarded to :func:`effective_weight_bias` (BN).
    """
    return _cab_state(layer, x)[2]


def directions(layer: nn.Module, x: Tensor | None = None, towards_active: bool = True
               ) -> Tensor:
    """Unit normal of every unit's CAB, pointing into its active side, ``(m, n)`` float64.

    SP, WN, BN, conv: ``w/‖w‖`` of the effective weight (WN: ``sign(g)·v/‖v‖``).
    GmP (Sec. 3.3): the boundary is ``{uᵀx + λ = 0}`` in both forms; its active side is
    ``{uᵀx + λ > 0}`` in the paper's unit form ``r·ReLU(uᵀx + λ)`` (normal ``u(θ)``, whatever
    ``r``) and ``{r·(uᵀx + λ) > 0}`` in the weight form ``ReLU((r·u)ᵀx + r·λ)`` (normal
    ``sign(r)·u(θ)``: a sign change of ``r`` turns the weight form's normal by π).

    Args:
        layer: a supported layer (see :func:`effective_weight_bias`).
        x: ``(N, n)`` input batch, used only for BN batch statistics.
        towards_active: True (default) as above. False returns ``u(θ)`` for every GmP
            layer whatever its form and the sign of ``r`` (the behaviour before issue #23;
            other layer types are unaffected).

    A unit with ``w = 0`` (weight-form GmP: ``r = 0``) gets NaN.
    """
    return _cab_state(layer, x, towards_active)[3]


def characteristic_points(layer: nn.Module, x: Tensor | None = None) -> Tensor:
    """Characteristic points ``x* = -b/w`` of a layer with 1-D input, ``(m,)`` float64.

    This is ``φ`` for ``n = 1`` (GmP: ``-λ·u`` with ``u = ±1``; BN:
    ``-(b + σβ/γ - μ)/w``, the same point written with BN's statistics).

    Raises:
        ValueError: if the layer's fan-in ``n`` is not 1.
    """
    phi = spatial_locations(layer, x)
    if phi.shape[-1] != 1:
        raise ValueError("characteristic points are defined for 1-D input only (n = 1); "
                         f"this layer has fan-in n = {phi.shape[-1]}: use spatial_locations")
    return phi[:, 0]


def _as_f64(a: Tensor | np.ndarray | Sequence, name: str) -> Tensor:
    if isinstance(a, Tensor):
        return a.detach().to(_F64)
    try:
        return torch.as_tensor(np.asarray(a, dtype=np.float64))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected a tensor or array of real numbers, got "
                        f"{type(a).__name__}") from e


def angular_change(before: Tensor | np.ndarray, after: Tensor | np.ndarray,
                   degrees: bool = False) -> Tensor:
    """Angle between corresponding vectors of ``before`` and ``after``.

    Uses ``2·atan2(‖â - b̂‖, ‖â + b̂‖)`` on the normalised rows (Kahan's formula), accurate to
    a few ulps over the whole range ``[0, π]``, unlike ``arccos`` of a rounded cosine,
    which loses everything below ~1e-8 rad and near π. Vectors need not be unit length;
    a zero vector gives NaN.

    Args:
        before, after: ``(..., n)`` tensors or arrays of the same shape (e.g. ``(m, n)``).
        degrees: return degrees instead of radians.

    Returns:
        ``(...)`` float64 tensor of angles in ``[0, π]`` (or ``[0, 180]``).
    """
    a, b = _as_f64(before, "before"), _as_f64(after, "after")
    if a.shape != b.shape:
        raise ValueError(f"angular_change: shapes differ, before {tuple(a.shape)} vs after "
                         f"{tuple(b.shape)}")
    if a.dim() == 0:
        raise ValueError("angular_change expects vectors of shape (..., n), got scalars")
    b = b.to(a.device)
    ua = a / torch.linalg.vector_norm(a, dim=-1, keepdim=True)
    ub = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True)
    ang = 2.0 * torch.atan2(torch.linalg.vector_norm(ua - ub, dim=-1),
                            torch.linalg.vector_norm(ua + ub, dim=-1))
    return torch.rad2deg(ang) if degrees else ang


def direction_change(w: Tensor | np.ndarray, eps: Tensor | np.ndarray) -> Tensor:
    """``Δ(w, ε)`` of Prop. 2.3: the angle (radians) between ``w`` and ``w + ε``.

    Args:
        w, eps: ``(n,)`` vectors or ``(m, n)`` rows, same shape.

    Returns:
        float64 tensor of shape ``()`` or ``(m,)``.
    """
    w64, e64 = _as_f64(w, "w"), _as_f64(eps, "eps")
    if w64.shape != e64.shape:
        raise ValueError(f"direction_change: w has shape {tuple(w64.shape)} but eps has "
                         f"{tuple(e64.shape)}")
    return angular_change(w64, w64 + e64.to(w64.device))


class CABTracker:
    """Record the CABs of one layer during training.

    Each record stores the effective weight ``(m, n)``, bias ``(m,)``, spatial locations
    ``(m, n)`` and directions ``(m, n)`` as float64 numpy arrays, with its step number.

    Usage::

        tracker = CABTracker(model.hidden, every=1).attach(optimizer)  # records step 0
        ...train...                                   # records after every k-th step
        tracker.detach()
        tracker.max_angular_change()                  # (T-1,) degrees

    Args:
        layer: a layer accepted by :func:`effective_weight_bias`.
        every: keep every ``every``-th optimizer step (bounds memory: ``T·m·n`` floats).
        inputs: optional ``(N, n)`` batch passed to :func:`effective_weight_bias` (BN batch
            statistics, e.g. the full training set in full-batch training).
        towards_active: passed to :func:`directions` (False: GmP directions are ``u(θ)``
            whatever the layer's form and the sign of ``r``, as before issue #23).
    """

    def __init__(self, layer: nn.Module, every: int = 1, inputs: Tensor | None = None,
                 towards_active: bool = True):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.layer, self.every, self.inputs = layer, every, inputs
        self.towards_active = bool(towards_active)
        w, _ = effective_weight_bias(layer, inputs)  # validates the layer type early
        self.m, self.n = w.shape
        self._steps: list[int] = []
        self._w: list[np.ndarray] = []
        self._b: list[np.ndarray] = []
        self._phi: list[np.ndarray] = []
        self._dir: list[np.ndarray] = []
        self._handle = None
        self._optimizer_steps = 0
        self._attached_once = False

    # -- recording ---------------------------------------------------------------------
    def record(self, step: int | None = None) -> None:
        """Record the current state. ``step`` defaults to the number of optimizer steps
        seen while attached once :meth:`attach` was called, and to the record index
        otherwise."""
        if step is None:
            step = self._optimizer_steps if self._attached_once else len(self._steps)
        w, b, phi, d = _cab_state(self.layer, self.inputs, self.towards_active)
        self._steps.append(int(step))
        self._w.append(w.cpu().numpy().copy())
        self._b.append(b.cpu().numpy().copy())
        self._phi.append(phi.cpu().numpy().copy())
        self._dir.append(d.cpu().numpy().copy())

    def _hook(self, optimizer, args, kwargs) -> None:
        self._optimizer_steps += 1
        if self._optimizer_steps % self.every == 0:
            self.record(self._optimizer_steps)

    def attach(self, optimizer: torch.optim.Optimizer) -> CABTracker:
        """Record now (step 0 on the first attach) and after every ``every``-th step."""
        if self._handle is not None:
            raise RuntimeError("CABTracker is already attached to an optimizer; detach() first")
        self._attached_once = True
        self.record(self._optimizer_steps)
        self._handle = optimizer.register_step_post_hook(self._hook)
        return self

    def detach(self) -> None:
        """Stop recording (records made so far are kept)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __len__(self) -> int:
        return len(self._steps)

    # -- views ---------------------------------------------------------------------------
    def _stack(self, rows: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
        if not rows:
            return np.empty((0, *shape), dtype=np.float64)
        return np.stack(rows).astype(np.float64, copy=False)

    @property
    def steps(self) -> np.ndarray:
        """``(T,)`` int64 step number of each record."""
        return np.asarray(self._steps, dtype=np.int64)

    @property
    def weights(self) -> np.ndarray:
        """``(T, m, n)`` effective weights."""
        return self._stack(self._w, (self.m, self.n))

    @property
    def biases(self) -> np.ndarray:
        """``(T, m)`` effective biases."""
        return self._stack(self._b, (self.m,))

    @property
    def locations(self) -> np.ndarray:
        """``(T, m, n)`` spatial locations ``φ``."""
        return self._stack(self._phi, (self.m, self.n))

    @property
    def directions(self) -> np.ndarray:
        """``(T, m, n)`` unit normals of the CABs."""
        return self._stack(self._dir, (self.m, self.n))

    def max_angular_change(self, degrees: bool = True) -> np.ndarray:
        """``(T-1,)``: max over units of the angle between consecutive directions.

        Units without a direction (NaN) are ignored; a step where all are NaN gives NaN.
        """
        d = self.directions
        if len(d) < 2:
            return np.empty(0, dtype=np.float64)
        ang = angular_change(d[:-1], d[1:], degrees=degrees).numpy()
        return np.fmax.reduce(ang, axis=1)

    def max_location_change(self) -> np.ndarray:
        """``(T-1,)``: max over units of ``‖φ_{t+1} - φ_t‖`` (NaN units ignored)."""
        phi = self.locations
        if len(phi) < 2:
            return np.empty(0, dtype=np.float64)
        return np.fmax.reduce(np.linalg.norm(np.diff(phi, axis=0), axis=-1), axis=1)

    def characteristic_points(self) -> np.ndarray:
        """``(T, m)`` characteristic points ``x*`` (1-D input only)."""
        if self.n != 1:
            raise ValueError("characteristic points are defined for 1-D input only (n = 1); "
                             f"the tracked layer has fan-in n = {self.n}: use .locations")
        return self.locations[:, :, 0]

    def __repr__(self) -> str:
        state = "attached" if self._handle is not None else "detached"
        return (f"CABTracker({type(self.layer).__name__}, m={self.m}, n={self.n}, "
                f"every={self.every}, records={len(self)}, {state})")

