"""Train many one-hidden-layer ReLU MLPs at once: the engine of the UCI benchmark (Table 1).

The UCI protocol trains thousands of small networks (data set × split × fold × learning rate
× method). One at a time, a CPU spends its time on Python and kernel-launch overhead. Here
``S`` independent *members* of one parameterization are stacked along a leading axis and
trained together with batched matrix products (``torch.baddbmm``), a batched Adam and
per-member early stopping.

Invariant: members never interact. Every operation is independent along axis 0, the loss
is a sum of per-member losses (so member ``s`` receives exactly the gradient of its own
loss) and Adam is elementwise, so member ``s`` follows the trajectory that
:class:`gmp.baselines.OneHiddenLayerMLP` trained alone with :class:`torch.optim.Adam`
follows from the same initial parameters and data (up to floating-point rounding;
:func:`train_loop` is that one-at-a-time reference and ``tests/test_uci.py`` checks both).

Parameters (``S`` members, ``n`` inputs, ``m`` hidden units, one output), stored in a
``dict[str, Tensor]`` with the module's names:

- ``sp``: ``weight (S,m,n)``, ``bias (S,m)``; ``out_weight (S,1,m)``, ``out_bias (S,1)``.
- ``wn``: ``g (S,m,1)``, ``v (S,m,n)``, ``bias (S,m)``; ``out_g (S,1,1)``, ``out_v (S,1,m)``,
  ``out_bias (S,1)``; ``w = g·v/‖v‖`` row-wise (torch's ``weight_norm``, ``dim=0``).
- ``bn``: ``weight``, ``bias`` as SP, ``gamma (S,m)``, ``beta (S,m)``; plain linear output.
- ``gmp``: ``theta (S,m,n-1)``, ``lam (S,m)``, ``r (S,m)``; ``out_theta (S,1,m-1)``,
  ``out_lam (S,1)``, ``out_r (S,1)``; ``w = r·u(θ)``, ``b = r·λ`` (:mod:`gmp.nn`).

Initialization is exactly the module's: :func:`init_params` builds each member as a
:class:`~gmp.baselines.OneHiddenLayerMLP` under its own seed and stacks the parameters (SP/BN
linear layers: PyTorch's default uniform init; WN: ``g = ‖v‖``; BN: ``γ = 1``, ``β = 0``;
GmP: direction uniform on the sphere, ``λ = 0``, ``r = 1``).

Batch normalization is computed from the *moments of the input*: for a batch with mean
``x̄`` and (biased) covariance ``Σ``, the pre-activation ``z = Wx + b`` has mean ``Wx̄ + b``
and variance ``diag(W Σ Wᵀ)``, so BN is an affine layer with weight ``γ/σ·W`` and bias
``β + γ(b - μ)/σ``. This is the same function as ``Linear → BatchNorm1d`` in training mode
(same gradients too), without a pass over the ``(S, N, m)`` pre-activations. At evaluation
two conventions are available (:class:`TrainConfig` ``bn_eval``):

- ``"population"`` (honest protocol, full batch): the statistics of the whole fit set under
  the current weights, i.e. exactly the normalization the network was trained with. With a
  full batch these are the batch statistics; torch's running averages would only lag them.
- ``"running"`` (official protocol, mini-batches): torch's exponential running averages
  (momentum 0.1, unbiased variance), as ``BatchNorm1d.eval()`` uses them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..baselines import METHODS, OneHiddenLayerMLP, check_method, mlp
from ..geometry import unit_vector

#: The networks of the committed UCI tables: this book's first edition (``"book-v1"``:
#: Remark 3.5 init, GmP read-out, weight form, torch's initializations). The stacked engine
#: below computes the GmP layers in weight form; moving Table 1 to the authors' networks
#: (``"authors"``) is the next step of the UCI benchmark.
UCI_PRESET = "book-v1"

__all__ = [
    "PARAM_NAMES",
    "TrainConfig",
    "TrainResult",
    "StackedAdam",
    "init_params",
    "stack_modules",
    "load_member",
    "moments",
    "effective_layers",
    "batched_forward",
    "train_batched",
    "train_loop",
    "predict",
]

Params = dict[str, Tensor]

#: Trainable tensors of each method, hidden layer first, then the output layer.
PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "sp": ("weight", "bias", "out_weight", "out_bias"),
    "wn": ("g", "v", "bias", "out_g", "out_v", "out_bias"),
    "bn": ("weight", "bias", "gamma", "beta", "out_weight", "out_bias"),
    "gmp": ("theta", "lam", "r", "out_theta", "out_lam", "out_r"),
}


# ---------------------------------------------------------------- modules <-> stacked tensors

def _linear_tensors(layer, kind: str, prefix: str) -> dict[str, Tensor]:
    if kind == "gmp":
        if layer.fan_in < 2:
            raise ValueError("the batched GmP forward needs a fan-in of at least 2 "
                             f"(got {layer.fan_in}); inputs of dimension 1 are not supported")
        return {prefix + "theta": layer.theta, prefix + "lam": layer.lam, prefix + "r": layer.r}
    if kind == "wn":
        pw = layer.parametrizations.weight
        return {prefix + "g": pw.original0, prefix + "v": pw.original1, prefix + "bias": layer.bias}
    return {prefix + "weight": layer.weight, prefix + "bias": layer.bias}


def _module_tensors(model: OneHiddenLayerMLP) -> dict[str, Tensor]:
    method = model.method
    if method == "bn":
        lin, bn = model.hidden
        t = _linear_tensors(lin, "sp", "")
        t.update(gamma=bn.weight, beta=bn.bias)
        t.update(_linear_tensors(model.out, "sp", "out_"))
        return t
    t = _linear_tensors(model.hidden, method, "")
    t.update(_linear_tensors(model.out, method, "out_"))
    return t


def stack_modules(models: Sequence[OneHiddenLayerMLP]) -> Params:
    """Stack the parameters of ``models`` (one method, same sizes) into ``(S, ...)`` tensors."""
    if not models:
        raise ValueError("stack_modules needs at least one model")
    methods = {m.method for m in models}
    if len(methods) != 1:
        raise ValueError(f"stack_modules: all models must use one method, got {sorted(methods)}")
    per = [_module_tensors(m) for m in models]
    shapes = {tuple((k, tuple(v.shape)) for k, v in t.items()) for t in per}
    if len(shapes) != 1:
        raise ValueError("stack_modules: models have different layer sizes")
    return {k: torch.stack([t[k].detach() for t in per]).clone() for k in per[0]}


@torch.no_grad()
def load_member(params: Params, s: int, model: OneHiddenLayerMLP) -> OneHiddenLayerMLP:
    """Copy member ``s`` of ``params`` into ``model`` (same method and sizes); returns it."""
    tensors = _module_tensors(model)
    missing = set(tensors) - set(params)
    if missing:
        raise ValueError(f"load_member: params lack {sorted(missing)} for method {model.method!r}")
    for k, t in tensors.items():
        t.copy_(params[k][s])
    return model


def init_params(method: str, in_features: int, seeds: Sequence[int], hidden: int = 100,
                dtype: torch.dtype = torch.float32) -> Params:
    """Initial parameters of ``len(seeds)`` members, member ``s`` drawn exactly as
    ``torch.manual_seed(seeds[s]); gmp.baselines.mlp(method, in_features, hidden,
    preset=UCI_PRESET)`` draws them (the global RNG state is restored afterwards)."""
    method = check_method(method)
    models = []
    with torch.random.fork_rng(devices=[]):
        for seed in seeds:
            torch.manual_seed(int(seed))
            models.append(mlp(method, in_features, hidden, preset=UCI_PRESET))
    return {k: v.to(dtype) for k, v in stack_modules(models).items()}


# ---------------------------------------------------------------- forward

def moments(x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean ``(S, n)`` and biased covariance ``(S, n, n)`` of ``x (S, N, n)`` over axis 1.

    ``mask (S, N)`` (0/1) selects the rows of each member (padding rows get 0).
    """
    if mask is None:
        mean = x.mean(dim=1)
        xc = x - mean.unsqueeze(1)
        return mean, torch.bmm(xc.transpose(1, 2), xc) / x.shape[1]
    w = mask.to(x.dtype).unsqueeze(-1)
    cnt = w.sum(dim=1)                                  # (S, 1)
    mean = (x * w).sum(dim=1) / cnt
    xc = (x - mean.unsqueeze(1)) * w
    return mean, torch.bmm(xc.transpose(1, 2), xc) / cnt.unsqueeze(-1)


def _linear(kind: str, p: Params, prefix: str) -> tuple[Tensor, Tensor]:
    """Effective ``(w (S,k,n), b (S,k))`` of one stacked linear layer."""
    if kind == "gmp":
        r = p[prefix + "r"]
        return r.unsqueeze(-1) * unit_vector(p[prefix + "theta"]), r * p[prefix + "lam"]
    if kind == "wn":
        v = p[prefix + "v"]
        return v * (p[prefix + "g"] / torch.linalg.vector_norm(v, dim=-1, keepdim=True)), \
            p[prefix + "bias"]
    return p[prefix + "weight"], p[prefix + "bias"]


def _bn_stats(w: Tensor, b: Tensor, mom: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Mean and biased variance ``(S, m)`` of ``z = w x + b`` given the input moments."""
    mean_x, cov_x = mom
    mu = torch.einsum("smn,sn->sm", w, mean_x) + b
    var = (torch.bmm(w, cov_x) * w).sum(dim=-1)
    return mu, var


def effective_layers(method: str, p: Params, *, bn_stats: tuple[Tensor, Tensor] | None = None,
                     moments_x: tuple[Tensor, Tensor] | None = None, bn_eps: float = 1e-5
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The member networks as plain ``relu(x W1ᵀ + b1) W2ᵀ + b2``: ``(W1, b1, W2, b2)``.

    Shapes ``(S,m,n)``, ``(S,m)``, ``(S,1,m)``, ``(S,1)``. For BN, the normalization uses
    ``bn_stats = (mean, var)`` of the pre-activation (running estimates) if given, else the
    statistics implied by ``moments_x`` (batch/population moments of the input, see
    :func:`moments`); one of them is required.
    """
    if method == "bn":
        w, b = _linear("sp", p, "")
        if bn_stats is None:
            if moments_x is None:
                raise ValueError("BN needs bn_stats (running estimates) or moments_x "
                                 "(input moments) to normalize its pre-activations")
            bn_stats = _bn_stats(w, b, moments_x)
        mu, var = bn_stats
        scale = p["gamma"] * torch.rsqrt(var + bn_eps)
        w1, b1 = scale.unsqueeze(-1) * w, p["beta"] + scale * (b - mu)
        w2, b2 = _linear("sp", p, "out_")
    else:
        w1, b1 = _linear(method, p, "")
        w2, b2 = _linear(method, p, "out_")
    return w1, b1, w2, b2


def _mlp(x: Tensor, layers: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
    """``x (S, N, n) -> (S, N)`` for plain layers from :func:`effective_layers`."""
    w1, b1, w2, b2 = layers
    h = torch.relu(torch.baddbmm(b1.unsqueeze(1), x, w1.transpose(1, 2)))
    return torch.baddbmm(b2.unsqueeze(1), h, w2.transpose(1, 2)).squeeze(-1)


def batched_forward(method: str, params: Params, x: Tensor, *, mask: Tensor | None = None,
                    bn_stats: tuple[Tensor, Tensor] | None = None,
                    moments_x: tuple[Tensor, Tensor] | None = None, bn_eps: float = 1e-5
                    ) -> Tensor:
    """Outputs ``(S, N)`` of the ``S`` member networks on ``x (S, N, n)``.

    BN: by default the batch statistics of ``x`` (rows selected by ``mask``), as
    ``BatchNorm1d`` in training mode; or the given ``bn_stats`` / ``moments_x``
    (see :func:`effective_layers`).
    """
    method = check_method(method)
    _check_x(params, method, x)
    if method == "bn" and bn_stats is None and moments_x is None:
        moments_x = moments(x, mask)
    return _mlp(x, effective_layers(method, params, bn_stats=bn_stats, moments_x=moments_x,
                                    bn_eps=bn_eps))


def _check_x(params: Params, method: str, x: Tensor) -> None:
    names = PARAM_NAMES[method]
    if set(names) - set(params):
        raise ValueError(f"params lack {sorted(set(names) - set(params))} for method {method!r}")
    first = params[names[0]] if method != "gmp" else params["lam"]
    S = first.shape[0]
    n = params["theta"].shape[-1] + 1 if method == "gmp" else params[
        "v" if method == "wn" else "weight"].shape[-1]
    if x.dim() != 3 or x.shape[0] != S or x.shape[2] != n:
        raise ValueError(f"expected input of shape (S={S}, N, n={n}), got {tuple(x.shape)}")


# ---------------------------------------------------------------- optimizer and schedules

class StackedAdam:
    """Adam on stacked parameters with one learning rate per member (axis 0).

    Same arithmetic as :class:`torch.optim.Adam` (no weight decay, no AMSGrad):
    ``m ← β₁m + (1-β₁)g``, ``v ← β₂v + (1-β₂)g²``,
    ``p ← p - lr/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + ε)``. All members step together (``t`` is
    shared); ``lr (S,)`` may be changed in place by a schedule.
    """

    def __init__(self, params: Sequence[Tensor], lr: Tensor,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.lr = lr
        if lr.dim() != 1 or any(p.shape[0] != lr.shape[0] for p in self.params):
            raise ValueError("StackedAdam: lr must have shape (S,) matching axis 0 of every "
                             f"parameter; got lr {tuple(lr.shape)} and parameters "
                             f"{[tuple(p.shape) for p in self.params]}")
        self.betas, self.eps, self.t = betas, eps, 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        b1, b2 = self.betas
        self.t += 1
        bc1, bc2_sqrt = 1 - b1 ** self.t, math.sqrt(1 - b2 ** self.t)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            g = p.grad
            if g is None:
                continue
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
            step = (self.lr / bc1).to(p.dtype).view(-1, *([1] * (p.dim() - 1)))
            p.sub_(step * m / denom)
            p.grad = None

    def select(self, idx: Tensor, params: Sequence[Tensor]) -> None:
        """Keep members ``idx`` only; ``params`` are the new (already selected) leaves."""
        self.params = list(params)
        self.exp_avg = [m[idx] for m in self.exp_avg]
        self.exp_avg_sq = [v[idx] for v in self.exp_avg_sq]
        self.lr = self.lr[idx]


@dataclass(frozen=True)
class TrainConfig:
    """How the members are trained (one protocol).

    Attributes:
        max_epochs: at most this many passes over the fit set.
        patience: stop a member after this many epochs without a better monitor value
            (the monitor is the MSE on the monitoring set after every epoch); its weights
            of the best epoch are kept.
        loss: ``"mse"`` or ``"mae"`` on the fit set.
        batch_size: mini-batch size, ``None`` for full batch. Mini-batches are drawn from a
            fresh permutation every epoch (per-member generator seeded by ``seeds``).
        plateau_patience: if set, multiply a member's learning rate by ``plateau_factor``
            after this many epochs whose monitor value did not beat the best by
            ``plateau_min_delta`` (absolute; Keras' ``ReduceLROnPlateau``).
        plateau_factor, plateau_min_delta: see ``plateau_patience``.
        bn_eval: ``"population"`` or ``"running"``; how BN normalizes at evaluation (module
            docstring).
        bn_momentum, bn_eps: as ``torch.nn.BatchNorm1d`` (defaults equal).
        compact_below: drop stopped members from the batch when the active fraction falls
            below this (saves work; results are unchanged).
    """

    max_epochs: int = 2000
    patience: int = 100
    loss: str = "mse"
    batch_size: int | None = None
    plateau_patience: int | None = None
    plateau_factor: float = 0.1
    plateau_min_delta: float = 1e-4
    bn_eval: str = "population"
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    compact_below: float = 0.75

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.patience < 1:
            raise ValueError(f"max_epochs and patience must be >= 1, got {self.max_epochs}, "
                             f"{self.patience}")
        if self.loss not in ("mse", "mae"):
            raise ValueError(f"loss must be 'mse' or 'mae', got {self.loss!r}")
        if self.batch_size is not None and self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 or None (full batch), got {self.batch_size}")
        if self.bn_eval not in ("population", "running"):
            raise ValueError(f"bn_eval must be 'population' or 'running', got {self.bn_eval!r}")
        if self.plateau_patience is not None and not 0 < self.plateau_factor < 1:
            raise ValueError(f"plateau_factor must be in (0, 1), got {self.plateau_factor}")


@dataclass
class TrainResult:
    """Outcome of :func:`train_batched` / :func:`train_loop` (``S`` members).

    Attributes:
        method: the parameterization.
        params: best parameters (the epoch of the lowest monitor MSE), ``(S, ...)`` tensors.
        bn_stats: for BN with ``bn_eval="running"``, the running ``(mean, var)`` at that
            epoch; None otherwise.
        fit_moments: input moments of the fit set (BN population statistics); None unless BN.
        best_epoch: ``(S,)`` epoch (1-based count of passes) of the best weights; 0 if no
            epoch gave a finite monitor value (initial weights kept).
        stopped_epoch: ``(S,)`` last epoch trained.
        best_monitor: ``(S,)`` best monitor MSE.
        config: the configuration used.
    """

    method: str
    params: Params
    bn_stats: tuple[Tensor, Tensor] | None
    fit_moments: tuple[Tensor, Tensor] | None
    best_epoch: Tensor
    stopped_epoch: Tensor
    best_monitor: Tensor
    config: TrainConfig = field(repr=False)


def _loss(pred: Tensor, y: Tensor, mask: Tensor | None, kind: str) -> Tensor:
    """Per-member mean loss ``(S,)``."""
    err = pred - y
    e = err * err if kind == "mse" else err.abs()
    if mask is None:
        return e.mean(dim=1)
    m = mask.to(e.dtype)
    return (e * m).sum(dim=1) / m.sum(dim=1)


@torch.no_grad()
def predict(result: TrainResult, x: Tensor, idx: Tensor | None = None) -> Tensor:
    """Outputs ``(S, N)`` of the trained members (their best weights) on ``x (S, N, n)``.

    ``idx`` selects a subset of members (then ``x`` has ``len(idx)`` rows on axis 0).
    """
    p, stats, mom = result.params, result.bn_stats, result.fit_moments
    if idx is not None:
        p = {k: v[idx] for k, v in p.items()}
        stats = tuple(t[idx] for t in stats) if stats is not None else None
        mom = tuple(t[idx] for t in mom) if mom is not None else None
    return batched_forward(result.method, p, x, bn_stats=stats, moments_x=mom,
                           bn_eps=result.config.bn_eps)


def _as_lr(lr: Tensor | Sequence[float] | float, S: int) -> Tensor:
    t = torch.as_tensor(lr, dtype=torch.float64).flatten()
    if t.numel() == 1:
        t = t.expand(S)
    if t.shape != (S,):
        raise ValueError(f"lr must be a scalar or have one value per member ({S}), "
                         f"got shape {tuple(t.shape)}")
    if not bool((t > 0).all()):
        raise ValueError(f"learning rates must be positive, got {t.tolist()}")
    return t.clone()


def _check_data(x_fit: Tensor, y_fit: Tensor, fit_mask: Tensor | None, x_val: Tensor,
                y_val: Tensor, val_mask: Tensor | None) -> None:
    S = x_fit.shape[0]
    for name, x, y, m in (("fit", x_fit, y_fit, fit_mask), ("monitor", x_val, y_val, val_mask)):
        if x.dim() != 3 or x.shape[0] != S:
            raise ValueError(f"x_{name} must have shape (S={S}, N, n), got {tuple(x.shape)}")
        if y.shape != x.shape[:2]:
            raise ValueError(f"y_{name} must have shape {tuple(x.shape[:2])}, got {tuple(y.shape)}")
        if m is not None and m.shape != x.shape[:2]:
            raise ValueError(f"{name} mask must have shape {tuple(x.shape[:2])}, "
                             f"got {tuple(m.shape)}")
    if x_val.shape[2] != x_fit.shape[2]:
        raise ValueError(f"x_fit and x_val have different feature counts: {x_fit.shape[2]} "
                         f"vs {x_val.shape[2]}")


def train_batched(method: str, init: Params, x_fit: Tensor, y_fit: Tensor, x_val: Tensor,
                  y_val: Tensor, lr: Tensor | Sequence[float] | float, config: TrainConfig,
                  *, fit_mask: Tensor | None = None, val_mask: Tensor | None = None,
                  seeds: Sequence[int] | None = None, progress=None) -> TrainResult:
    """Train ``S`` members with Adam, early stopping on the monitoring set (``x_val, y_val``).

    Args:
        method: ``"sp"``, ``"wn"``, ``"bn"`` or ``"gmp"``.
        init: initial parameters (:func:`init_params`); not modified.
        x_fit, y_fit: ``(S, N, n)``, ``(S, N)`` training data of every member.
        x_val, y_val: ``(S, V, n)``, ``(S, V)`` monitoring data (early stopping, plateau).
        lr: learning rate, scalar or ``(S,)``.
        config: protocol (:class:`TrainConfig`).
        fit_mask, val_mask: ``(S, N)`` / ``(S, V)`` 0/1 masks when members have different
            numbers of rows (padding rows 0). Mini-batches need equal sizes (no fit_mask).
        seeds: ``(S,)`` seeds of the per-member mini-batch permutations (mini-batch only).
        progress: optional ``tqdm`` bar, advanced by one per epoch.
    """
    method = check_method(method)
    _check_data(x_fit, y_fit, fit_mask, x_val, y_val, val_mask)
    S, N = x_fit.shape[:2]
    _check_x(init, method, x_fit)
    cfg = config
    lr_t = _as_lr(lr, S)
    minibatch = cfg.batch_size is not None and cfg.batch_size < N
    if minibatch and fit_mask is not None:
        raise ValueError("mini-batch training needs members with equal fit sizes (no fit_mask)")
    if minibatch:
        if seeds is None or len(seeds) != S:
            raise ValueError(f"mini-batch training needs one permutation seed per member ({S})")
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    running = method == "bn" and cfg.bn_eval == "running"
    fit_mom = moments(x_fit, fit_mask) if method == "bn" else None

    names = PARAM_NAMES[method]
    params = {k: init[k].detach().clone().requires_grad_(True) for k in names}
    best = {k: v.detach().clone() for k, v in params.items()}
    if running:
        rmean = torch.zeros(S, params["bias"].shape[1], dtype=x_fit.dtype)
        rvar = torch.ones_like(rmean)
        best_rstats = (rmean.clone(), rvar.clone())
    opt = StackedAdam([params[k] for k in names], lr_t)

    # Per-member bookkeeping lives in full-size tensors indexed by ``ids`` (original member
    # numbers); the working batch shrinks when stopped members are dropped.
    ids = torch.arange(S)
    best_val = torch.full((S,), math.inf, dtype=torch.float64)
    best_epoch = torch.zeros(S, dtype=torch.long)
    stopped_epoch = torch.full((S,), cfg.max_epochs, dtype=torch.long)
    wait = torch.zeros(S, dtype=torch.long)
    plateau_best = torch.full((S,), math.inf, dtype=torch.float64)
    plateau_wait = torch.zeros(S, dtype=torch.long)
    xf, yf, mf, xv, yv, mv = x_fit, y_fit, fit_mask, x_val, y_val, val_mask
    mom = fit_mom
    active_seeds = list(range(S))
    alive = torch.ones(S, dtype=torch.bool)            # within the working batch

    for epoch in range(1, cfg.max_epochs + 1):
        # ---- one epoch of updates
        if minibatch:
            B = cfg.batch_size
            perm = torch.stack([torch.randperm(N, generator=gens[i]) for i in active_seeds])
            rows = torch.arange(len(active_seeds)).unsqueeze(1)
            for start in range(0, N, B):
                sel = perm[:, start:start + B]
                xb, yb = xf[rows, sel], yf[rows, sel]
                _train_step(method, params, opt, xb, yb, None, cfg,
                            (rmean, rvar) if running else None)
        else:
            _train_step(method, params, opt, xf, yf, mf, cfg,
                        (rmean, rvar) if running else None, mom)
        # ---- monitor (weights after this epoch)
        with torch.no_grad():
            layers = effective_layers(method, params, moments_x=mom,
                                      bn_stats=(rmean, rvar) if running else None,
                                      bn_eps=cfg.bn_eps)
            val = _loss(_mlp(xv, layers), yv, mv, "mse").to(torch.float64)
        improved = alive & (val < best_val[ids])       # NaN never improves
        if bool(improved.any()):
            sel = ids[improved]
            best_val[sel] = val[improved]
            best_epoch[sel] = epoch
            for k in names:
                best[k][sel] = params[k].detach()[improved]
            if running:
                best_rstats[0][sel] = rmean[improved]
                best_rstats[1][sel] = rvar[improved]
        w = torch.where(improved, 0, wait[ids] + 1)
        wait[ids] = w
        if cfg.plateau_patience is not None:
            pb = plateau_best[ids]
            better = val < pb - cfg.plateau_min_delta
            plateau_best[ids] = torch.where(better, val, pb)
            pw = torch.where(better, 0, plateau_wait[ids] + 1)
            reduce = pw >= cfg.plateau_patience
            opt.lr.copy_(torch.where(reduce, opt.lr * cfg.plateau_factor, opt.lr))
            plateau_wait[ids] = torch.where(reduce, 0, pw)
        if progress is not None:
            progress.update(1)
        stop = alive & (w >= cfg.patience)
        if not bool(stop.any()):
            continue
        stopped_epoch[ids[stop]] = epoch
        alive &= ~stop
        if not bool(alive.any()):
            break
        if alive.double().mean().item() < cfg.compact_below:
            # Drop the stopped members from the working batch (their best weights are saved).
            idx = torch.nonzero(alive).flatten()
            ids, alive = ids[idx], alive[idx]
            params = {k: params[k].detach()[idx].requires_grad_(True) for k in names}
            opt.select(idx, [params[k] for k in names])
            xf, yf, xv, yv = xf[idx], yf[idx], xv[idx], yv[idx]
            mf = mf[idx] if mf is not None else None
            mv = mv[idx] if mv is not None else None
            mom = (mom[0][idx], mom[1][idx]) if mom is not None else None
            if running:
                rmean, rvar = rmean[idx], rvar[idx]
            active_seeds = [active_seeds[i] for i in idx.tolist()]

    return TrainResult(method, best, best_rstats if running else None, fit_mom, best_epoch,
                       stopped_epoch, best_val, cfg)


def _train_step(method: str, params: Params, opt: StackedAdam, x: Tensor, y: Tensor,
                mask: Tensor | None, cfg: TrainConfig, running: tuple[Tensor, Tensor] | None,
                mom: tuple[Tensor, Tensor] | None = None) -> None:
    if method == "bn":
        if mom is None:
            mom = moments(x, mask)
        if running is not None:
            with torch.no_grad():
                w, b = params["weight"], params["bias"]
                mu, var = _bn_stats(w, b, mom)
                n = x.shape[1] if mask is None else mask.sum(dim=1, keepdim=True).to(x.dtype)
                running[0].lerp_(mu, cfg.bn_momentum)
                running[1].lerp_(var * n / (n - 1), cfg.bn_momentum)
    layers = effective_layers(method, params, moments_x=mom, bn_eps=cfg.bn_eps)
    loss = _loss(_mlp(x, layers), y, mask, cfg.loss).sum()
    loss.backward()
    opt.step()


# ---------------------------------------------------------------- one-at-a-time reference

def train_loop(method: str, init: Params, x_fit: Sequence[Tensor], y_fit: Sequence[Tensor],
               x_val: Sequence[Tensor], y_val: Sequence[Tensor], lr: Sequence[float] | float,
               config: TrainConfig, *, seeds: Sequence[int] | None = None) -> TrainResult:
    """Reference trainer: each member alone, as a :class:`~gmp.baselines.OneHiddenLayerMLP`
    with :class:`torch.optim.Adam` (and ``BatchNorm1d``). Same protocol and results as
    :func:`train_batched` (up to rounding); per-member data may have different sizes.
    """
    method = check_method(method)
    S = len(x_fit)
    lrs = _as_lr(lr, S).tolist()
    cfg = config
    out_params: list[Params] = []
    out_stats, best_epochs, stopped, best_vals = [], [], [], []
    dtype = x_fit[0].dtype
    for s in range(S):
        xf, yf, xv, yv = x_fit[s], y_fit[s], x_val[s], y_val[s]
        n = xf.shape[1]
        model = mlp(method, n, _hidden_size(init, method), preset=UCI_PRESET).to(dtype)
        load_member(init, s, model)
        if method == "bn":
            model.hidden[1].momentum = cfg.bn_momentum
            model.hidden[1].eps = cfg.bn_eps
        opt = torch.optim.Adam(model.parameters(), lr=lrs[s])
        sched = None
        if cfg.plateau_patience is not None:
            sched = _KerasPlateau(opt, cfg.plateau_patience, cfg.plateau_factor,
                                  cfg.plateau_min_delta)
        gen = torch.Generator().manual_seed(int(seeds[s])) if seeds is not None else None
        N = xf.shape[0]
        B = cfg.batch_size if cfg.batch_size is not None and cfg.batch_size < N else N
        best_v, best_e, wait, stop_e = math.inf, 0, 0, cfg.max_epochs
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        for epoch in range(1, cfg.max_epochs + 1):
            model.train()
            order = torch.randperm(N, generator=gen) if B < N else torch.arange(N)
            for start in range(0, N, B):
                sel = order[start:start + B]
                err = model(xf[sel]).squeeze(-1) - yf[sel]
                loss = (err * err).mean() if cfg.loss == "mse" else err.abs().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                if method == "bn" and cfg.bn_eval == "population":
                    z = model.hidden[0](xf)
                    model.hidden[1].running_mean.copy_(z.mean(0))
                    model.hidden[1].running_var.copy_(z.var(0, unbiased=False))
                err = model(xv).squeeze(-1) - yv
                val = float((err * err).mean())
            if val < best_v:
                best_v, best_e, wait = val, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                wait += 1
            if sched is not None:
                sched.step(val)
            if wait >= cfg.patience:
                stop_e = epoch
                break
        model.load_state_dict(best_state)
        out_params.append(_module_tensors(model))
        if method == "bn" and cfg.bn_eval == "running":
            out_stats.append((model.hidden[1].running_mean.clone(),
                              model.hidden[1].running_var.clone()))
        best_epochs.append(best_e)
        stopped.append(stop_e)
        best_vals.append(best_v)
    params = {k: torch.stack([p[k].detach() for p in out_params]) for k in out_params[0]}
    stats = None
    if out_stats:
        stats = (torch.stack([t[0] for t in out_stats]), torch.stack([t[1] for t in out_stats]))
    mom = None
    if method == "bn":
        # population statistics of every member's own fit set (sizes may differ)
        mom = _stack_moments([moments(x.unsqueeze(0)) for x in x_fit])
    return TrainResult(method, params, stats, mom, torch.tensor(best_epochs),
                       torch.tensor(stopped), torch.tensor(best_vals, dtype=torch.float64), cfg)


def _stack_moments(ms: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    return torch.cat([m[0] for m in ms]), torch.cat([m[1] for m in ms])


def _hidden_size(p: Params, method: str) -> int:
    return p["lam" if method == "gmp" else "bias"].shape[1]


class _KerasPlateau:
    """Keras' ``ReduceLROnPlateau`` (absolute ``min_delta``, no cooldown) for one optimizer."""

    def __init__(self, opt: torch.optim.Optimizer, patience: int, factor: float, min_delta: float):
        self.opt, self.patience, self.factor, self.min_delta = opt, patience, factor, min_delta
        self.best, self.wait = math.inf, 0

    def step(self, value: float) -> None:
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            for g in self.opt.param_groups:
                g["lr"] *= self.factor
            self.wait = 0


assert set(PARAM_NAMES) == set(METHODS)
