"""Symbolic (SymPy) derivations of the paper's propositions and theorem.

Each public function returns a :class:`Derivation`: a claim ``lhs = rhs`` with labelled
intermediate steps and a flag ``holds`` that is True only when SymPy verified the claim
(and every side condition listed in the function's docstring). Nothing is taken from
printed output: checks compare expressions.

Chen & Ge 2024 (NOTES.md Sec. 2-3):

- Prop. 2.3 (SP), 2.4 (WN), 2.5 (BN): the CAB direction change
  ``cos Δ = wᵀ(w+ε) / (‖w‖‖w+ε‖)`` and the flip ``ε = -(1+δ)w ⇒ Δ = π``
  (:func:`cab_direction_change`, :func:`sp_flip`, :func:`wn_direction_change`,
  :func:`bn_direction_change`);
- hyperspherical coordinates ``u(θ)``, ``‖u‖ = 1`` (:func:`hyperspherical_unit_vector`,
  :func:`unit_norm`);
- the metric ``G = JᵀJ = diag(1, sin²θ₁, sin²θ₁sin²θ₂, …)`` for given ``n`` and by induction
  on ``n`` (:func:`metric_tensor`, :func:`metric_induction_step`);
- Thm 3.7, ``εᵀGε ≤ ‖ε‖²`` (:func:`metric_bound`, :func:`metric_bound_numeric`).

How trigonometric identities are checked. Every identity about ``u(θ)`` here is a
polynomial identity in ``s_k = sin θ_k`` and ``c_k = cos θ_k`` that must hold modulo the
relations ``s_k² + c_k² = 1``. These relations form a Gröbner basis (their leading terms
``s_k²`` are pairwise coprime), so the remainder of the expanded difference on division by
them is a canonical form: the identity holds iff the remainder is exactly 0
(:func:`trig_identity_holds`). This is exact, needs no heuristic ``simplify``, and takes well
under a second for ``n = 7``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
import torch

from . import geometry

__all__ = [
    "Derivation",
    "angle_symbols",
    "trig_identity_holds",
    "verify",
    "cab_direction_change",
    "sp_flip",
    "wn_direction_change",
    "bn_direction_change",
    "hyperspherical_unit_vector",
    "unit_norm",
    "metric_tensor",
    "metric_induction_step",
    "metric_bound",
    "metric_bound_numeric",
    "metric_tensor_numeric",
    "derivations",
]

Step = tuple[str, sp.Basic]


@dataclass(frozen=True)
class Derivation:
    """A verified (or refuted) claim ``lhs = rhs``.

    Attributes:
        name: the result, e.g. ``"Proposition 2.3"``.
        statement: one plain-text sentence of what is shown (hypotheses included).
        lhs, rhs: SymPy expressions or immutable matrices.
        holds: True iff SymPy verified ``lhs = rhs`` and the side conditions.
        steps: labelled intermediate expressions, for display.
    """

    name: str
    statement: str
    lhs: sp.Basic
    rhs: sp.Basic
    holds: bool
    steps: tuple[Step, ...] = ()

    @classmethod
    def check(cls, name: str, statement: str, lhs: sp.Basic, rhs: sp.Basic,
              angles: tuple[sp.Symbol, ...] = (), steps: tuple[Step, ...] = ()) -> Derivation:
        """Build a derivation whose ``holds`` is :func:`verify` ``(lhs, rhs, angles)``."""
        return cls(name, statement, lhs, rhs, verify(lhs, rhs, angles), tuple(steps))

    def latex(self) -> str:
        """``lhs = rhs`` in LaTeX (``\\overset{?}{=}`` when not verified)."""
        rel = "=" if self.holds else r"\overset{?}{=}"
        return f"{sp.latex(self.lhs)} {rel} {sp.latex(self.rhs)}"

    def _repr_latex_(self) -> str:
        return f"$$ {self.latex()} $$"

    def __str__(self) -> str:
        mark = "verified" if self.holds else "NOT verified"
        return f"{self.name} [{mark}]: {self.statement}"


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def _check_n(n: int, lo: int, hi: int | None = None, what: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {type(n).__name__}")
    n = int(n)
    if n < lo or (hi is not None and n > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{what} must be {rng}, got {n}")
    return n


def angle_symbols(n: int) -> tuple[sp.Symbol, ...]:
    """The real symbols ``θ_1, …, θ_{n-1}`` of ``u(θ) ∈ S^{n-1}``."""
    n = _check_n(n, 1)
    return tuple(sp.Symbol(f"theta_{i}", real=True) for i in range(1, n))


def _vector(name: str, n: int, **assumptions: Any) -> sp.ImmutableMatrix:
    """Column ``(name_1, …, name_n)`` of symbols (real unless told otherwise)."""
    assumptions = assumptions or {"real": True}
    return sp.ImmutableMatrix([sp.Symbol(f"{name}_{i}", **assumptions) for i in range(1, n + 1)])


def _dot(a: sp.MatrixBase, b: sp.MatrixBase) -> sp.Expr:
    return (a.T * b)[0, 0]


def _norm(a: sp.MatrixBase) -> sp.Expr:
    return sp.sqrt(_dot(a, a))


def _cos_angle(a: sp.MatrixBase, b: sp.MatrixBase) -> sp.Expr:
    """``aᵀb / (‖a‖‖b‖)``: cosine of the angle between two column vectors."""
    return _dot(a, b) / (_norm(a) * _norm(b))


def _is_zero(expr: sp.Expr) -> bool:
    """True iff SymPy reduces ``expr`` to exactly 0 (never True by default).

    ``simplify`` first; if that leaves e.g. ``sqrt(v₁⁴ + 2v₁²v₂² + v₂⁴)`` unrecognised,
    ``factor(deep=True)`` exposes ``sqrt((v₁² + v₂²)²)``, which SymPy then takes as
    ``v₁² + v₂²`` because it knows the base is nonnegative. Both are equivalence-preserving
    rewrites, so a 0 is a proof (up to the implicit ``denominator ≠ 0``).
    """
    e = sp.simplify(expr)
    if e == 0:
        return True
    return sp.simplify(sp.factor(e, deep=True)) == 0


def _eq(lhs: sp.Basic, rhs: sp.Basic) -> sp.Eq:
    """An unevaluated equation for display in ``steps``."""
    return sp.Eq(lhs, rhs, evaluate=False)


def _prod_sin2(theta: tuple[sp.Symbol, ...], k: int) -> sp.Expr:
    """``∏_{j<k} sin² θ_j`` (1-based ``j``; ``k = 1`` gives 1)."""
    return sp.Mul(*[sp.sin(t) ** 2 for t in theta[: k - 1]])


def trig_identity_holds(expr: sp.Expr, angles: tuple[sp.Symbol, ...]) -> bool:
    """Decide ``expr ≡ 0`` for a polynomial in ``sin θ_k, cos θ_k`` (other symbols allowed).

    ``sin θ_k → s_k``, ``cos θ_k → c_k``, expand, and reduce modulo the Gröbner basis
    ``{s_k² + c_k² - 1}``; the remainder is canonical, so the identity holds iff it is 0.
    Falls back to ``simplify(expr) == 0`` if ``expr`` is not of that form (an angle left
    outside ``sin``/``cos``, or a non-polynomial dependence on ``s_k, c_k``).
    """
    angles = tuple(angles)
    if not angles:
        return _is_zero(expr)
    s = [sp.Dummy(f"s{i}") for i in range(len(angles))]
    c = [sp.Dummy(f"c{i}") for i in range(len(angles))]
    rep: dict[sp.Basic, sp.Basic] = {}
    for t, si, ci in zip(angles, s, c, strict=True):
        rep[sp.sin(t)] = si
        rep[sp.cos(t)] = ci
    e = sp.expand(sp.sympify(expr).xreplace(rep))
    if e.free_symbols & set(angles):
        return _is_zero(expr)
    gens = (*s, *c)
    try:
        poly = sp.Poly(e, *gens)
    except sp.PolynomialError:
        return _is_zero(expr)
    if e == 0:
        return True
    basis = [si**2 + ci**2 - 1 for si, ci in zip(s, c, strict=True)]
    _, rem = sp.reduced(poly.as_expr(), basis, *gens, order="lex")
    return sp.expand(rem) == 0


def verify(lhs: sp.Basic, rhs: sp.Basic, angles: tuple[sp.Symbol, ...] = ()) -> bool:
    """Decide ``lhs = rhs`` (expressions or explicit matrices of equal shape).

    With ``angles``, entries are compared by :func:`trig_identity_holds` (exact for
    polynomials in ``sin``/``cos`` of those angles); otherwise ``simplify`` (and
    ``factor``) must reduce the difference to 0. False means "not shown", not "false".
    """
    if isinstance(lhs, sp.MatrixBase) or isinstance(rhs, sp.MatrixBase):
        if not (isinstance(lhs, sp.MatrixBase) and isinstance(rhs, sp.MatrixBase)):
            return False
        if lhs.shape != rhs.shape:
            return False
        return all(verify(lhs[i, j], rhs[i, j], angles)
                   for i in range(lhs.rows) for j in range(lhs.cols))
    diff = sp.sympify(lhs) - sp.sympify(rhs)
    return trig_identity_holds(diff, angles) if angles else _is_zero(diff)


# --------------------------------------------------------------------------------------
# Propositions 2.3-2.5: the direction change of a CAB
# --------------------------------------------------------------------------------------
@functools.cache
def cab_direction_change(n: int) -> Derivation:
    """Prop. 2.3, Eq. (7): cosine of the CAB's direction change under SP, in ``R^n``.

    ``lhs``: the cosine of the angle between the CAB normals ``w/‖w‖`` and
    ``(w+ε)/‖w+ε‖``, component by component; ``rhs``: ``wᵀ(w+ε)/(‖w‖‖w+ε‖)``.
    Side condition (also verified): scaling ``w`` and ``ε`` by the same ``c > 0`` leaves
    the cosine unchanged, so the angle depends on ``ε`` only through ``ε/‖w‖`` and a fixed
    perturbation turns a short weight vector by a large angle.
    """
    n = _check_n(n, 1)
    w, e = _vector("w", n), _vector("epsilon", n)
    c = sp.Symbol("c", positive=True)
    nw, nwe = w / _norm(w), (w + e) / _norm(w + e)
    lhs = _dot(nw, nwe)
    rhs = _dot(w, w + e) / (_norm(w) * _norm(w + e))
    scaled = _cos_angle(c * w, c * (w + e))
    ok = _is_zero(lhs - rhs) and _is_zero(scaled - rhs)
    return Derivation(
        name="Proposition 2.3",
        statement=(f"In R^{n}, the CAB normal turns by Δ with cos Δ = wᵀ(w+ε)/(‖w‖‖w+ε‖) when "
                   "w is perturbed by ε; this is unchanged when w and ε are scaled by the "
                   "same c > 0, so only ε/‖w‖ matters."),
        lhs=lhs, rhs=rhs, holds=bool(ok),
        steps=(("unit normal before", nw), ("unit normal after", nwe),
               ("scale invariance (c > 0)", _eq(scaled, rhs))),
    )


@functools.cache
def sp_flip(n: int) -> Derivation:
    """Prop. 2.3, the flip: ``ε = -(1+δ)w`` with ``δ > 0`` gives ``cos Δ = -1``, ``Δ = π``.

    Verified for symbolic ``w ∈ R^n`` (``w ≠ 0``) and a positive symbol ``δ``: however small
    ``‖ε‖ = (1+δ)‖w‖`` is (it is small whenever ``‖w‖`` is), the CAB turns by 180°.
    """
    n = _check_n(n, 1)
    w = _vector("w", n)
    delta = sp.Symbol("delta", positive=True)
    e = -(1 + delta) * w
    lhs = _cos_angle(w, w + e)
    rhs = sp.Integer(-1)
    sum_ = (w + e).applyfunc(sp.expand)
    ok = _is_zero(lhs - rhs) and (sum_ + delta * w).applyfunc(sp.expand) == sp.zeros(n, 1)
    return Derivation(
        name="Proposition 2.3 (flip)",
        statement=(f"In R^{n}, for any w ≠ 0 and δ > 0 the perturbation ε = -(1+δ)w gives "
                   "w + ε = -δw, so cos Δ = -1 and the CAB turns by Δ = π."),
        lhs=lhs, rhs=rhs, holds=bool(ok),
        steps=(("perturbation", _eq(sp.Symbol("epsilon"), -(1 + delta) * sp.Symbol("w"))),
               ("w + ε", _eq(sp.Symbol("w") + sp.Symbol("epsilon"), -delta * sp.Symbol("w"))),
               ("angle", _eq(sp.Symbol("Delta"), sp.acos(rhs)))),
    )


@functools.cache
def wn_direction_change(n: int) -> Derivation:
    """Prop. 2.4, Eq. (8): under WN the direction change has the SP form in ``v``.

    Effective weight ``g·v/‖v‖`` with ``g > 0``. ``lhs``: the cosine between the effective
    weights before and after ``v → v + ε``; ``rhs``: ``vᵀ(v+ε)/(‖v‖‖v+ε‖)`` — Eq. (7) with
    ``v`` in place of ``w`` and no ``g``. Side conditions (verified): a change of ``g``
    alone (to any ``g' > 0``) leaves the direction fixed (cosine 1), and the flip
    ``ε = -(1+δ)v`` still gives cosine -1.
    """
    n = _check_n(n, 1)
    v, e = _vector("v", n), _vector("epsilon", n)
    g, g2 = sp.Symbol("g", positive=True), sp.Symbol("g'", positive=True)
    delta = sp.Symbol("delta", positive=True)
    w_before, w_after = g * v / _norm(v), g * (v + e) / _norm(v + e)
    lhs = _cos_angle(w_before, w_after)
    rhs = _dot(v, v + e) / (_norm(v) * _norm(v + e))
    g_only = _cos_angle(w_before, g2 * v / _norm(v))
    flip = _cos_angle(w_before, g * (-delta * v) / _norm(-delta * v))
    ok = _is_zero(lhs - rhs) and _is_zero(g_only - 1) and _is_zero(flip + 1)
    return Derivation(
        name="Proposition 2.4",
        statement=(f"In R^{n}, with WN weight g·v/‖v‖ (g > 0), perturbing v by ε turns the CAB "
                   "by the angle of Eq. (7) in v, independent of g; changing g > 0 alone does "
                   "not turn it, and ε = -(1+δ)v flips it by π."),
        lhs=lhs, rhs=rhs, holds=bool(ok),
        steps=(("effective weight", _eq(sp.Symbol("w"), w_before)),
               ("perturbing g only (g' > 0)", _eq(g_only, 1)),
               ("flip ε = -(1+δ)v", _eq(flip, -1))),
    )


@functools.cache
def bn_direction_change(n: int = 2) -> Derivation:
    """Prop. 2.5, Eq. (9): with zero-mean input BN is WN with the data-covariance norm.

    Verified pieces, for ``w ∈ R^n`` and ``γ > 0``:

    1. (``steps``) the batch variance of ``wᵀx`` over ``N = 3`` zero-mean samples equals
       ``wᵀΣw`` with ``Σ = XᵀX/N`` the batch covariance, so BN's effective weight (ignoring
       BN's ``eps``) is ``γ·w/‖w‖_Σ`` with ``‖w‖_Σ = sqrt(wᵀΣw)``;
    2. ``Σ`` modelled as a symbolic SPD matrix ``LLᵀ`` (``L`` lower triangular with positive
       diagonal), for which ``wᵀΣw = ‖Lᵀw‖²``;
    3. ``lhs``: the cosine between the BN effective weights before and after ``w → w + ε``;
       ``rhs``: ``wᵀ(w+ε)/(‖w‖‖w+ε‖)``, the SP form of Eq. (7): the direction is that of
       ``w`` and the same flip applies.
    """
    n = _check_n(n, 1, 3)
    w, e = _vector("w", n), _vector("epsilon", n)
    gamma = sp.Symbol("gamma", positive=True)
    L = sp.ImmutableMatrix(n, n, lambda i, j: (
        sp.Symbol(f"l_{i + 1}{j + 1}", positive=True) if i == j
        else sp.Symbol(f"l_{i + 1}{j + 1}", real=True) if i > j else 0))
    sigma = L * L.T

    def norm_sigma(a: sp.MatrixBase) -> sp.Expr:  # ‖a‖_Σ written as ‖Lᵀa‖ (a sum of squares)
        return _norm(L.T * a)

    # 1. batch statistics of z = wᵀx over N zero-mean samples (centred by construction)
    N = 3
    X = sp.Matrix(N, n, lambda k, i: sp.Symbol(f"x_{k + 1}{i + 1}", real=True))
    Xc = X - sp.ones(N, 1) * (sp.ones(1, N) * X) / N
    z = Xc * w
    batch_mean = sum(z) / N
    batch_var = sum(zk**2 for zk in z) / N
    cov = Xc.T * Xc / N
    ok_stats = sp.expand(batch_mean) == 0 and sp.expand(batch_var - _dot(w, cov * w)) == 0
    # 2. the SPD quadratic form as a sum of squares
    ok_sos = sp.expand(_dot(w, sigma * w) - norm_sigma(w) ** 2) == 0
    # 3. the direction change
    lhs = _cos_angle(gamma * w / norm_sigma(w), gamma * (w + e) / norm_sigma(w + e))
    rhs = _dot(w, w + e) / (_norm(w) * _norm(w + e))
    ok = ok_stats and ok_sos and _is_zero(lhs - rhs)
    S = sp.MatrixSymbol("Sigma", n, n)
    ws = sp.MatrixSymbol("w", n, 1)
    return Derivation(
        name="Proposition 2.5",
        statement=(f"In R^{n}, with zero-mean input of covariance Σ = LLᵀ (SPD) and γ > 0, BN's "
                   "effective weight is γ·w/sqrt(wᵀΣw); perturbing w by ε turns the CAB by "
                   "the same angle as under SP (Eq. 7), so BN inherits the instability."),
        lhs=lhs, rhs=rhs, holds=bool(ok),
        steps=(("batch mean of wᵀx (zero-mean data, N = 3)", _eq(sp.Symbol("mu"), 0)),
               ("batch variance of wᵀx", _eq(sp.Symbol("sigma") ** 2, (ws.T * S * ws))),
               ("SPD covariance", _eq(S, sigma)),
               ("effective weight", _eq(sp.Symbol("w_BN"), gamma * w / norm_sigma(w)))),
    )


# --------------------------------------------------------------------------------------
# Hyperspherical coordinates and their metric
# --------------------------------------------------------------------------------------
@functools.cache
def hyperspherical_unit_vector(n: int) -> sp.ImmutableMatrix:
    """``u(θ)`` as an ``(n, 1)`` matrix in the symbols of :func:`angle_symbols` ``(n)``.

    ``u_1 = cos θ_1``, ``u_i = (∏_{j<i} sin θ_j) cos θ_i``, ``u_n = ∏_{j<n} sin θ_j``;
    ``n = 1`` gives ``(1)`` (the direction ``±1`` is not an angle).
    """
    n = _check_n(n, 1)
    theta = angle_symbols(n)
    entries, prefix = [], sp.Integer(1)
    for t in theta:
        entries.append(prefix * sp.cos(t))
        prefix = prefix * sp.sin(t)
    entries.append(prefix)
    return sp.ImmutableMatrix(entries)


@functools.cache
def unit_norm(n: int) -> Derivation:
    """``‖u(θ)‖² = 1`` for every real ``θ``, with the telescoping steps.

    Steps (each verified): ``Σ_{i≥k} u_i² = ∏_{j<k} sin²θ_j`` for ``k = n, n-1, …, 1``; the
    case ``k = 1`` is the claim.
    """
    n = _check_n(n, 1)
    theta = angle_symbols(n)
    u = hyperspherical_unit_vector(n)
    lhs = _dot(u, u)
    rhs = sp.Integer(1)
    steps, ok = [], True
    for k in range(n, 0, -1):
        tail = sp.Add(*[u[i] ** 2 for i in range(k - 1, n)])
        closed = _prod_sin2(theta, k)
        ok = ok and trig_identity_holds(tail - closed, theta)
        steps.append((f"sum of u_i^2 for i >= {k}", _eq(tail, closed)))
    ok = ok and trig_identity_holds(lhs - rhs, theta)
    return Derivation(
        name="Hyperspherical coordinates: unit norm",
        statement=(f"For every real θ ∈ R^{n - 1}, u(θ) has unit length: summing the squares "
                   "from the last coordinate inwards telescopes (cos² + sin² = 1)."),
        lhs=lhs, rhs=rhs, holds=bool(ok), steps=(("u(θ)", u), *steps),
    )


def _metric_closed_form(n: int) -> sp.ImmutableMatrix:
    theta = angle_symbols(n)
    return sp.ImmutableMatrix(sp.diag(*[_prod_sin2(theta, k) for k in range(1, n)]))


@functools.cache
def metric_tensor(n: int) -> Derivation:
    """``G = JᵀJ`` of ``u(θ)`` (``J = ∂u/∂θ``, ``n × (n-1)``) equals
    ``diag(1, sin²θ₁, sin²θ₁sin²θ₂, …, ∏_{j≤n-2} sin²θ_j)``.

    ``lhs`` is ``JᵀJ`` exactly as differentiated (not simplified); every entry is checked
    with :func:`trig_identity_holds`. Takes < 1 s for ``n ≤ 7``.
    """
    n = _check_n(n, 2)
    theta = angle_symbols(n)
    u = hyperspherical_unit_vector(n)
    J = u.jacobian(theta)
    lhs = sp.ImmutableMatrix(J.T * J)
    rhs = _metric_closed_form(n)
    ok = verify(lhs, rhs, theta)
    return Derivation(
        name="Metric tensor of hyperspherical coordinates",
        statement=(f"For n = {n}, the pullback metric G = JᵀJ of u(θ) is diagonal with entries "
                   "1, sin²θ₁, sin²θ₁sin²θ₂, …, ∏_{j≤n-2} sin²θ_j."),
        lhs=lhs, rhs=rhs, holds=bool(ok),
        steps=(("u(θ)", u), ("J = ∂u/∂θ", sp.ImmutableMatrix(J))),
    )


def _induction_generic(k: int, factor: sp.Expr | None = None) -> bool:
    """Concrete check of the induction step for ``u' ∈ R^k`` built from generic functions.

    ``u' = (f_1(θ'), …, f_k(θ'))`` with undefined real functions of ``θ' ∈ R^{k-1}``;
    ``J`` is obtained by SymPy's differentiation. With ``h₀ = u'ᵀu' - 1`` and
    ``h_j = u'ᵀ ∂_j u'`` (both 0 under the hypothesis ``‖u'‖ ≡ 1``) the difference
    ``JᵀJ - diag(1, sin²θ₁ J'ᵀJ')`` must equal ``cos²θ₁ h₀`` in the corner,
    ``sinθ₁cosθ₁ h_j`` in the first row and column, and 0 elsewhere, exactly.
    """
    t1 = sp.Symbol("theta_1", real=True)
    tp = [sp.Symbol(f"theta_{i}", real=True) for i in range(2, k + 1)]
    f = sp.Matrix([sp.Function(f"f_{i}", real=True)(*tp) for i in range(1, k + 1)])
    U = sp.Matrix([sp.cos(t1)] + [sp.sin(t1) * fi for fi in f])
    J = U.jacobian([t1, *tp])
    Jp = f.jacobian(tp)
    factor = sp.sin(t1) ** 2 if factor is None else factor  # anything else: negative control
    D = (J.T * J - sp.diag(1, factor * (Jp.T * Jp))).applyfunc(sp.expand)
    h0 = _dot(f, f) - 1
    sc = sp.sin(t1) * sp.cos(t1)
    if not trig_identity_holds(D[0, 0] - sp.cos(t1) ** 2 * h0, (t1,)):
        return False
    for j in range(k - 1):
        hj = _dot(f, Jp[:, j])
        if sp.expand(D[0, j + 1] - sc * hj) != 0 or sp.expand(D[j + 1, 0] - sc * hj) != 0:
            return False
    return all(D[i, j] == 0 for i in range(1, k) for j in range(1, k))


def _induction_setup():
    """Objects of the induction step with ``u' ∈ R^k``, ``k`` a symbolic size."""
    k = sp.Symbol("k", integer=True, positive=True)
    t1 = sp.Symbol("theta_1", real=True)
    s, c = sp.sin(t1), sp.cos(t1)
    u = sp.MatrixSymbol("u'", k, 1)
    Jp = sp.MatrixSymbol("J'", k, k - 1)
    Gp = sp.MatrixSymbol("G'", k - 1, k - 1)
    J = sp.BlockMatrix([[sp.ImmutableMatrix([[-s]]), sp.ZeroMatrix(1, k - 1)],
                        [c * u, s * Jp]])
    lhs = sp.block_collapse(J.T * J)
    rhs = sp.BlockMatrix([[sp.Identity(1), sp.ZeroMatrix(1, k - 1)],
                          [sp.ZeroMatrix(k - 1, 1), s**2 * Gp]])
    return k, t1, u, Jp, Gp, J, lhs, rhs


def _induction_symbolic(hypotheses: bool = True) -> bool:
    """Blockwise check of ``JᵀJ = diag(1, sin²θ₁ G')`` for symbolic ``k``, using H1 and H2
    only if ``hypotheses`` (without them it must fail: a negative control)."""
    k, t1, u, Jp, Gp, _, lhs, rhs = _induction_setup()
    hyp = ({u.T * u: sp.Identity(1), u.T * Jp: sp.ZeroMatrix(1, k - 1),
            Jp.T * u: sp.ZeroMatrix(k - 1, 1)} if hypotheses else {})
    if not (isinstance(lhs, sp.BlockMatrix) and lhs.blockshape == (2, 2)):
        return False
    for i in range(2):
        for j in range(2):
            got = lhs.blocks[i, j].subs(hyp)
            want = rhs.blocks[i, j].subs({Gp: Jp.T * Jp})
            if got.shape == (1, 1):  # the corner: cos²θ₁·I + (sin²θ₁) → (1)
                diff = (sp.ImmutableMatrix(got.as_explicit())
                        - sp.ImmutableMatrix(want.as_explicit()))
                if not trig_identity_holds(diff[0, 0], (t1,)):
                    return False
            elif sp.simplify(got - want).is_ZeroMatrix is not True:
                return False
    return True


@functools.cache
def metric_induction_step() -> Derivation:
    """Induction step ``G⁽ⁿ⁾ = diag(1, sin²θ₁·G⁽ⁿ⁻¹⁾)`` for every ``n ≥ 3``.

    Recursion: ``u⁽ⁿ⁾(θ₁, θ') = (cos θ₁, sin θ₁·u'(θ'))`` with ``u' = u⁽ⁿ⁻¹⁾ ∈ R^k``,
    ``k = n-1``. Assumed, and nothing else:

    - (H1) ``u'ᵀu' = 1`` for all ``θ'`` (the unit-norm result, :func:`unit_norm`);
    - (H2) ``u'ᵀJ' = 0`` with ``J' = ∂u'/∂θ'`` (H1 differentiated);
    - ``G⁽ⁿ⁻¹⁾ := J'ᵀJ'``;
    - the block form ``J = [[-sin θ₁, 0], [cos θ₁·u', sin θ₁·J']]``.

    ``lhs`` is ``JᵀJ`` from SymPy's block algebra with ``u'``, ``J'`` matrix symbols of
    symbolic size ``k``; ``holds`` requires every block to reduce to ``rhs`` under H1, H2.
    Independently, the whole step (block form of ``J`` included, now derived by SymPy's
    differentiation) is checked for ``k = 2, …, 6`` (``n = 3, …, 7``) with ``u'`` built
    from undefined functions, by an exact certificate in H1, H2 (see ``_induction_generic``).
    With the base case ``G⁽²⁾ = (1)`` this gives the closed form of :func:`metric_tensor`.
    """
    k, t1, u, Jp, Gp, J, lhs, rhs = _induction_setup()
    ok = (metric_tensor(2).holds  # base case G⁽²⁾ = (1)
          and _induction_symbolic(True) and all(_induction_generic(kk) for kk in range(2, 7)))
    return Derivation(
        name="Metric tensor: induction step",
        statement=("If u' is a unit-vector function of θ' with Jacobian J' (so u'ᵀu' = 1 and "
                   "u'ᵀJ' = 0) and G' = J'ᵀJ', then u = (cos θ₁, sin θ₁·u') has metric "
                   "JᵀJ = diag(1, sin²θ₁·G')."),
        lhs=lhs, rhs=rhs, holds=bool(ok),
        steps=(("Jacobian (block form)", J),
               ("hypothesis H1", _eq(u.T * u, sp.Identity(1))),
               ("hypothesis H2", _eq(u.T * Jp, sp.ZeroMatrix(1, k - 1))),
               ("definition", _eq(Gp, Jp.T * Jp)),
               ("base case n = 2", _eq(metric_tensor(2).lhs, sp.ImmutableMatrix([[1]])))),
    )


@functools.cache
def metric_bound(n: int) -> Derivation:
    """Thm 3.7: ``εᵀGε ≤ ‖ε‖²`` for the metric of ``u(θ) ∈ S^{n-1}``.

    ``lhs = ‖ε‖² - εᵀGε`` with ``G`` the closed form (verified by :func:`metric_tensor`),
    ``rhs = Σ_i ε_i² (1 - g_i)``, ``g_i = ∏_{j<i} sin²θ_j``. Side conditions, verified:
    ``G`` is the metric; ``g_i`` is a product of squares (``≥ 0``); and
    ``1 - g_i = Σ_{k<i} cos²θ_k ∏_{j<k} sin²θ_j``, a sum of squares (``≥ 0``; SymPy's
    assumptions confirm both signs), so ``0 ≤ g_i ≤ 1`` and every term of ``rhs`` is
    ``≥ 0``. The first-order angle ``sqrt(εᵀGε)`` is therefore at most ``‖ε‖``.
    """
    n = _check_n(n, 2)
    theta = angle_symbols(n)
    eps = _vector("epsilon", n - 1)
    G = _metric_closed_form(n)
    lhs = _dot(eps, eps) - _dot(eps, G * eps)
    g = [G[i, i] for i in range(n - 1)]
    rhs = sp.Add(*[eps[i] ** 2 * (1 - g[i]) for i in range(n - 1)])
    ok = metric_tensor(n).holds and sp.expand(lhs - rhs) == 0
    steps: list[Step] = []
    for i in range(1, n):  # 1-based index of ε_i
        sos = sp.Add(*[(sp.cos(theta[k - 1]) * sp.Mul(*[sp.sin(t) for t in theta[: k - 1]])) ** 2
                       for k in range(1, i)])
        ok = (ok and trig_identity_holds(1 - g[i - 1] - sos, theta)
              and g[i - 1].is_nonnegative is True
              and (sos == 0 or sos.is_nonnegative is True))
        steps.append((f"g_{i} = G_{i}{i}", _eq(sp.Symbol(f"g_{i}"), g[i - 1])))
        steps.append((f"1 - g_{i} as a sum of squares", _eq(1 - g[i - 1], sos)))
    return Derivation(
        name="Theorem 3.7",
        statement=(f"For n = {n}, ‖ε‖² - εᵀGε = Σ_i ε_i²(1 - g_i) with each g_i = ∏_{{j<i}} "
                   "sin²θ_j in [0, 1], so the first-order change sqrt(εᵀGε) of the CAB "
                   "direction is at most ‖ε‖."),
        lhs=lhs, rhs=rhs, holds=bool(ok), steps=tuple(steps),
    )


def metric_bound_numeric(n: int, seed: int = 0) -> dict[str, Any]:
    """Numerical companion of Thm 3.7 with :mod:`gmp.geometry` in float64.

    Draws ``θ ~ U(-π, π)^{n-1}`` and a unit direction ``ε̂``, and for
    ``t = 1e-1, …, 1e-6`` computes the chord ratio ``‖u(θ + tε̂) - u(θ)‖ / t``, which
    tends to ``limit = sqrt(ε̂ᵀG(θ)ε̂) ≤ 1`` as ``t → 0`` (error ``O(t)``).

    Returns:
        dict with ``n``, ``seed``, ``theta (n-1,)``, ``direction (n-1,)``, ``scales (6,)``,
        ``ratios (6,)``, ``errors (6,) = |ratio - limit|``, ``limit`` and ``bound = 1.0``
        (arrays are float64 numpy).
    """
    n = _check_n(n, 2)
    gen = torch.Generator().manual_seed(int(seed))
    theta = (torch.rand(n - 1, generator=gen, dtype=torch.float64) * 2 - 1) * torch.pi
    d = torch.randn(n - 1, generator=gen, dtype=torch.float64)
    d = d / torch.linalg.vector_norm(d)
    scales = torch.logspace(-1, -6, 6, dtype=torch.float64)
    u0 = geometry.unit_vector(theta)
    ratios = torch.stack([torch.linalg.vector_norm(geometry.unit_vector(theta + t * d) - u0) / t
                          for t in scales])
    limit = torch.sqrt((geometry.metric_diagonal(theta) * d * d).sum())
    return {
        "n": n, "seed": int(seed),
        "theta": theta.numpy(), "direction": d.numpy(), "scales": scales.numpy(),
        "ratios": ratios.numpy(), "errors": (ratios - limit).abs().numpy(),
        "limit": float(limit), "bound": 1.0,
    }


@functools.cache
def _metric_lambdas(n: int):
    theta = angle_symbols(n)
    G = metric_tensor(n).lhs  # the differentiated JᵀJ, not the closed form
    return [[sp.lambdify(theta, G[i, j], modules="numpy") for j in range(n - 1)]
            for i in range(n - 1)]


def metric_tensor_numeric(theta: torch.Tensor) -> torch.Tensor:
    """Evaluate the symbolic ``G = JᵀJ`` (as differentiated by SymPy) at ``theta``.

    Args:
        theta: ``(..., n-1)`` angles, ``n ≥ 2``.

    Returns:
        ``(..., n-1, n-1)`` tensor (computed in float64; ``theta``'s floating dtype and
        device).
    """
    if not isinstance(theta, torch.Tensor):
        theta = torch.as_tensor(theta, dtype=torch.float64)
    if theta.dim() == 0 or theta.shape[-1] < 1:
        raise ValueError(f"metric_tensor_numeric expects angles of shape (..., n-1) with "
                         f"n >= 2, got {tuple(theta.shape)}")
    k = theta.shape[-1]
    fns = _metric_lambdas(k + 1)
    th = theta.detach().to(device="cpu", dtype=torch.float64).numpy()
    args = [th[..., i] for i in range(k)]
    batch = th.shape[:-1]
    out = np.empty((*batch, k, k), dtype=np.float64)
    for i in range(k):
        for j in range(k):
            out[..., i, j] = np.broadcast_to(np.asarray(fns[i][j](*args), dtype=np.float64),
                                             batch)
    dtype = theta.dtype if theta.is_floating_point() else torch.float64
    return torch.from_numpy(out).to(device=theta.device, dtype=dtype)


def derivations(n: int = 3) -> tuple[Derivation, ...]:
    """Every derivation of this module for input dimension ``n`` (``2 ≤ n ≤ 3`` for BN)."""
    n = _check_n(n, 2)
    return (cab_direction_change(n), sp_flip(n), wn_direction_change(n),
            bn_direction_change(min(n, 3)), unit_norm(n), metric_tensor(n),
            metric_induction_step(), metric_bound(n))
