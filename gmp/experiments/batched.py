"""Train many small networks at once: stacked parameters, per-member Adam, schedules, stopping.

The small experiments (Levy, Banana) train a one-hidden-layer MLP thousands of times with
tiny full or mini batches; on a CPU the cost is Python and dispatch overhead, not
arithmetic. This module stacks ``S`` independent copies of one
:class:`gmp.baselines.OneHiddenLayerMLP` (the *members*: different seeds and/or learning
rates) along a leading axis and runs them with batched matrix products, so one step costs
about as much as one step of a single network.

Invariant: members never interact. Every operation is independent along axis 0 (batched
matmuls, per-member reductions, elementwise Adam), so member ``s`` follows exactly the
trajectory the module version would follow from the same initial parameters, data and
learning-rate schedule (up to floating-point rounding; ``tests/test_small_experiments.py``
checks it in float64 against :func:`torch.optim.Adam`,
:class:`torch.optim.lr_scheduler.ReduceLROnPlateau` and the modules themselves).

Shapes: ``S`` members, input ``x: (S, N, n)``, hidden width ``m``, ``o`` outputs.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..baselines import OneHiddenLayerMLP
from ..cab import cab_geometry, gmp_cab_geometry
from ..layers import KerasBatchNorm1d
from ..params import get_spec, recognize

__all__ = [
    "StackedLinear",
    "StackedBatchNorm",
    "BatchedMLP",
    "BatchedAdam",
    "BatchedPlateau",
    "BatchedEarlyStopping",
    "nanmax",
]

_F64 = torch.float64


def _stack(tensors: Sequence[Tensor]) -> Tensor:
    return torch.stack([t.detach().clone() for t in tensors])


class StackedLinear(nn.Module):
    """``S`` linear layers of one parameterization with parameters stacked on axis 0.

    The layers' spec (:func:`gmp.params.recognize`) names their tensors
    (:meth:`~gmp.params.Parameterization.tensors`); each is stacked on a new axis 0 under
    the same name, a parameter where the layer's is one, a buffer otherwise:

    - SP: ``weight (S, m, n)``, ``bias (S, m)``.
    - WN: ``g (S, m, 1)``, ``v (S, m, n)``, ``bias (S, m)``; ``w = g·v/‖v‖`` row-wise.
    - GmP: ``theta (S, m, n-1)``, ``lam (S, m)``, ``r (S, m)`` and the fixed buffer
      ``direction (S, m, 1)`` (used for ``n = 1``); ``w = r·u(θ)``, ``b = r·λ``. In the paper's
      unit form (layers built with ``activation=nn.ReLU()``; ``unit_form`` is True) the
      forward returns ``r·ReLU(u(θ)ᵀx + λ)`` instead of the pre-activation ``wᵀx + b``.

    The effective ``(w, b)`` is the spec's :meth:`~gmp.params.Parameterization.affine` of
    the stacked tensors. ``param`` is the spec's name, ``spec`` the spec.
    """

    def __init__(self, layers: Sequence[nn.Module]):
        super().__init__()
        if not layers:
            raise ValueError("StackedLinear needs at least one layer")
        specs = {recognize(layer).name for layer in layers}
        if len(specs) != 1:
            raise TypeError("StackedLinear: all layers must share one parameterization, got "
                            f"{specs}")
        self.param = specs.pop()
        self.spec = get_spec(self.param)
        forms = {getattr(layer, "activation", None) is not None for layer in layers}
        if len(forms) != 1:
            raise TypeError("StackedLinear: GmP layers mix the unit and the weight form")
        self.unit_form = forms.pop()
        shapes = {(l.out_features, l.in_features) for l in layers}
        if len(shapes) != 1:
            raise ValueError(f"StackedLinear: layers have different shapes {shapes}")
        self.out_features, self.in_features = shapes.pop()
        per = [self.spec.tensors(layer) for layer in layers]
        if any(t is None for tensors in per for t in tensors.values()):
            raise ValueError("StackedLinear: layers without bias are not supported")
        self._names = tuple(per[0])
        for name in self._names:
            stacked = _stack([tensors[name] for tensors in per])
            if isinstance(per[0][name], nn.Parameter):
                setattr(self, name, nn.Parameter(stacked))
            else:
                self.register_buffer(name, stacked)

    def stacked_tensors(self) -> dict[str, Tensor]:
        """The stacked tensors by name, in the spec's order."""
        return {name: getattr(self, name) for name in self._names}

    def weight_and_bias(self) -> tuple[Tensor, Tensor]:
        """Effective ``(w (S, m, n), b (S, m))`` (differentiable)."""
        return self.spec.affine(self.stacked_tensors())

    @torch.no_grad()
    def weight_and_bias_f64(self) -> tuple[Tensor, Tensor]:
        """Effective float64 ``(w (S, m, n), b (S, m))``, detached."""
        return self.spec.affine_f64(self.stacked_tensors())

    def forward(self, x: Tensor) -> Tensor:
        """``x (S, N, n) -> (S, N, m)``: ``wᵀx + b``, or ``r·ReLU(uᵀx + λ)`` in unit form."""
        if self.unit_form:
            return self.spec.unit_forward(self.stacked_tensors(), x)
        w, b = self.weight_and_bias()
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    @torch.no_grad()
    def load_into(self, layer: nn.Module, s: int) -> None:
        """Copy member ``s`` into ``layer`` (a module of the same parameterization)."""
        other = recognize(layer).name
        if other != self.param:
            raise TypeError(f"load_into: layer is {other}, the stack is {self.param}")
        for name, dst in self.spec.tensors(layer).items():
            dst.copy_(getattr(self, name)[s])


class StackedBatchNorm(nn.Module):
    """``S`` :class:`torch.nn.BatchNorm1d` modules on ``(S, N, m)`` pre-activations.

    Training mode normalizes with the batch mean and biased variance over axis 1 and updates
    the running estimates with the unbiased variance, as ``BatchNorm1d`` does (or with the
    biased one, as Keras does, for :class:`gmp.layers.KerasBatchNorm1d` modules, which
    also accept a batch of one row); evaluation uses the running estimates. Computed per
    member on the ``(S, N, m)`` layout (a strided view through torch's fused kernel is
    slower here). ``update`` (``(S,)`` bool) limits the
    running-statistics update to some members.
    """

    def __init__(self, bns: Sequence[nn.BatchNorm1d]):
        super().__init__()
        for bn in bns:
            if not (bn.affine and bn.track_running_stats) or bn.momentum is None:
                raise ValueError("StackedBatchNorm supports affine BatchNorm1d with running "
                                 "statistics and a fixed momentum only")
        cfg = {(bn.num_features, bn.eps, bn.momentum) for bn in bns}
        if len(cfg) != 1:
            raise ValueError("StackedBatchNorm: modules differ in (features, eps, momentum): "
                             f"{cfg}")
        self.num_features, self.eps, self.momentum = cfg.pop()
        kinds = {isinstance(bn, KerasBatchNorm1d) for bn in bns}
        if len(kinds) != 1:
            raise ValueError("StackedBatchNorm: modules mix torch's and Keras' running variance")
        self.biased_running_var = kinds.pop()
        self.weight = nn.Parameter(_stack([bn.weight for bn in bns]))
        self.bias = nn.Parameter(_stack([bn.bias for bn in bns]))
        self.register_buffer("running_mean", _stack([bn.running_mean for bn in bns]))
        self.register_buffer("running_var", _stack([bn.running_var for bn in bns]))
        self.register_buffer("num_batches_tracked", _stack([bn.num_batches_tracked for bn in bns]))

    def forward(self, z: Tensor, update: Tensor | None = None) -> Tensor:
        S, N, m = z.shape
        w, b = self.weight.unsqueeze(1), self.bias.unsqueeze(1)
        if not self.training:
            scale = w * torch.rsqrt(self.running_var.unsqueeze(1) + self.eps)
            return (z - self.running_mean.unsqueeze(1)) * scale + b
        if N < 2 and not self.biased_running_var:
            raise ValueError("BatchNorm in training mode needs at least 2 samples per batch")
        # Per member over axis 1, on the contiguous (S, N, m) layout. A batch of one row
        # (Keras allows it) gives z - mean = 0 with a zero gradient: the output is β.
        mean = z.mean(dim=1, keepdim=True)
        zc = z - mean
        var = (zc * zc).mean(dim=1, keepdim=True)          # biased, as for normalizing
        out = zc * (w * torch.rsqrt(var + self.eps)) + b
        with torch.no_grad():
            bm, bv = mean.squeeze(1), var.squeeze(1)
            if not self.biased_running_var:                # torch: the unbiased variance
                bv = bv * (N / (N - 1))
            rm = torch.lerp(self.running_mean, bm, self.momentum)
            rv = torch.lerp(self.running_var, bv, self.momentum)
            if update is None:
                self.running_mean.copy_(rm)
                self.running_var.copy_(rv)
                self.num_batches_tracked.add_(1)
            else:
                u = update.unsqueeze(-1)
                self.running_mean.copy_(torch.where(u, rm, self.running_mean))
                self.running_var.copy_(torch.where(u, rv, self.running_var))
                self.num_batches_tracked.add_(update.long())
        return out

    @torch.no_grad()
    def load_into(self, bn: nn.BatchNorm1d, s: int) -> None:
        bn.weight.copy_(self.weight[s])
        bn.bias.copy_(self.bias[s])
        bn.running_mean.copy_(self.running_mean[s])
        bn.running_var.copy_(self.running_var[s])
        bn.num_batches_tracked.copy_(self.num_batches_tracked[s])


class BatchedMLP(nn.Module):
    """``S`` copies of one :class:`~gmp.baselines.OneHiddenLayerMLP`, stacked.

    Build it from the module versions (so every member starts from exactly the parameters the
    module version would have under the same seed) with :meth:`from_modules`; write members
    back with :meth:`load_into`. ``forward(x (S, N, n)) -> (S, N, o)``.
    """

    def __init__(self, models: Sequence[OneHiddenLayerMLP]):
        super().__init__()
        if not models:
            raise ValueError("BatchedMLP needs at least one model")
        params = {m.param for m in models}
        if len(params) != 1:
            raise ValueError("BatchedMLP: all models must use one parameterization, got "
                             f"{sorted(params)}")
        self.param = params.pop()
        spec = get_spec(self.param)
        parts = [spec.split_hidden(m.hidden) for m in models]   # (linear, norm or None)
        self.hidden = StackedLinear([lin for lin, _ in parts])
        self.bn = None if parts[0][1] is None else StackedBatchNorm([n for _, n in parts])
        self.out = StackedLinear([m.out for m in models])
        self.size = len(models)

    @classmethod
    def from_modules(cls, models: Sequence[OneHiddenLayerMLP]) -> BatchedMLP:
        """Stack ``models`` (copies their current parameters and buffers)."""
        return cls(models)

    @torch.no_grad()
    def subset(self, idx: Tensor) -> BatchedMLP:
        """A new stack of members ``idx`` (copies; every parameter and buffer has the members
        on axis 0). Training drops finished members with it (:meth:`BatchedAdam.select`)."""
        new = copy.copy(self)
        new._modules = {k: copy.copy(v) for k, v in self._modules.items()}
        for name, mod in new._modules.items():
            if mod is None:
                continue
            mod._parameters = {k: None if p is None else nn.Parameter(p.detach()[idx].clone(),
                                                                      p.requires_grad)
                               for k, p in self._modules[name]._parameters.items()}
            mod._buffers = {k: None if b is None else b[idx].clone()
                            for k, b in self._modules[name]._buffers.items()}
        new.size = len(idx)
        return new

    def flat_state(self) -> Tensor:
        """Every floating parameter and buffer, flattened per member: ``(S, P)`` (detached)."""
        return torch.cat([t.detach().reshape(self.size, -1) for t in self._float_state()], dim=1)

    @torch.no_grad()
    def load_flat_state(self, flat: Tensor, members: Tensor | None = None) -> None:
        """Write rows of :meth:`flat_state` back: all members, or those where ``members``
        (``(S,)`` bool) is True."""
        tensors = self._float_state()
        parts = torch.split(flat, [t[0].numel() for t in tensors], dim=1)
        for t, part in zip(tensors, parts, strict=True):
            src = part.view_as(t)
            if members is None:
                t.copy_(src)
            else:
                t.copy_(torch.where(members.view(-1, *([1] * (t.dim() - 1))), src, t))

    def _float_state(self) -> list[Tensor]:
        return [t for t in (*self.parameters(), *self.buffers())
                if t.is_floating_point() and t.numel() > 0]

    def forward(self, x: Tensor, update: Tensor | None = None) -> Tensor:
        """``x (S, N, n) -> (S, N, o)``; ``update (S,)`` masks BN running-statistics updates."""
        if x.dim() != 3 or x.shape[0] != self.size or x.shape[2] != self.hidden.in_features:
            raise ValueError(f"BatchedMLP expected input (S={self.size}, N, "
                             f"{self.hidden.in_features}), got {tuple(x.shape)}")
        z = self.hidden(x)
        if self.hidden.unit_form:        # r·ReLU(uᵀx + λ): the layer applied its activation
            return self.out(z)
        if self.bn is not None:
            z = self.bn(z, update)
        return self.out(torch.relu(z))

    @torch.no_grad()
    def load_into(self, model: OneHiddenLayerMLP, s: int) -> OneHiddenLayerMLP:
        """Copy member ``s`` into ``model`` (same parameterization and sizes); returns ``model``."""
        if model.param != self.param:
            raise ValueError(f"load_into: model uses {model.param!r}, the stack {self.param!r}")
        lin, norm = get_spec(self.param).split_hidden(model.hidden)
        self.hidden.load_into(lin, s)
        if self.bn is not None:
            self.bn.load_into(norm, s)
        self.out.load_into(model.out, s)
        return model

    @torch.no_grad()
    def effective_hidden(self, x_ref: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Effective float64 ``(w (S, m, n), b (S, m))`` of every member's hidden units.

        Same conventions as :func:`gmp.cab.effective_weight_bias`: for BN, the batch
        statistics of ``x_ref (S, N, n)`` in training mode, the running statistics otherwise.
        """
        w, b = self.hidden.weight_and_bias_f64()
        if self.bn is None:
            return w, b
        bn = self.bn
        if bn.training and x_ref is not None:
            z = torch.baddbmm(b.unsqueeze(1), x_ref.to(_F64), w.transpose(1, 2))
            mean = z.mean(dim=1)
            zc = z - mean.unsqueeze(1)
            var = (zc * zc).mean(dim=1)  # biased; Tensor.var over axis 1 is slow here
        else:
            mean, var = bn.running_mean.to(_F64), bn.running_var.to(_F64)
        scale = bn.weight.to(_F64) / torch.sqrt(var + bn.eps)
        return scale.unsqueeze(-1) * w, bn.bias.to(_F64) + scale * (b - mean)

    @torch.no_grad()
    def cab_state(self, x_ref: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Spatial locations ``φ`` and unit directions of the hidden CABs, each ``(S, m, n)``.

        ``φ = -b·w/‖w‖²`` and ``w/‖w‖`` from :meth:`effective_hidden`, unless the spec gives
        the CAB's own coordinates (:meth:`gmp.params.Parameterization.cab_coordinates`): for
        GmP exactly ``φ = -λ·u(θ)`` and the normal towards the active side, as
        :func:`gmp.cab.directions` computes them: ``u(θ)`` in the unit form
        ``r·ReLU(uᵀx + λ)``, ``sign(r)·u(θ)`` in the weight form ``ReLU((r·u)ᵀx + r·λ)``,
        where a sign change of ``r`` swaps the active side (a turn of 180°).
        """
        lin = self.hidden
        coords = lin.spec.cab_coordinates(lin.stacked_tensors(), lin.unit_form)
        if coords is None:
            return cab_geometry(*self.effective_hidden(x_ref))
        lam, u, orient = coords
        phi, u = gmp_cab_geometry(lam, u)
        if orient is not None:
            u = u * orient.unsqueeze(-1)
        return phi, u

    @staticmethod
    def cab_change(before: tuple[Tensor, Tensor], after: tuple[Tensor, Tensor]
                   ) -> tuple[Tensor, Tensor]:
        """Max over units of ``‖Δφ‖`` and of the angular change (degrees), each ``(S,)``.

        Units whose CAB is undefined (NaN) are ignored, as in :class:`gmp.cab.CABTracker`.
        """
        loc = torch.linalg.vector_norm(after[0] - before[0], dim=-1)
        # directions are unit vectors: Kahan's 2·atan2(‖a - b‖, ‖a + b‖), as in
        # gmp.cab.angular_change (which also renormalizes its inputs)
        a, b = before[1], after[1]
        ang = torch.rad2deg(2.0 * torch.atan2(torch.linalg.vector_norm(a - b, dim=-1),
                                              torch.linalg.vector_norm(a + b, dim=-1)))
        return nanmax(loc, dim=-1), nanmax(ang, dim=-1)


def nanmax(x: Tensor, dim: int) -> Tensor:
    """Maximum over ``dim`` ignoring NaN; all-NaN slices give NaN (like ``np.fmax.reduce``)."""
    out = torch.nan_to_num(x, nan=-math.inf, posinf=math.inf).amax(dim=dim)
    # -inf only where every entry was NaN (the quantities maximized here are >= 0)
    return torch.where(out == -math.inf, math.nan, out)


class BatchedAdam:
    """Adam (Kingma & Ba 2015) on stacked parameters with a learning rate per member.

    With ``t`` steps, ``m ← β₁m + (1-β₁)g``, ``v ← β₂v + (1-β₂)g²`` and (no weight decay, no
    AMSGrad), for ``eps_mode="torch"`` as :class:`torch.optim.Adam`:
    ``p ← p - lr/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + ε)``; for ``eps_mode="keras"`` as Keras' Adam
    (and :class:`gmp.experiments.fit.KerasAdam`), with ``ε`` added before the bias
    correction: ``p ← p - lr·√(1-β₂ᵗ)/(1-β₁ᵗ) · m / (√v + ε)``. Axis 0 of every parameter
    indexes the members; ``lr`` is an ``(S,)`` float64 tensor that schedulers change in
    place. Members outside ``active`` keep their parameters; a member that left the active
    set must not be brought back (its moments keep moving and are no longer meaningful).

    The moments live in one flat ``(S, P)`` buffer, so a step costs a dozen tensor
    operations however many parameter tensors there are. Empty parameters are ignored; every
    other parameter must have a gradient at each step (all do in the MLPs trained here).
    """

    def __init__(self, params: Sequence[Tensor], lr: Tensor,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 eps_mode: str = "torch"):
        if eps_mode not in ("torch", "keras"):
            raise ValueError(f"eps_mode must be 'torch' or 'keras', got {eps_mode!r}")
        self.eps_mode = eps_mode
        self.params = [p for p in params if p.requires_grad and p.numel() > 0]
        self.lr = lr.detach().clone().to(torch.float64)
        S = len(self.lr)
        if self.lr.dim() != 1 or any(p.shape[0] != S for p in self.params):
            raise ValueError("BatchedAdam: lr must have shape (S,) matching axis 0 of every "
                             "parameter")
        if not bool((self.lr > 0).all()):
            raise ValueError(f"BatchedAdam: learning rates must be positive, got "
                             f"{self.lr.tolist()}")
        self.betas, self.eps = betas, eps
        sizes = [p[0].numel() for p in self.params]
        dtype = self.params[0].dtype if self.params else torch.float32
        self.exp_avg = torch.zeros(S, sum(sizes), dtype=dtype)
        self.exp_avg_sq = torch.zeros_like(self.exp_avg)
        self._sizes = sizes
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def select(self, idx: Tensor, params: Sequence[Tensor]) -> None:
        """Keep members ``idx`` only; ``params`` are their new parameter tensors, in the
        order given at construction (e.g. ``BatchedMLP.subset(idx).parameters()``). Dropping
        a finished member costs nothing later, where a mask still computes it."""
        params = [p for p in params if p.requires_grad and p.numel() > 0]
        if [p[0].numel() for p in params] != self._sizes or any(
                p.shape[0] != len(idx) for p in params):
            raise ValueError("BatchedAdam.select: params do not match the optimized tensors "
                             f"for {len(idx)} members")
        self.params = params
        self.exp_avg, self.exp_avg_sq = self.exp_avg[idx], self.exp_avg_sq[idx]
        self.lr = self.lr[idx].clone()

    @torch.no_grad()
    def step(self, active: Tensor | None = None) -> None:
        """One Adam step of the members in ``active`` (``(S,)`` bool; default all)."""
        missing = [i for i, p in enumerate(self.params) if p.grad is None]
        if missing:
            raise RuntimeError(f"BatchedAdam: parameters {missing} have no gradient")
        S = len(self.lr)
        b1, b2 = self.betas
        # Active members have all taken the same number of steps (members only ever leave
        # the active set), so one step count serves them all; the moments of members that
        # left are no longer meaningful and their parameters are never touched again.
        self.t += 1
        g = torch.cat([p.grad.reshape(S, -1) for p in self.params], dim=1)
        self.exp_avg.lerp_(g, 1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
        if self.eps_mode == "torch":
            denom = self.exp_avg_sq.sqrt().div_(math.sqrt(1 - b2 ** self.t)).add_(self.eps)
            step_size = (self.lr / (1 - b1 ** self.t)).to(g.dtype).unsqueeze(1)   # (S, 1)
        else:
            denom = self.exp_avg_sq.sqrt().add_(self.eps)
            step_size = (self.lr * (math.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t))
                         ).to(g.dtype).unsqueeze(1)
        update = step_size * (self.exp_avg / denom)
        if active is not None:
            update = torch.where(active.unsqueeze(1), update, torch.zeros((), dtype=g.dtype))
        parts = torch.split(update, self._sizes, dim=1)
        torch._foreach_sub_(self.params, [u.view_as(p) for u, p in zip(parts, self.params,
                                                                        strict=True)])


class BatchedPlateau:
    """Per-member :class:`torch.optim.lr_scheduler.ReduceLROnPlateau`.

    A value is an improvement when it beats the best so far by ``threshold``: relative
    (``threshold_mode="rel"``, torch's default: ``a < best·(1 - threshold)`` in ``"min"``
    mode, ``a > best·(1 + threshold)`` in ``"max"``) or absolute (``"abs"``:
    ``a < best - threshold``, ``a > best + threshold``). After more than ``patience`` epochs
    without one the member's learning rate is multiplied by ``factor`` (not below ``min_lr``,
    and only if it changes by more than ``eps``) and the count restarts. NaN is never an
    improvement.

    Keras' ``ReduceLROnPlateau(patience=p, min_delta=d)`` reduces after ``p`` epochs without an
    absolute improvement by ``d``: it is ``threshold_mode="abs", threshold=d, patience=p-1,
    eps=0`` here (:meth:`keras`).
    """

    def __init__(self, lr: Tensor, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, min_lr: float = 0.0, eps: float = 1e-8,
                 threshold_mode: str = "rel"):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        self.threshold_mode = threshold_mode
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.lr, self.mode, self.factor, self.patience = lr, mode, factor, patience
        self.threshold, self.min_lr, self.eps = threshold, min_lr, eps
        self.best = torch.full_like(lr, math.inf if mode == "min" else -math.inf, dtype=_F64)
        self.num_bad = torch.zeros_like(lr, dtype=torch.long)

    @classmethod
    def keras(cls, lr: Tensor, mode: str = "min", factor: float = 0.1, patience: int = 10,
              min_delta: float = 1e-4) -> BatchedPlateau:
        """Keras' ``ReduceLROnPlateau(mode, factor, patience, min_delta)`` (cooldown 0,
        min_lr 0)."""
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        return cls(lr, mode, factor, patience - 1, threshold=min_delta, eps=0.0,
                   threshold_mode="abs")

    @torch.no_grad()
    def step(self, metric: Tensor, active: Tensor | None = None) -> None:
        """``metric (S,)``; members outside ``active`` are left alone. Changes ``lr`` in place."""
        a = metric.detach().to(_F64)
        act = torch.ones_like(self.num_bad, dtype=torch.bool) if active is None else active
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            better = a < (self.best * (1 - self.threshold) if rel else self.best - self.threshold)
        else:
            better = a > (self.best * (1 + self.threshold) if rel else self.best + self.threshold)
        better &= act
        self.best = torch.where(better, a, self.best)
        self.num_bad = torch.where(better, 0, torch.where(act, self.num_bad + 1, self.num_bad))
        reduce = act & (self.num_bad > self.patience)
        new_lr = torch.clamp_min(self.lr * self.factor, self.min_lr)
        self.lr.copy_(torch.where(reduce & (self.lr - new_lr > self.eps), new_lr, self.lr))
        self.num_bad = torch.where(reduce, 0, self.num_bad)


class BatchedEarlyStopping:
    """Per-member early stopping that remembers the best epoch (Keras' ``EarlyStopping``).

    ``update(metric)`` returns ``(improved, stop)``: ``improved`` where the value beats the
    best so far by more than ``min_delta`` (the caller snapshots those members' weights), and
    ``stop`` where ``patience`` consecutive updates brought no improvement. The first finite
    value always improves on the initial ``±inf``; NaN never improves.
    """

    def __init__(self, size: int, mode: str = "min", patience: int = 10, min_delta: float = 0.0):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.mode, self.patience, self.min_delta = mode, patience, min_delta
        self.best = torch.full((size,), math.inf if mode == "min" else -math.inf, dtype=_F64)
        self.wait = torch.zeros(size, dtype=torch.long)
        self.best_epoch = torch.full((size,), -1, dtype=torch.long)
        self.stopped = torch.zeros(size, dtype=torch.bool)
        self._epoch = 0

    @torch.no_grad()
    def update(self, metric: Tensor) -> tuple[Tensor, Tensor]:
        a = metric.detach().to(_F64)
        act = ~self.stopped
        if self.mode == "min":
            improved = a < self.best - self.min_delta
        else:
            improved = a > self.best + self.min_delta
        improved &= act
        self.best = torch.where(improved, a, self.best)
        self.best_epoch = torch.where(improved, self._epoch, self.best_epoch)
        self.wait = torch.where(improved, 0, torch.where(act, self.wait + 1, self.wait))
        stop = act & (self.wait >= self.patience)
        self.stopped |= stop
        self._epoch += 1
        return improved, stop
