"""The perturbation experiment of Fig. 1(b–e): how far does a small parameter step move a CAB?

Chen & Ge 2024, Sec. 2.3 (Props. 2.3-2.5, Fig. 1(b-e)) and Sec. 3.3 (Thm 3.7). Protocol:

1. draw ``m`` units with weights ``w ∈ Rⁿ`` and biases ``b`` i.i.d. ``N(0, std²)``, by default
   ``std = 1e-3`` (variance 1e-6) in ``n = 2`` dimensions: *small* weights, as weight decay
   produces;
2. write the same units under each parameterization (:data:`gmp.params.PARAMS`), so that
   every parameterization starts from the same boundaries:

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

from .cab import angular_change, directions, effective_weight_bias, spatial_locations
from .nn import GmPLinear
from .params import PARAMS, check_param, get_spec, recognize

__all__ = [
    "PerturbationResult",
    "sample_units",
    "centred_batch",
    "build_layer",
    "perturb_",
    "run_perturbation",
    "perturbation_grid",
    "summarize",
    "STEP_PARAMS",
    "gradient_identities",
    "StepTurns",
    "optimizer_step_turns",
    "adam_step_ceiling",
    "adam_worst_gradients",
    "adam_steps",
]

_F64 = torch.float64


@dataclass(frozen=True)
class PerturbationResult:
    """CABs of ``m`` units with input in ``Rⁿ`` before and after one perturbation.

    Attributes:
        param: the parameterization (``"sp"``, ``"wn"``, ``"bn"`` or ``"gmp"``).
        delta: the perturbation added to every parameter.
        weight_before, weight_after: ``(m, n)`` effective weights ``w`` of ``wᵀx + b``.
        bias_before, bias_after: ``(m,)`` effective biases ``b``.
        location_before, location_after: ``(m, n)`` spatial locations ``φ = -b·w/‖w‖²``.
        direction_before, direction_after: ``(m, n)`` unit normals ``w/‖w‖`` of the CABs.
        angle_change: ``(m,)`` angle between the directions, radians in ``[0, π]``.
        location_shift: ``(m,)`` Euclidean distance ``‖φ_after - φ_before‖``.
    """

    param: str
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


def build_layer(param: str, w: np.ndarray | Tensor, b: np.ndarray | Tensor) -> nn.Module:
    """A float64 layer of ``param`` whose units have effective weights ``w`` and biases ``b``.

    Args:
        param: one of :data:`gmp.params.PARAMS`.
        w: ``(m, n)`` weights; b: ``(m,)`` biases.

    Returns:
        the param's layer (:meth:`gmp.params.Parameterization.from_affine`; a BN block in
        training mode: its effective parameters depend on the input batch, see
        :func:`run_perturbation`).
    """
    spec = get_spec(check_param(param))
    w_t = torch.as_tensor(np.asarray(w, dtype=np.float64))
    b_t = torch.as_tensor(np.asarray(b, dtype=np.float64))
    if w_t.dim() != 2 or b_t.shape != (w_t.shape[0],):
        raise ValueError(f"expected w of shape (m, n) and b of shape (m,), got "
                         f"{tuple(w_t.shape)} and {tuple(b_t.shape)}")
    with torch.random.fork_rng(devices=[]):  # a default init inside must not consume
        torch.manual_seed(0)                   # the caller's random stream
        return spec.from_affine(w_t, b_t)


@torch.no_grad()
def perturb_(layer: nn.Module, delta: float) -> nn.Module:
    """Add ``delta`` to every entry of every parameter that moves the CAB, in place
    (:meth:`gmp.params.Parameterization.boundary_parameters`; GmP: ``θ`` and ``λ`` only)."""
    try:
        params: Iterable[nn.Parameter] = recognize(layer).boundary_parameters(layer)
    except TypeError:       # a layer no spec builds: every parameter
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


def run_perturbation(param: str, delta: float, m: int = 1, n: int = 2, std: float = 1e-3,
                     seed: int = 0, batch: Tensor | None = None) -> PerturbationResult:
    """Perturb ``m`` units of ``param`` by ``δ`` and measure how their CABs move.

    The units come from :func:`sample_units` with ``seed``, so every parameterization starts
    from the same boundaries. ``batch`` is the ``(N, n)`` input used for BN's statistics (default:
    :func:`centred_batch` with ``seed``); other parameterizations ignore it.
    """
    param = check_param(param)
    w, b = sample_units(m, n, std, seed)
    x = None
    if get_spec(param).needs_batch_stats:
        x = centred_batch(n, seed=seed) if batch is None else torch.as_tensor(batch, dtype=_F64)
        if x.dim() != 2 or x.shape[1] != n:
            raise ValueError(f"batch must have shape (N, {n}), got {tuple(x.shape)}")
    layer = build_layer(param, w, b)
    w0, b0, phi0, d0 = _state(layer, x)
    perturb_(layer, float(delta))
    w1, b1, phi1, d1 = _state(layer, x)
    return PerturbationResult(
        param=param, delta=float(delta),
        weight_before=w0, bias_before=b0, weight_after=w1, bias_after=b1,
        location_before=phi0, location_after=phi1,
        direction_before=d0, direction_after=d1,
        angle_change=angular_change(d0, d1).numpy(),
        location_shift=np.linalg.norm(phi1 - phi0, axis=-1),
    )


def perturbation_grid(params: Sequence[str], deltas: Sequence[float], m: int = 1, n: int = 2,
                      std: float = 1e-3, seed: int = 0) -> list[list[PerturbationResult]]:
    """``grid[i][j] = run_perturbation(params[i], deltas[j], ...)``, same units throughout."""
    return [[run_perturbation(meth, d, m, n, std, seed) for d in deltas] for meth in params]


def summarize(results: Iterable[PerturbationResult]) -> list[dict[str, float | str]]:
    """One row per result: median and max angle change (degrees) and location shift."""
    rows: list[dict[str, float | str]] = []
    for r in results:
        ang = r.angle_change_deg
        rows.append({
            "param": r.param, "delta": r.delta, "units": int(ang.shape[0]),
            "median_angle_deg": float(np.median(ang)), "max_angle_deg": float(np.max(ang)),
            "median_shift": float(np.median(r.location_shift)),
            "max_shift": float(np.max(r.location_shift)),
        })
    return rows


# --------------------------------------------------------------------------------------
# From perturbations to optimizer steps
# --------------------------------------------------------------------------------------
#: The parameterizations of :func:`optimizer_step_turns`, those a plain layer converts to
#: (``"sp"``, ``"wn"``, ``"gmp"``).
STEP_PARAMS: tuple[str, ...] = tuple(p for p in PARAMS if get_spec(p).convertible)


def gradient_identities(n: int = 6, m: int = 4, batch: int = 32, seed: int = 0
                        ) -> dict[str, float]:
    """Check the gradient formulas of SP, WN, BN and GmP with autograd, in float64.

    For one random ``(m, n)`` layer, a random input batch ``(batch, n)`` and the loss
    ``L = Σ c ⊙ ReLU(pre-activation)`` (random ``c``), with ``g_w = ∇_w L`` the gradient with
    respect to the *effective* weight ``w`` of a unit:

    - WN, ``w = g·v/‖v‖``: ``vᵀ∇_v L = 0``, ``∇_v L = (g/‖v‖)(I - vvᵀ/‖v‖²)g_w`` and
      ``∇_g L = vᵀg_w/‖v‖``;
    - BN (batch standardization of ``wᵀx`` with ``γ = 1.5``, ``β = 0.2``, BN's ``eps = 0``):
      ``wᵀ∇_w L = 0`` and ``∇_w L = (γ/σ)(I - Σwwᵀ/σ²)g_w`` with ``Σ`` the biased covariance
      of the batch, ``σ = ‖w‖_Σ = sqrt(wᵀΣw)`` and ``g_w`` the gradient with respect to the
      effective weight ``γw/σ`` (so ``‖∇_w L‖ ≤ (γ/σ)·‖I - Σwwᵀ/σ²‖·‖g_w‖``: it scales as
      ``1/‖w‖_Σ``);
    - GmP, ``w = r·u(θ)``, ``b = r·λ``: ``∇_θ L = r·J(θ)ᵀg_w``, ``∇_r L = u(θ)ᵀg_w + λ g_b``,
      ``∇_λ L = r·g_b``.

    Returns:
        dict of maximal absolute errors (each ~1e-15 when the formula holds), keyed
        ``wn_orthogonal``, ``wn_formula``, ``wn_g``, ``bn_orthogonal``, ``bn_formula``,
        ``gmp_theta``, ``gmp_r``, ``gmp_lambda``.
    """
    from . import geometry
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.randn(batch, n, generator=gen, dtype=_F64)
    c = torch.randn(batch, m, generator=gen, dtype=_F64)

    def loss_of(pre: Tensor) -> Tensor:
        return (c * torch.relu(pre)).sum()

    out: dict[str, float] = {}
    # WN
    v = torch.randn(m, n, generator=gen, dtype=_F64, requires_grad=True)
    g = torch.rand(m, generator=gen, dtype=_F64).add(0.5).requires_grad_(True)
    b = torch.randn(m, generator=gen, dtype=_F64)
    nv = v.norm(dim=1, keepdim=True)
    w = g.unsqueeze(1) * v / nv
    w.retain_grad()
    loss_of(x @ w.T + b).backward()
    gw = w.grad
    vd = v.detach()
    nvd = nv.detach()
    closed = g.detach().unsqueeze(1) / nvd * (gw - vd * (vd * gw).sum(1, keepdim=True) / nvd**2)
    out["wn_orthogonal"] = float((vd * v.grad).sum(1).abs().max())
    out["wn_formula"] = float((v.grad - closed).abs().max())
    out["wn_g"] = float((g.grad - (vd * gw).sum(1) / nvd[:, 0]).abs().max())
    # BN
    wb = torch.randn(m, n, generator=gen, dtype=_F64, requires_grad=True)
    z = x @ wb.T
    zhat = (z - z.mean(0)) / z.var(0, unbiased=False).sqrt()  # BN's training-mode map, eps = 0
    loss_of(zhat * 1.5 + 0.2).backward()
    out["bn_orthogonal"] = float((wb.detach() * wb.grad).sum(1).abs().max())
    # the same map through its effective weight γw/σ: pre = (γw/σ)ᵀ(x - x̄) + β
    xc = x - x.mean(0)
    cov = xc.T @ xc / batch                                    # biased covariance, (n, n)
    wd = wb.detach()
    sigma = ((wd @ cov) * wd).sum(1, keepdim=True).sqrt()      # ‖w‖_Σ, (m, 1)
    w_bn = (1.5 * wd / sigma).requires_grad_(True)
    loss_of(xc @ w_bn.T + 0.2).backward()
    gw_bn = w_bn.grad
    proj = gw_bn - (wd @ cov) * ((wd * gw_bn).sum(1, keepdim=True) / sigma**2)
    out["bn_formula"] = float((wb.grad - 1.5 / sigma * proj).abs().max())
    # GmP (weight form: pre-activation r·uᵀx + r·λ)
    layer = GmPLinear(n, m).double()
    with torch.no_grad():
        layer.r.copy_(torch.rand(m, generator=gen, dtype=_F64) * 3 - 1)  # some r < 0 too
        layer.lam.copy_(torch.randn(m, generator=gen, dtype=_F64))
    loss_of(layer(x)).backward()
    theta, r, lam = (p.detach() for p in (layer.theta, layer.r, layer.lam))
    u = geometry.unit_vector(theta)
    w_eff = (r.unsqueeze(1) * u).requires_grad_(True)
    b_eff = (r * lam).requires_grad_(True)
    loss_of(x @ w_eff.T + b_eff).backward()
    gw, gb = w_eff.grad, b_eff.grad
    jac = torch.stack([torch.func.jacrev(geometry.unit_vector)(t) for t in theta])  # (m, n, n-1)
    theta_closed = r.unsqueeze(1) * (jac.transpose(1, 2) @ gw.unsqueeze(2)).squeeze(2)
    out["gmp_theta"] = float((layer.theta.grad - theta_closed).abs().max())
    out["gmp_r"] = float((layer.r.grad - ((u * gw).sum(1) + lam * gb)).abs().max())
    out["gmp_lambda"] = float((layer.lam.grad - r * gb).abs().max())
    return out


@dataclass(frozen=True)
class StepTurns:
    """Per-step movement of the second hidden layer's CABs during training.

    ``T`` steps, ``m`` units of the measured layer, fan-in ``n``.

    Attributes:
        param: ``"sp"``, ``"wn"`` or ``"gmp"``.
        optimizer: ``"adam"`` or ``"sgd"``.
        lr: the learning rate.
        n: fan-in of the measured layer.
        form: GmP only: ``"weight"`` (``ReLU((r·u)ᵀx + r·λ)``) or ``"unit"``
            (``r·ReLU(uᵀx + λ)``, Eq. 13); ``""`` for SP and WN.
        turn: ``(T, m)`` angle (radians) between each unit's CAB normal, oriented towards
            the active side (:func:`gmp.cab.directions`), before and after the step: the
            effective weight's ``w/‖w‖`` (SP; WN: ``sign(g)·v/‖v‖``), ``sign(r)·u(θ)`` (GmP
            weight form) or ``u(θ)`` (GmP unit form).
        u_turn: ``(T, m)`` angle between ``u(θ)`` before and after (GmP), between ``v/‖v‖``
            (WN), ``w/‖w‖`` (SP): the turn of the direction parameter, blind to signs.
        weight_norm: ``(T, m)`` ``‖w‖`` of the effective weight before the step.
        theta_step: ``(T, m)`` ``‖Δθ‖₂`` (GmP only, else NaN).
        theta_step_max: ``(T, m)`` ``‖Δθ‖_∞`` (GmP only, else NaN).
        param_norm: ``(T + 1, m)`` norm of the trained weight parameter before each step and
            after the last: ``‖w‖`` (SP), ``‖v‖`` (WN), ``|r|`` (GmP).
        scale: ``(T + 1, m)`` the signed scale ``g`` (WN) or ``r`` (GmP) at the same times;
            NaN for SP.
        loss: ``(T,)`` training loss before each step.
    """

    param: str
    optimizer: str
    lr: float
    n: int
    form: str
    turn: np.ndarray
    u_turn: np.ndarray
    weight_norm: np.ndarray
    theta_step: np.ndarray
    theta_step_max: np.ndarray
    param_norm: np.ndarray
    scale: np.ndarray
    loss: np.ndarray

    @property
    def sign_changes(self) -> np.ndarray:
        """``(T, m)`` bool: the step changed the sign of ``g`` (WN) or ``r`` (GmP)."""
        s = np.sign(self.scale)
        return s[1:] != s[:-1] if not np.isnan(s).all() else np.zeros_like(self.turn, bool)


def _step_net(param: str, width: int, init_scale: float, seed: int, form: str = "weight"
              ) -> nn.Sequential:
    """``1 → width → width → 1`` ReLU net with IMN before the second hidden layer; the same
    function for every parameterization at initialization (converted from SP,
    :meth:`gmp.params.Parameterization.from_linear`; in ``form``, the unit form carrying its
    ReLU inside the layer)."""
    from .nn import InputMeanNorm
    spec = get_spec(param)
    torch.manual_seed(int(seed))
    f64 = {"dtype": _F64}
    l1, l2 = nn.Linear(1, width, **f64), nn.Linear(width, width, **f64)
    out = nn.Linear(width, 1, **f64)
    with torch.no_grad():
        l2.weight.mul_(init_scale)
        l2.bias.mul_(init_scale)
    l1, l2 = spec.from_linear(l1), spec.from_linear(l2)
    if form == "unit" and spec.has_unit_form:
        l1, l2 = spec.unit_form(l1), spec.unit_form(l2)
        return nn.Sequential(l1, InputMeanNorm(width), l2, out).double()
    return nn.Sequential(l1, nn.ReLU(), InputMeanNorm(width), l2, nn.ReLU(), out).double()


def optimizer_step_turns(param: str, optimizer: str = "adam", lr: float = 1e-2,
                         steps: int = 300, width: int = 32, init_scale: float = 1.0,
                         seed: int = 0, form: str = "weight") -> StepTurns:
    """Train a small ReLU net on the Levy data (Sec. 4.1) and record how far every step
    turns the CABs of its second hidden layer (fan-in ``n = width``).

    Full-batch training on the 50 standardized Levy points, MSE loss, ``torch.optim.Adam``
    or ``torch.optim.SGD`` with learning rate ``lr``. The second hidden layer's weight (and
    bias) is multiplied by ``init_scale`` at initialization (``init_scale < 1``: small weights,
    as weight decay produces). GmP layers are built in ``form``: ``"weight"`` (default, what
    ``GmPLinear.from_linear`` gives: ``ReLU((r·u)ᵀx + r·λ)``, where a sign change of ``r``
    swaps the active side) or ``"unit"`` (the paper's ``r·ReLU(uᵀx + λ)``, Eq. 13); the two
    compute the same function at initialization (``r = ‖w‖ > 0``). Float64 on the CPU,
    deterministic given ``seed``; the global torch RNG is reseeded with ``seed``.
    """
    from .data.levy import levy_data
    param = check_param(param)
    if param not in STEP_PARAMS:
        raise ValueError(f"param must be one of {STEP_PARAMS}, got {param!r}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if form not in ("weight", "unit"):
        raise ValueError(f"form must be 'weight' or 'unit', got {form!r}")
    if steps < 1 or width < 2 or not lr > 0 or not init_scale > 0:
        raise ValueError("need steps >= 1, width >= 2, lr > 0 and init_scale > 0, got "
                         f"steps={steps}, width={width}, lr={lr}, init_scale={init_scale}")
    data = levy_data(seed=seed)
    x = torch.as_tensor(data.x_train, dtype=_F64)
    y = torch.as_tensor(data.y_train, dtype=_F64)
    x, y = (x - x.mean()) / x.std(), (y - y.mean()) / y.std()
    spec = get_spec(param)
    unit = form == "unit" and spec.has_unit_form
    net = _step_net(param, width, init_scale, seed, form)
    layer = net[2] if unit else net[3]
    opt_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = opt_cls(net.parameters(), lr=lr)

    def param_norm() -> np.ndarray:
        weight, signed = spec.trained_weight(layer)
        if weight is None:
            return signed.abs().numpy().copy()
        return weight.norm(dim=1).numpy()

    def scale() -> np.ndarray:
        _, signed = spec.trained_weight(layer)
        return np.full(width, np.nan) if signed is None else signed.numpy().copy()

    def sign_blind() -> Tensor:
        weight, signed = spec.trained_weight(layer)
        if weight is not None and signed is not None:   # WN: v/‖v‖
            return weight / weight.norm(dim=1, keepdim=True)
        return directions(layer, towards_active=False)

    turn, u_turn, norms, dth, dth_max, losses = [], [], [], [], [], []
    pnorm, scales = [param_norm()], [scale()]
    for _ in range(steps):
        w0, _ = effective_weight_bias(layer)
        d0, s0 = directions(layer), sign_blind()
        th0 = spec.angles(layer)
        th0 = None if th0 is None else th0.detach().clone()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        turn.append(angular_change(d0, directions(layer)).numpy())
        u_turn.append(angular_change(s0, sign_blind()).numpy())
        norms.append(w0.norm(dim=1).numpy())
        if th0 is not None:
            step = spec.angles(layer).detach() - th0
            dth.append(step.norm(dim=1).numpy())
            dth_max.append(step.abs().amax(dim=1).numpy())
        else:
            dth.append(np.full(width, np.nan))
            dth_max.append(np.full(width, np.nan))
        losses.append(float(loss.detach()))
        pnorm.append(param_norm())
        scales.append(scale())
    return StepTurns(param=param, optimizer=optimizer, lr=float(lr), n=width,
                     form=form if spec.has_unit_form else "",
                     turn=np.stack(turn), u_turn=np.stack(u_turn), weight_norm=np.stack(norms),
                     theta_step=np.stack(dth), theta_step_max=np.stack(dth_max),
                     param_norm=np.stack(pnorm), scale=np.stack(scales),
                     loss=np.asarray(losses))


# --------------------------------------------------------------------------------------
# How far can Adam move one coordinate?
# --------------------------------------------------------------------------------------
def adam_step_ceiling(beta1: float = 0.9, beta2: float = 0.999, t: int | None = None
                      ) -> float:
    """Largest ``|Δ|/lr`` of one coordinate in Adam's ``t``-th step, over all gradients.

    Adam (Kingma & Ba 2015, Alg. 1, ``eps`` neglected) steps by ``lr·m̂_t/sqrt(v̂_t)``. By
    Cauchy–Schwarz, ``|Σ_k β₁^{t-k} g_k| ≤ sqrt(Σ_k (β₁²/β₂)^{t-k})·sqrt(Σ_k β₂^{t-k} g_k²)``,
    so with ``ρ = β₁²/β₂ < 1``::

        |m̂_t/sqrt(v̂_t)| ≤ (1-β₁)/sqrt(1-β₂) · sqrt((1-ρ^t)/(1-ρ)) · sqrt(1-β₂^t)/(1-β₁^t),

    with equality for :func:`adam_worst_gradients`. ``t = None``: the limit ``t → ∞``,
    ``(1-β₁)/sqrt(1-β₂)·(1-β₁²/β₂)^(-1/2)`` (≈ 7.27 for the defaults). Kingma & Ba's
    ``(1-β₁)/sqrt(1-β₂)`` (≈ 3.16) is the step after an isolated gradient spike, not the
    ceiling.
    """
    if not (0 <= beta1 < 1 and 0 < beta2 < 1 and beta1**2 < beta2):
        raise ValueError(f"need 0 <= β1 < 1, 0 < β2 < 1 and β1² < β2, got {beta1}, {beta2}")
    rho = beta1**2 / beta2
    base = (1 - beta1) / np.sqrt(1 - beta2)
    if t is None:
        return float(base / np.sqrt(1 - rho))
    if t < 1:
        raise ValueError(f"t must be >= 1, got {t}")
    return float(base * np.sqrt((1 - rho**t) / (1 - rho))
                 * np.sqrt(1 - beta2**t) / (1 - beta1**t))


def adam_worst_gradients(t: int, beta1: float = 0.9, beta2: float = 0.999) -> np.ndarray:
    """``(t,)`` gradients ``g_k = (β₂/β₁)^k`` (rescaled to end at 1) for which Adam's ``t``-th
    step reaches :func:`adam_step_ceiling` ``(β₁, β₂, t)``: the equality case of
    Cauchy–Schwarz, ``β₁^{t-k} g_k ∝ β₂^{t-k} g_k²``."""
    k = np.arange(1, t + 1)
    return (beta1 / beta2) ** (t - k).astype(np.float64)


def adam_steps(grads: Sequence[float] | np.ndarray, lr: float = 1e-2,
               betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> np.ndarray:
    """``(T,)`` steps ``Δ_t`` that ``torch.optim.Adam`` takes on one float64 coordinate fed
    the gradients ``grads`` ``(T,)`` in turn (parameter change per step)."""
    p = torch.zeros(1, dtype=_F64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=lr, betas=betas, eps=eps)
    out = []
    for gk in np.asarray(grads, dtype=np.float64):
        before = p.detach().clone()
        p.grad = torch.tensor([gk], dtype=_F64)
        opt.step()
        out.append(float((p.detach() - before)[0]))
    return np.asarray(out)
