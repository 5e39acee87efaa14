"""GmP layers, input mean normalization, and mean-only batch normalization.

A GmP unit (Chen & Ge 2024, Sec. 3.2) computes ``r · act(u(θ)ᵀx + λ)``: the activation sits
inside the unit and the radius ``r`` scales its output. A layer has two forms:

- **unit form** (``activation=`` a module, e.g. ``nn.ReLU()``): exactly the paper's unit,
  ``r · act(u(θ)ᵀx + λ)``. The layer includes its activation; the authors' code computes this.
- **weight form** (``activation=None``, the default): the pre-activation
  ``(r·u(θ))ᵀx + r·λ``, i.e. the ordinary linear / convolution kernel with

      weight = r · u(θ),    bias = r · λ,

  to be followed by the activation. ``gmp.convert`` / ``gmp.revert`` use this form.

The two agree exactly when ``r > 0`` and ``act`` is positively homogeneous (ReLU):
``r·ReLU(z) = ReLU(r·z)``. For ``r < 0`` they differ: the unit form negates the unit's output
and keeps its active side ``{uᵀx + λ > 0}``, while the weight form fires on the opposite side
``{uᵀx + λ < 0}`` (the boundary is the same hyperplane, its orientation flips). ``r`` is not
constrained in either form.

Both forms materialise ``u(θ)`` (or ``r·u(θ)``) once per forward with
:func:`gmp.geometry.scaled_unit_vector`, one fused autograd Function.

Parameters of a layer with ``m`` units and fan-in ``n``: ``theta`` ``(m, n-1)`` angles,
``lam`` ``(m,)`` signed offsets, ``r`` ``(m,)`` radii.

For ``n = 1`` there are no angles: each unit's direction ``±1`` is drawn at initialization
and kept in the buffer ``direction`` ``(m, 1)`` (it is not trained; all ones when ``n > 1``).

Inference is free of the reparameterization cost: in eval mode, without autograd recording
(``torch.no_grad``/``torch.inference_mode``, or frozen parameters), the weight is computed
once and cached until ``theta``, ``r``, ``lam`` or ``direction`` change. Changes are detected
through the tensors' version counters and storage, which every in-place operation on the
parameters (``optimizer.step``, ``p.add_``, ``p.copy_``, ``load_state_dict``, ``.to()``)
updates. Writes through ``p.data`` bypass version counters: call
:meth:`GmPLinear.clear_weight_cache` after those. ``gmp.revert`` removes the cost for good.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import angles, scaled_unit_vector

__all__ = ["GmPLinear", "GmPConv2d", "InputMeanNorm", "MeanOnlyBatchNorm"]

Init = Literal["sphere", "glorot", "glorot-authors"]
_INITS = ("sphere", "glorot", "glorot-authors")


def _check_activation(activation: nn.Module | None, cls: str) -> nn.Module | None:
    if activation is not None and not isinstance(activation, nn.Module):
        raise TypeError(f"{cls}: activation must be an nn.Module (e.g. nn.ReLU()) or None, "
                        f"got {type(activation).__name__}")
    return activation


class _GmPMixin:
    """Shared parameter logic of GmP layers: weight of shape ``(m, *fan_shape)``."""

    theta: nn.Parameter
    r: nn.Parameter
    lam: nn.Parameter | None
    direction: Tensor
    _fan_shape: tuple[int, ...]

    @property
    def fan_in(self) -> int:
        """``n``: inputs per unit (``in_features``, or ``in_channels/groups · kh · kw``)."""
        return math.prod(self._fan_shape)

    def _init_gmp(self, out_units: int, fan_shape: tuple[int, ...], bias: bool, init: str,
                  factory: dict, activation: nn.Module | None = None) -> None:
        if init not in _INITS:
            raise ValueError(f"unknown init {init!r}; expected one of {_INITS}")
        if out_units < 1:
            raise ValueError(f"{type(self).__name__} needs at least one output unit, "
                             f"got {out_units}")
        self._fan_shape = tuple(fan_shape)
        n = self.fan_in
        if n < 1:
            raise ValueError(f"{type(self).__name__}: fan-in must be >= 1, got {n}")
        self.theta = nn.Parameter(torch.empty(out_units, n - 1, **factory))
        self.r = nn.Parameter(torch.empty(out_units, **factory))
        if bias:
            self.lam = nn.Parameter(torch.empty(out_units, **factory))
        else:
            self.register_parameter("lam", None)
        self.register_buffer("direction", torch.ones(out_units, 1, **factory))
        self.init = init
        self.activation = _check_activation(activation, type(self).__name__)
        self._weight_cache: tuple | None = None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """``sphere``: direction uniform on S^{n-1}, λ = 0, r = 1 (Remark 3.5).
        ``glorot``: Glorot-uniform weights converted to (θ, r), λ = 0.
        ``glorot-authors``: what the authors' initializer computes: a Glorot-uniform ``w``
        with bound ``sqrt(6/(n + m))`` (also for convolutions) whose last coordinate loses its
        sign in their Cartesian-to-angles conversion, so ``u = (w₁, …, w_{n-1}, |w_n|)/‖w‖``
        and every unit starts in the half-space ``u_n ≥ 0``; ``r = ‖w‖``, ``λ = 0``. For
        ``n = 1``, ``u = sign(w)`` and ``r = |w|`` as in their 1-D layer.

        Random numbers are drawn in float64 on the parameters' device from the global
        generator (``torch.manual_seed`` makes it reproducible)."""
        m, n = self.theta.shape[0], self.fan_in
        factory = {"dtype": torch.float64, "device": self.theta.device}
        if self.init == "sphere":
            w = torch.randn(m, n, **factory)
        elif self.init == "glorot-authors":
            bound = math.sqrt(6.0 / (n + m))
            w = torch.empty(m, n, **factory).uniform_(-bound, bound)
            if n > 1:
                w[:, -1].abs_()
        else:
            # torch's convention for conv: fan_out = out_channels · kh · kw.
            receptive = n // self._fan_shape[0]
            bound = math.sqrt(6.0 / (n + m * receptive))
            w = torch.empty(m, n, **factory).uniform_(-bound, bound)
        theta, norm = angles(w)
        self.theta.copy_(theta)
        self.r.copy_(torch.ones_like(norm) if self.init == "sphere" else norm)
        self.direction.copy_(torch.where(w[:, :1] >= 0, 1.0, -1.0) if n == 1 else 1.0)
        if self.lam is not None:
            self.lam.zero_()

    def unit_directions(self) -> Tensor:
        """Unit direction ``u(θ)`` of every unit, ``(m, n)``."""
        if self.fan_in == 1:
            return self.direction
        return scaled_unit_vector(self.theta)

    def weight_and_bias(self) -> tuple[Tensor, Tensor | None]:
        """``weight = r·u(θ)`` with shape ``(m, *fan_shape)`` and ``bias = r·λ`` (or None).

        Always recomputed (differentiable); ``forward`` uses the eval-mode cache."""
        if self.fan_in == 1:
            w = self.r.unsqueeze(-1) * self.direction
        else:
            w = scaled_unit_vector(self.theta, self.r)
        b = self.r * self.lam if self.lam is not None else None
        return w.view(-1, *self._fan_shape), b

    def direction_and_offset(self) -> tuple[Tensor, Tensor | None]:
        """Unit form: ``u(θ)`` with shape ``(m, *fan_shape)`` and ``λ`` ``(m,)`` (or None).

        Always recomputed (differentiable); ``forward`` uses the eval-mode cache."""
        return self.unit_directions().view(-1, *self._fan_shape), self.lam

    def _kernel_weight_and_bias(self) -> tuple[Tensor, Tensor | None]:
        """What the linear / conv kernel gets in this layer's form."""
        if self.activation is None:
            return self.weight_and_bias()
        return self.direction_and_offset()

    def _finish(self, z: Tensor, channel_dim: int) -> Tensor:
        """Unit form: ``r · act(z)`` with ``r`` broadcast along ``channel_dim``; weight form:
        ``z`` unchanged."""
        if self.activation is None:
            return z
        shape = [1] * z.dim()
        shape[channel_dim] = -1
        return self.activation(z) * self.r.view(shape)

    # ----- eval-mode weight cache ---------------------------------------------------------
    def _cache_key(self) -> tuple:
        tensors = (self.theta, self.r, self.lam, self.direction)
        return (torch.is_inference_mode_enabled(), self.activation is None) + tuple(
            None if t is None else (t.data_ptr(), t._version, t.dtype, t.device, t.shape)
            for t in tensors)

    def _forward_weight_and_bias(self) -> tuple[Tensor, Tensor | None]:
        """Fresh weight in training or under autograd; the cached one for inference."""
        if self.training or (torch.is_grad_enabled() and any(
                p.requires_grad for p in (self.theta, self.r, self.lam) if p is not None)):
            return self._kernel_weight_and_bias()
        key = self._cache_key()
        cache = self._weight_cache
        if cache is None or cache[0] != key:
            with torch.no_grad():
                cache = (key, *self._kernel_weight_and_bias())
            self._weight_cache = cache
        return cache[1], cache[2]

    def clear_weight_cache(self) -> None:
        """Drop the cached inference weight (needed only after writes through ``p.data``)."""
        self._weight_cache = None

    def train(self, mode: bool = True):
        self._weight_cache = None
        return super().train(mode)  # type: ignore[misc]

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        state["_weight_cache"] = None
        return state

    # ----- conversion ---------------------------------------------------------------------
    @torch.no_grad()
    def _load_from_weight(self, weight: Tensor, bias: Tensor | None, name: str) -> None:
        """Set ``r = ‖w‖``, ``θ = angles(w)``, ``λ = b/‖w‖`` (exact inverse of the forward)."""
        if weight.is_meta:
            raise ValueError(f"{name}: the layer's weight is on the meta device (not "
                             "materialized); initialize it first")
        w = weight.detach().reshape(weight.shape[0], -1).to(torch.float64)
        if w.shape[1] != self.fan_in:
            raise ValueError(f"{name}: weight has fan-in {w.shape[1]}, layer expects "
                             f"{self.fan_in}")
        bad = ~torch.isfinite(w).all(dim=-1)
        if bias is not None:
            bad |= ~torch.isfinite(bias.detach())
        if bool(bad.any()):
            rows = torch.nonzero(bad).flatten().tolist()
            raise ValueError(f"{name}: non-finite weight or bias in units {rows[:10]}"
                             f"{' ...' if len(rows) > 10 else ''}; cannot convert")
        theta, norm = angles(w)
        zero = norm == 0
        if bias is not None and bool((zero & (bias.detach().to(torch.float64) != 0)).any()):
            rows = torch.nonzero(zero & (bias.detach() != 0)).flatten().tolist()
            raise ValueError(
                f"{name}: units {rows[:10]} have a zero weight vector but a non-zero bias; "
                "that constant is not representable by GmP (r = ‖w‖ = 0 gives r·λ = 0)")
        self.theta.copy_(theta)
        self.r.copy_(norm)
        self.direction.copy_(torch.where(w[:, :1] >= 0, 1.0, -1.0) if self.fan_in == 1
                             else 1.0)
        if self.lam is not None:
            b = bias.detach().to(torch.float64) if bias is not None else torch.zeros_like(norm)
            self.lam.copy_(torch.where(zero, torch.zeros_like(b), b / norm.where(~zero, 1.0)))

    def extra_gmp_repr(self) -> str:
        return f"init={self.init!r}"

    def _check_weight_form(self, what: str) -> None:
        if self.activation is not None:
            raise ValueError(
                f"{type(self).__name__}.{what}: this layer is in unit form, r·act(uᵀx + λ) with "
                "its activation inside; a plain layer cannot hold the activation (and for r < 0 "
                "no plain layer followed by the activation computes the same function). "
                "Build the layer with activation=None (weight form) to convert it")


def _uninitialized(cls, *args, **kwargs):
    """``cls(*args, **kwargs)`` without running its random initialization (built on the meta
    device, then given empty storage), so conversion never touches the global RNG."""
    device = kwargs.pop("device", None)
    return cls(*args, device="meta", **kwargs).to_empty(device=device or "cpu")


class GmPLinear(_GmPMixin, nn.Module):
    """Drop-in replacement for :class:`torch.nn.Linear` under Geometric Parameterization.

    Input ``(*, in_features)``, output ``(*, out_features)``.

    Args:
        in_features, out_features, bias: as for ``nn.Linear``.
        init: ``"sphere"`` (default; directions uniform on the sphere, ``r = 1``, ``λ = 0``)
            or ``"glorot"`` (Glorot-uniform weights converted, ``r = ‖w‖``, ``λ = 0``).
        activation: None (default, weight form: outputs the pre-activation
            ``(r·u)ᵀx + r·λ``) or a module such as ``nn.ReLU()`` (unit form: outputs the
            paper's ``r · act(uᵀx + λ)``). See the module docstring for when they agree.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init: Init = "sphere", device=None, dtype=None,
                 activation: nn.Module | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._init_gmp(out_features, (in_features,), bias, init, {"device": device, "dtype": dtype},
                       activation)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"GmPLinear expected input with {self.in_features} features in the "
                             f"last dimension, got shape {tuple(x.shape)}")
        w, b = self._forward_weight_and_bias()
        return self._finish(F.linear(x, w, b), -1)

    @classmethod
    def from_linear(cls, m: nn.Linear, init: Init = "sphere") -> GmPLinear:
        """Exact conversion: ``r = ‖w‖``, ``θ = angles(w)``, ``λ = b/‖w‖`` (same device, dtype).

        ``init`` is only recorded for a later ``reset_parameters``; the global RNG is not used.
        """
        if not isinstance(m, nn.Linear):
            raise TypeError(f"from_linear expects an nn.Linear, got {type(m).__name__}")
        out = _uninitialized(cls, m.in_features, m.out_features, bias=m.bias is not None,
                             init=init, device=m.weight.device, dtype=m.weight.dtype)
        out._load_from_weight(m.weight, m.bias, "GmPLinear.from_linear")
        return out

    def to_linear(self) -> nn.Linear:
        """The plain :class:`nn.Linear` computing the same function (zero overhead).

        Weight form only (a ValueError for a layer built with an activation)."""
        self._check_weight_form("to_linear")
        w, b = self.weight_and_bias()
        lin = _uninitialized(nn.Linear, self.in_features, self.out_features,
                             bias=b is not None, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            lin.weight.copy_(w)
            if b is not None:
                lin.bias.copy_(b)
        return lin

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.lam is not None}, {self.extra_gmp_repr()}")


class GmPConv2d(_GmPMixin, nn.Conv2d):
    """Drop-in replacement for :class:`torch.nn.Conv2d` under Geometric Parameterization.

    Every ``nn.Conv2d`` option is supported (stride, padding incl. ``"same"``, dilation,
    groups, padding_mode). Each output channel is one unit whose fan-in is
    ``in_channels/groups · kh · kw``. Input ``(N, C_in, H, W)`` or ``(C_in, H, W)``, output
    ``(N, C_out, H', W')``. ``init`` and ``activation`` as for :class:`GmPLinear`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 init: Init = "sphere", device=None, dtype=None,
                 activation: nn.Module | None = None) -> None:
        # nn.Conv2d validates every option and does the padding bookkeeping; its own weight
        # and bias (made on the meta device: no memory, no RNG) are replaced by (θ, λ, r).
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, padding,
                           dilation, groups, bias, padding_mode, device="meta", dtype=dtype)
        del self.weight
        del self.bias
        fan_shape = (in_channels // groups, *self.kernel_size)
        self._init_gmp(out_channels, fan_shape, bias, init, {"device": device, "dtype": dtype},
                       activation)

    def reset_parameters(self) -> None:  # nn.Conv2d.__init__ calls it before θ exists
        if hasattr(self, "theta"):
            _GmPMixin.reset_parameters(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(f"GmPConv2d expected input (N, {self.in_channels}, H, W) or "
                             f"({self.in_channels}, H, W), got shape {tuple(x.shape)}")
        w, b = self._forward_weight_and_bias()
        return self._finish(self._conv_forward(x, w, b), -3)

    @classmethod
    def from_conv(cls, m: nn.Conv2d, init: Init = "sphere") -> GmPConv2d:
        """Exact conversion of an ``nn.Conv2d`` (all options carried over; RNG untouched)."""
        if not isinstance(m, nn.Conv2d):
            raise TypeError(f"from_conv expects an nn.Conv2d, got {type(m).__name__}")
        out = _uninitialized(cls, m.in_channels, m.out_channels, m.kernel_size, m.stride,
                             m.padding, m.dilation, m.groups, m.bias is not None,
                             m.padding_mode, init=init, device=m.weight.device,
                             dtype=m.weight.dtype)
        out._load_from_weight(m.weight, m.bias, "GmPConv2d.from_conv")
        return out

    def to_conv(self) -> nn.Conv2d:
        """The plain :class:`nn.Conv2d` computing the same function (zero overhead).

        Weight form only (a ValueError for a layer built with an activation)."""
        self._check_weight_form("to_conv")
        w, b = self.weight_and_bias()
        conv = _uninitialized(nn.Conv2d, self.in_channels, self.out_channels, self.kernel_size,
                              self.stride, self.padding, self.dilation, self.groups,
                              b is not None, self.padding_mode, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            conv.weight.copy_(w)
            if b is not None:
                conv.bias.copy_(b)
        return conv

    def extra_repr(self) -> str:
        s = ("{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
             .format(**self.__dict__))
        if self.padding != (0,) * len(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.lam is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s + ", " + self.extra_gmp_repr()


class _RunningMean(nn.Module):
    """Subtract a per-feature mean: the batch mean in training, a running mean in eval.

    Features are axis 1 of ``(N, C)`` or ``(N, C, H, W)`` input (any trailing dims); the
    mean is over every other axis. ``running_mean ← (1 − momentum)·running_mean +
    momentum·batch_mean`` (torch's BatchNorm convention); ``running_mean`` and
    ``num_batches_tracked`` are buffers (saved in ``state_dict``).

    With ``sync=True`` and an initialized ``torch.distributed`` process group of size > 1,
    the batch mean is averaged over all processes (differentiably, like SyncBatchNorm; equal
    per-process batch sizes assumed, as DistributedSampler gives), so every rank normalizes
    with the same mean and keeps identical running means. Every rank must then call the
    module in training mode the same number of times.
    """

    def __init__(self, num_features: int, momentum: float = 0.1, device=None, dtype=None,
                 sync: bool = True):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        self.num_features, self.momentum, self.sync = num_features, momentum, sync
        self.register_buffer("running_mean",
                             torch.zeros(num_features, device=device, dtype=dtype))
        self.register_buffer("num_batches_tracked",
                             torch.tensor(0, dtype=torch.long, device=device))

    def _centre(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__} expected input (N, {self.num_features}, ...), "
                             f"got shape {tuple(x.shape)}")
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            dims = [0] + list(range(2, x.dim()))
            mean = x.mean(dim=dims)
            if self.sync and _distributed_world() > 1:
                mean = _all_reduce_mean(mean)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                self.num_batches_tracked.add_(1)
        else:
            mean = self.running_mean
        return x - mean.view(shape).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, momentum={self.momentum}, sync={self.sync}"


def _distributed_world() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _AllReduceSum(torch.autograd.Function):
    """``Σ_ranks t``, differentiable: every rank's output depends on every rank's input, so
    the gradient of rank ``q``'s input is the sum over ranks of the incoming gradients."""

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:  # type: ignore[override]
        out = t.clone()
        torch.distributed.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


def _all_reduce_mean(t: Tensor) -> Tensor:
    """Differentiable mean of ``t`` over all processes."""
    return _AllReduceSum.apply(t) / torch.distributed.get_world_size()


class InputMeanNorm(_RunningMean):
    """IMN (Remark 3.6): ``x̃ = x − E_batch[x]``, parameter-free; running mean in eval."""

    def forward(self, x: Tensor) -> Tensor:
        return self._centre(x)


class MeanOnlyBatchNorm(_RunningMean):
    """MBN (Salimans & Kingma 2016): subtract the batch mean of the pre-activation, add a
    learned bias; running mean in eval. Used with weight normalization.

    ``bias=False``: no learned bias (the authors' ``MeanOnlyBatchNormalization``, Keras'
    ``center=False``): the output is the centred input alone. Input ``(N, C, ...)``."""

    def __init__(self, num_features: int, momentum: float = 0.1, device=None, dtype=None,
                 sync: bool = True, bias: bool = True):
        super().__init__(num_features, momentum, device, dtype, sync)
        if bias:
            self.bias = nn.Parameter(torch.zeros(num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        y = self._centre(x)
        if self.bias is None:
            return y
        return y + self.bias.view((1, -1) + (1,) * (x.dim() - 2))


# ------------------------------------------------------------------------------------------
# Keras-initialized torch layers (the baselines' building blocks; re-exported by gmp.layers,
# which documents them)
# ------------------------------------------------------------------------------------------
@torch.no_grad()
def linear(in_features: int, out_features: int, init: str = "keras") -> nn.Linear:
    """``nn.Linear`` initialized as Keras' ``Dense`` (``"keras"``: Glorot-uniform weight, zero
    bias) or as torch does (``"torch"``)."""
    layer = nn.Linear(in_features, out_features)
    if init == "keras":
        nn.init.xavier_uniform_(layer.weight)
        layer.bias.zero_()
    elif init != "torch":
        raise ValueError(f"unknown init {init!r}; expected 'keras' or 'torch'")
    return layer


class KerasBatchNorm1d(nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` whose running variance tracks the *biased* batch
    variance, as Keras' ``BatchNormalization`` does on ``(N, C)`` input (its non-fused path);
    torch's tracks the unbiased one. Training normalizes with the batch statistics as usual;
    evaluation uses the running estimates. ``momentum`` in torch's convention (Keras' 0.99 is
    0.01 here)."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"KerasBatchNorm1d expected input (N, {self.num_features}), got "
                             f"shape {tuple(x.shape)}")
        with torch.no_grad():
            self.running_mean.lerp_(x.mean(dim=0), self.momentum)
            self.running_var.lerp_(x.var(dim=0, unbiased=False), self.momentum)
            self.num_batches_tracked.add_(1)
        if x.shape[0] == 1:       # Keras normalizes a single row too: x - mean = 0, output β
            return self.bias + self.weight * (x - x)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


# Keras' BatchNormalization / the authors' MeanOnlyBatchNormalization: moving average 0.99
# (torch's momentum 0.01), BN epsilon 1e-3.
_KERAS_MOMENTUM, _KERAS_BN_EPS = 0.01, 1e-3


@torch.no_grad()
def keras_conv2d(in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, *,
                 bias: bool = True, fan_out: str = "keras") -> nn.Conv2d:
    """``nn.Conv2d`` ``(N, C_in, H, W) -> (N, C_out, H', W')`` with a Glorot-uniform weight and
    zero bias, as the authors' Keras code draws it.

    ``fan_out="keras"``: Keras' ``Conv2D`` (bound ``sqrt(6/(k²·C_in + k²·C_out))``);
    ``"units"``: their ``GlorotUniformHyperWN`` of ``Conv2DWN`` (bound
    ``sqrt(6/(k²·C_in + C_out))``)."""
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
    fan_in = in_channels * kernel_size * kernel_size
    if fan_out == "keras":
        out = out_channels * kernel_size * kernel_size
    elif fan_out == "units":
        out = out_channels
    else:
        raise ValueError(f"unknown fan_out {fan_out!r}; expected 'keras' or 'units'")
    bound = (6.0 / (fan_in + out)) ** 0.5
    layer.weight.uniform_(-bound, bound)
    if layer.bias is not None:
        layer.bias.zero_()
    return layer
