"""Symbolic (SymPy) derivations of the paper's propositions and theorem.

Each public function returns a :class:`Derivation`: a claim ``lhs = rhs`` with labelled
intermediate steps and a flag ``holds`` that is True only when SymPy verified the claim
and every side condition listed in the function's docstring. Nothing is taken from printed
output: checks compare expressions.

Chen & Ge 2024, Sec. 2.3 (Props. 2.3-2.5, Eqs. 7-9), Sec. 3.1 (Def. 3.1, Eqs. 10-11) and
Sec. 3.3 with Appendix B (Thm 3.7, Eqs. 15-26):

- Props. 2.3 (SP), 2.4 (WN), 2.5 (BN): the CAB direction change
  ``cos Δ = wᵀ(w+ε) / (‖w‖‖w+ε‖)`` (Eq. 7) and the flip ``ε = -(1+δ)w ⇒ Δ = π``
  (:func:`cab_direction_change`, :func:`sp_flip`, :func:`wn_direction_change`,
  :func:`bn_direction_change`);
- hyperspherical coordinates ``u(θ)``, ``‖u‖ = 1`` (:func:`hyperspherical_unit_vector`,
  :func:`unit_norm`);
- the metric ``G = JᵀJ = diag(1, sin²θ₁, sin²θ₁sin²θ₂, …)`` for given ``n`` and the
  induction step on ``n`` (:func:`metric_tensor`, :func:`metric_induction_step`);
- Thm 3.7, ``εᵀGε ≤ ‖ε‖²`` (:func:`metric_bound`, :func:`metric_bound_numeric`).

Every check can fail. The formula under test is never the expression it is compared with:
the *reference* side is computed from definitions (the unit normal of a CAB as the
normalized gradient of its pre-activation; the effective weight of WN/BN; ``JᵀJ`` from
SymPy's differentiation of ``u(θ)``), and the formula side is a separate expression, which
each function takes as an optional argument so that tests can hand it a wrong formula
(``tests/test_symbolic_mutations.py`` checks that wrong powers, dropped normalizations,
swapped sin/cos and wrong signs are all rejected). Side conditions that a wrong model
would violate are checked too: WN's ``‖w‖ = g``, ``vᵀ∇_v L = 0`` and ``∇_g L``; BN's unit
batch variance, ``wᵀ∇_w L = 0`` and ``∇_w L`` (with BN's ``eps = 0``).

What is proven, and for which ``n``:

- for every ``n`` (symbolic size): the block form of the Jacobian in the induction step
  (each of its four kinds of entries is differentiated by SymPy for a generic entry of
  ``u'``; ``J`` is assembled from those entries and compared with the stated block form
  itself, since ``JᵀJ`` cannot see a sign flip of a block once ``u'ᵀJ' = 0`` is assumed),
  the block product ``JᵀJ = diag(1, sin²θ₁·G')`` under the hypotheses ``u'ᵀu' = 1``,
  ``u'ᵀJ' = 0``, and the norm step ``cos²θ₁ + sin²θ₁·u'ᵀu' = 1`` for the same ``u``, whose
  recursion is checked against Eqs. (10)-(11). With the
  base case ``n = 2`` these give ``‖u‖ = 1`` and Eq. (26) for every ``n`` by induction; the
  induction itself is the ordinary argument on paper, not mechanized;
- for each ``n ≤ 7`` separately (what the tests and the book run): ``‖u(θ)‖ = 1``, ``G``
  from differentiating ``u`` entry by entry, Thm 3.7 with each coefficient of ``ε_i²`` on
  both sides checked against an exact sum of squares, and the
  induction step re-derived by differentiation with ``u'`` made of undefined functions;
- Props. 2.3-2.4 for ``n ≤ 3`` and Prop. 2.5 for ``n ≤ 3`` with a batch of 3 examples
  (the arguments do not depend on ``n``, but SymPy checks the given size only).

How trigonometric identities are checked. Every identity about ``u(θ)`` here is a
polynomial identity in ``s_k = sin θ_k`` and ``c_k = cos θ_k`` that must hold modulo the
relations ``s_k² + c_k² = 1``. These relations form a Gröbner basis (their leading terms
``s_k²`` are pairwise coprime), so the remainder of the expanded difference on division by
them is a canonical form: the identity holds iff the remainder is exactly 0
(:func:`trig_identity_holds`). Other identities go through ``simplify``, after a numerical
screen: the difference is evaluated to 30 digits at three random points, and a value far
from 0 refutes the identity at once (a non-zero value at one point is a proof that the
expressions differ).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
import torch

from . import geometry

__all__ = [
    "Derivation",
    "angle_symbols",
    "eq7",
    "wn_weight",
    "bn_scale",
    "metric_entry",
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
@functools.cache
def _cached(compute: Callable[..., Derivation], *args: Any) -> Derivation:
    """``compute(*args)``, computed once per process: the public checks route here when every
    formula argument is the book's own (the common case), and compute afresh otherwise."""
    return compute(*args)


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


def _numerically_nonzero(expr: sp.Expr, trials: int = 3) -> bool:
    """True if ``expr`` evaluates far from 0 at some random point (so it is not ≡ 0).

    Each free symbol gets a random rational in ``[1/2, 2]`` (with a random sign unless the
    symbol is positive/nonnegative); evaluation uses 30 digits. Points where the value is
    not a finite real number are skipped, so False means "no refutation found".
    """
    syms = sorted(expr.free_symbols, key=lambda s: s.name)
    if not syms:
        val = sp.N(expr, 30)
        return bool(val.is_number and val.is_finite and abs(complex(val)) > 1e-12)
    rng = np.random.default_rng(12345)
    for _ in range(trials):
        point = {}
        for s in syms:
            v = sp.Rational(int(rng.integers(50, 200)), 100)
            if not (s.is_positive or s.is_nonnegative) and rng.random() < 0.5:
                v = -v
            point[s] = v
        try:
            val = sp.N(expr.xreplace(point), 30)
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if not val.is_number or val.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            continue
        if abs(complex(val)) > 1e-12:
            return True
    return False


def _is_zero(expr: sp.Expr) -> bool:
    """True iff SymPy reduces ``expr`` to exactly 0 (never True by default).

    A numerical screen first (:func:`_numerically_nonzero`: a clear non-zero value is a
    refutation). Then ``simplify``; if that leaves e.g. ``sqrt(v₁⁴ + 2v₁²v₂² + v₂⁴)``
    unrecognised, ``factor(deep=True)`` exposes ``sqrt((v₁² + v₂²)²)``, which SymPy then
    takes as ``v₁² + v₂²`` because it knows the base is nonnegative. Both are
    equivalence-preserving rewrites, so a 0 is a proof (up to the implicit
    ``denominator ≠ 0``).
    """
    expr = sp.sympify(expr)
    if expr == 0:
        return True
    if _numerically_nonzero(expr):
        return False
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
Formula = Callable[[sp.MatrixBase, sp.MatrixBase], sp.Expr]


def eq7(w: sp.MatrixBase, eps: sp.MatrixBase) -> sp.Expr:
    """Eq. (7): ``cos Δ = wᵀ(w+ε) / (‖w‖‖w+ε‖)`` for column vectors ``w``, ``ε``."""
    return _dot(w, w + eps) / (_norm(w) * _norm(w + eps))


def _cab_unit_normal(w: sp.MatrixBase, b: sp.Expr) -> sp.MatrixBase:
    """Unit normal of ``{x : wᵀx + b = 0}`` from Definition 2.1: the gradient of the
    pre-activation with respect to ``x`` (it points into the active side), normalized."""
    x = _vector("x", w.rows)
    pre = _dot(w, x) + b
    grad = sp.Matrix([sp.diff(pre, xi) for xi in x])
    return grad / _norm(grad)


def cab_direction_change(n: int, formula: Formula = eq7) -> Derivation:
    """Prop. 2.3, Eq. (7): cosine of the CAB's direction change under SP, in ``R^n``.

    ``lhs`` (reference): the product of the unit normals of the CABs of ``(w, b)`` and
    ``(w+ε, b)``, each obtained from Definition 2.1 as the normalized gradient of the
    pre-activation in ``x``; ``rhs``: ``formula(w, ε)`` (Eq. 7 by default). Side
    conditions, checked on ``formula``: it is 1 at ``ε = 0`` and unchanged when ``w`` and
    ``ε`` are scaled by the same ``c > 0`` (so the angle depends on ``ε`` only through
    ``ε/‖w‖`` and a fixed perturbation turns a short weight vector by a large angle).
    """
    n = _check_n(n, 1)
    if formula is eq7:
        return _cached(_cab_direction_change, n, eq7)
    return _cab_direction_change(n, formula)



def _cab_direction_change(n: int, formula: Formula) -> Derivation:
    w, e = _vector("w", n), _vector("epsilon", n)
    b = sp.Symbol("b", real=True)
    c = sp.Symbol("c", positive=True)
    nb, na = _cab_unit_normal(w, b), _cab_unit_normal(w + e, b)
    lhs = _dot(nb, na)
    rhs = formula(w, e)
    scaled = formula(c * w, c * e)
    unchanged = formula(w, sp.zeros(n, 1))
    ok = _is_zero(lhs - rhs) and _is_zero(scaled - rhs) and _is_zero(unchanged - 1)
    return Derivation(
        name="Proposition 2.3",
        statement=(f"In R^{n}, the CAB normal turns by Δ with cos Δ = wᵀ(w+ε)/(‖w‖‖w+ε‖) when "
                   "w is perturbed by ε; this is unchanged when w and ε are scaled by the "
                   "same c > 0, so only ε/‖w‖ matters."),
        lhs=lhs, rhs=rhs, holds=bool(ok),
        steps=(("unit normal before (gradient of wᵀx + b)", nb), ("unit normal after", na),
               ("scale invariance (c > 0)", _eq(scaled, rhs)),
               ("no perturbation", _eq(unchanged, 1))),
    )


def _default_flip(w: sp.MatrixBase, delta: sp.Expr) -> sp.MatrixBase:
    return -(1 + delta) * w


def sp_flip(n: int, perturbation: Callable[[sp.MatrixBase, sp.Expr], sp.MatrixBase]
            = _default_flip) -> Derivation:
    """Prop. 2.3, the flip: ``ε = -(1+δ)w`` with ``δ > 0`` gives ``cos Δ = -1``, ``Δ = π``.

    ``lhs``: the product of the CAB unit normals (Definition 2.1) before and after
    ``w → w + perturbation(w, δ)``, for symbolic ``w ∈ R^n`` and a positive symbol ``δ``;
    ``rhs = -1``. Side condition: ``w + ε = -δw``. However small ``‖ε‖ = (1+δ)‖w‖`` is (it
    is small whenever ``‖w‖`` is), the CAB turns by 180°.
    """
    n = _check_n(n, 1)
    if perturbation is _default_flip:
        return _cached(_sp_flip, n, _default_flip)
    return _sp_flip(n, perturbation)



def _sp_flip(n: int, perturbation) -> Derivation:
    w = _vector("w", n)
    b = sp.Symbol("b", real=True)
    delta = sp.Symbol("delta", positive=True)
    e = perturbation(w, delta)
    lhs = _dot(_cab_unit_normal(w, b), _cab_unit_normal(w + e, b))
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


def wn_weight(g: sp.Expr, v: sp.MatrixBase) -> sp.MatrixBase:
    """Weight normalization's effective weight ``g·v/‖v‖`` (Salimans & Kingma 2016)."""
    return g * v / _norm(v)


def wn_direction_change(n: int, weight: Callable[[sp.Expr, sp.MatrixBase], sp.MatrixBase]
                        = wn_weight, formula: Formula = eq7) -> Derivation:
    """Prop. 2.4, Eq. (8): under WN the direction change has the SP form in ``v``.

    Effective weight ``weight(g, v)`` (``g·v/‖v‖`` by default) with ``g > 0``. ``lhs``: the
    cosine between the CAB unit normals (Definition 2.1) of the effective weights before and
    after ``v → v + ε``; ``rhs``: ``formula(v, ε)``, Eq. (7) with ``v`` in place of ``w``.
    Side conditions (verified, and each one needs the normalization ``/‖v‖``):

    - ``‖w‖ = g``: the length is carried by ``g`` alone;
    - the gradient ``∇_v L = (∂w/∂v)ᵀ∇_w L`` (Jacobian by SymPy, ``∇_w L`` an arbitrary
      vector) equals ``(g/‖v‖)(I - vvᵀ/‖v‖²)∇_w L``, so ``vᵀ∇_v L = 0``: gradient descent
      moves ``v`` orthogonally to itself and, to first order, never shortens it;
    - ``∇_g L = vᵀ∇_w L/‖v‖``;
    - changing ``g`` alone leaves the direction fixed only while ``g`` keeps its sign: a
      sign change ``g > 0 → -g' < 0`` reverses ``w`` (a turn of π, as ``ε = -(1+δ)v``).
    """
    n = _check_n(n, 1)
    if weight is wn_weight and formula is eq7:
        return _cached(_wn_direction_change, n, wn_weight, eq7)
    return _wn_direction_change(n, weight, formula)



def _wn_direction_change(n: int, weight, formula) -> Derivation:
    v, e = _vector("v", n), _vector("epsilon", n)
    g, g2 = sp.Symbol("g", positive=True), sp.Symbol("g'", positive=True)
    b = sp.Symbol("b", real=True)
    delta = sp.Symbol("delta", positive=True)
    w_before, w_after = sp.Matrix(weight(g, v)), sp.Matrix(weight(g, v + e))
    lhs = _dot(_cab_unit_normal(w_before, b), _cab_unit_normal(w_after, b))
    rhs = formula(v, e)
    ok = _is_zero(lhs - rhs)
    # the length of the effective weight is g
    ok = ok and _is_zero(_norm(w_before) - g)
    # the gradient with respect to v
    grad_w = _vector("G", n)
    grad_v = w_before.jacobian(list(v)).T * grad_w
    nv = _norm(v)
    closed = (g / nv) * (grad_w - v * _dot(v, grad_w) / nv**2)
    ok = ok and all(_is_zero(grad_v[i] - closed[i]) for i in range(n))
    ok = ok and _is_zero(_dot(v, grad_v))
    # the gradient with respect to g: ∇_g L = vᵀ∇_w L/‖v‖
    grad_g = _dot(w_before.diff(g), grad_w)
    closed_g = _dot(v, grad_w) / nv
    ok = ok and _is_zero(grad_g - closed_g)
    # g alone does not turn the boundary; the flip
    g_only = _cos_angle(w_before, sp.Matrix(weight(g2, v)))
    g_sign = _cos_angle(w_before, sp.Matrix(weight(-g2, v)))   # g > 0 → -g' < 0
    flip = _cos_angle(w_before, sp.Matrix(weight(g, -delta * v)))
    ok = ok and _is_zero(g_only - 1) and _is_zero(g_sign + 1) and _is_zero(flip + 1)
    return Derivation(
        name="Proposition 2.4",
        statement=(f"In R^{n}, with WN weight g·v/‖v‖ (g > 0), perturbing v by ε turns the CAB "
                   "by the angle of Eq. (7) in v, independent of g; ‖w‖ = g; the gradient in v "
                   "is orthogonal to v and ∇_g L = vᵀ∇_w L/‖v‖; changing g alone does not "
                   "turn the CAB while g keeps its sign, a sign change of g flips it by π, "
                   "and so does ε = -(1+δ)v."),
        lhs=lhs, rhs=rhs, holds=bool(ok),
        steps=(("effective weight", _eq(sp.Symbol("w"), w_before)),
               ("length", _eq(sp.Symbol("‖w‖"), g)),
               ("gradient in v", _eq(sp.Symbol("nabla_v L"), closed)),
               ("orthogonality", _eq(sp.Symbol("v^T nabla_v L"), 0)),
               ("gradient in g", _eq(sp.Symbol("nabla_g L"), closed_g)),
               ("perturbing g only (g' > 0)", _eq(g_only, 1)),
               ("sign change of g (g > 0 → -g' < 0)", _eq(g_sign, -1)),
               ("flip ε = -(1+δ)v", _eq(flip, -1))),
    )


def bn_scale(w: sp.MatrixBase, sigma: sp.MatrixBase) -> sp.Expr:
    """BN's denominator for zero-mean input of covariance ``Σ``: ``‖w‖_Σ = sqrt(wᵀΣw)``."""
    return sp.sqrt(_dot(w, sigma * w))


def bn_direction_change(n: int = 2, scale: Callable[[sp.MatrixBase, sp.MatrixBase], sp.Expr]
                        = bn_scale, formula: Formula = eq7) -> Derivation:
    """Prop. 2.5, Eq. (9): with zero-mean input BN is WN with the data-covariance norm.

    BN's effective weight is modelled as ``γ·w/scale(w, Σ)`` (``scale = ‖w‖_Σ`` by
    default, ignoring BN's ``eps``), ``γ > 0``. Verified, for ``w ∈ R^n``:

    1. on a symbolic batch of ``N = 3`` centred examples with covariance ``Σ = XᵀX/N``: the
       batch mean of ``wᵀx`` is 0, and the normalized output ``γ·wᵀx/scale(w, Σ)`` has batch
       variance exactly ``γ²`` — true only for ``scale² = wᵀΣw``, so any other positive
       scalar (``‖w‖``, a constant) is rejected;
    2. with ``Σ = LLᵀ`` symbolic SPD (``L`` lower triangular, positive diagonal):
       ``scale(w, Σ)`` is the principal square root of ``‖Lᵀw‖² = wᵀΣw`` (which rejects a
       negative or rescaled ``scale``); the BN effective weight points along ``w`` (cosine 1),
       and ``lhs``, the cosine between the CAB unit normals (Definition 2.1) of the
       effective weights before and after ``w → w + ε``, equals ``rhs = formula(w, ε)``
       (the SP form of Eq. 7): BN inherits the instability;
    3. the output is invariant under ``w → cw`` (``c > 0``), so the gradient in ``w`` is
       orthogonal to ``w`` (Euler; checked with SymPy's gradient of the batch output), and
       it equals ``(γ/‖w‖_Σ)(I - Σwwᵀ/‖w‖_Σ²)·∇_{w_BN} L`` with ``∇_{w_BN} L`` the gradient
       in the effective weight: its size scales as ``1/‖w‖_Σ``.

    All of this needs BN's ``eps = 0``: with ``σ = sqrt(wᵀΣw + eps)`` the output is not
    invariant under ``w → cw``, and for ``wᵀΣw ≪ eps`` BN acts like SP scaled by
    ``γ/sqrt(eps)``.
    """
    n = _check_n(n, 1, 3)
    if scale is bn_scale and formula is eq7:
        return _cached(_bn_direction_change, n, bn_scale, eq7)
    return _bn_direction_change(n, scale, formula)



def _bn_direction_change(n: int, scale, formula) -> Derivation:
    w, e = _vector("w", n), _vector("epsilon", n)
    gamma = sp.Symbol("gamma", positive=True)
    c = sp.Symbol("c", positive=True)
    b = sp.Symbol("b", real=True)
    # 1. batch statistics over N zero-mean samples
    N = 3
    X = sp.Matrix(N, n, lambda k, i: sp.Symbol(f"x_{k + 1}{i + 1}", real=True))
    Xc = X - sp.ones(N, 1) * (sp.ones(1, N) * X) / N
    cov = Xc.T * Xc / N
    z = Xc * w
    ok = sp.expand(sum(z) / N) == 0
    out = gamma * z / scale(w, cov)
    ok = ok and _is_zero(sum(o**2 for o in out) / N - gamma**2)
    # 3. scale invariance and the orthogonal gradient (loss gradient: arbitrary a_k per output)
    out_c = gamma * (Xc * (c * w)) / scale(c * w, cov)
    ok = ok and all(_is_zero(out_c[k] - out[k]) for k in range(N))
    a = _vector("a", N)
    loss = _dot(a, out)
    grad_w = sp.Matrix([sp.diff(loss, wi) for wi in w])
    ok = ok and _is_zero(_dot(w, grad_w))
    # ... and its size: ∇_w L = (γ/σ)(I - Σwwᵀ/σ²)∇_{w_BN} L with σ = scale(w, Σ)
    sig = scale(w, cov)
    g_eff = Xc.T * a                      # gradient with respect to the effective weight
    closed = (gamma / sig) * (g_eff - cov * w * _dot(w, g_eff) / sig**2)
    ok = ok and all(_is_zero(grad_w[i] - closed[i]) for i in range(n))
    # 2. the direction, with Σ = LLᵀ SPD
    L = sp.ImmutableMatrix(n, n, lambda i, j: (
        sp.Symbol(f"l_{i + 1}{j + 1}", positive=True) if i == j
        else sp.Symbol(f"l_{i + 1}{j + 1}", real=True) if i > j else 0))
    sigma = L * L.T

    def root(a: sp.MatrixBase) -> sp.Expr:
        """``scale(a, Σ)`` after checking it is the principal root of ``‖Lᵀa‖²``; returned
        as ``‖Lᵀa‖`` (a root of a sum of squares, whose sign SymPy knows)."""
        s = sp.sympify(scale(a, sigma))
        sos = _norm(L.T * a)
        nonlocal ok
        ok = (ok and isinstance(s, sp.Pow) and s.exp == sp.S.Half
              and sp.expand(s**2 - sos**2) == 0)
        return sos

    w_bn = gamma * w / root(w)
    w_bn_after = gamma * (w + e) / root(w + e)
    ok = ok and _is_zero(_cos_angle(w_bn, w) - 1)
    lhs = _dot(_cab_unit_normal(w_bn, b), _cab_unit_normal(w_bn_after, b))
    rhs = formula(w, e)
    ok = ok and _is_zero(lhs - rhs)
    S = sp.MatrixSymbol("Sigma", n, n)
    ws = sp.MatrixSymbol("w", n, 1)
    return Derivation(
        name="Proposition 2.5",
        statement=(f"In R^{n}, with zero-mean input of covariance Σ (SPD) and γ > 0, BN's "
                   "effective weight is γ·w/sqrt(wᵀΣw) (the output has batch variance γ²); "
                   "perturbing w by ε turns the CAB by the same angle as under SP (Eq. 7), "
                   "so BN inherits the instability; the gradient in w is orthogonal to w and "
                   "equals (γ/‖w‖_Σ)(I - Σwwᵀ/‖w‖_Σ²) times the gradient in the effective "
                   "weight (BN's ε = 0)."),
        lhs=lhs, rhs=rhs, holds=bool(ok),
        steps=(("batch mean of wᵀx (zero-mean data, N = 3)", _eq(sp.Symbol("mu"), 0)),
               ("batch variance of wᵀx", _eq(sp.Symbol("sigma") ** 2, (ws.T * S * ws))),
               ("batch variance of the BN output", _eq(sp.Symbol("Var"), gamma**2)),
               ("SPD covariance", _eq(S, sigma)),
               ("effective weight", _eq(sp.Symbol("w_BN"), gamma * w / scale(w, sigma))),
               ("orthogonal gradient", _eq(sp.Symbol("w^T nabla_w L"), 0)),
               ("gradient in w", _eq(sp.Symbol("nabla_w L"),
                                     sp.Symbol("(gamma/|w|_Sigma)(I - Sigma w w^T/|w|_Sigma^2)"
                                               " nabla_{w_BN} L")))),
    )


# --------------------------------------------------------------------------------------
# Hyperspherical coordinates and their metric
# --------------------------------------------------------------------------------------
UnitVectorBuilder = Callable[[tuple[sp.Symbol, ...]], list[sp.Expr]]
MetricEntry = Callable[[tuple[sp.Symbol, ...], int], sp.Expr]


def _u_entries(theta: tuple[sp.Symbol, ...]) -> list[sp.Expr]:
    """Eq. (10)-(11): ``u_i = (∏_{j<i} sin θ_j) cos θ_i``, ``u_n = ∏_{j<n} sin θ_j``."""
    entries, prefix = [], sp.Integer(1)
    for t in theta:
        entries.append(prefix * sp.cos(t))
        prefix = prefix * sp.sin(t)
    entries.append(prefix)
    return entries


def metric_entry(theta: tuple[sp.Symbol, ...], k: int) -> sp.Expr:
    """Eq. (26): ``G_kk = ∏_{j<k} sin²θ_j`` (1-based ``k``)."""
    return _prod_sin2(theta, k)


@functools.cache
def hyperspherical_unit_vector(n: int) -> sp.ImmutableMatrix:
    """``u(θ)`` as an ``(n, 1)`` matrix in the symbols of :func:`angle_symbols` ``(n)``.

    ``u_1 = cos θ_1``, ``u_i = (∏_{j<i} sin θ_j) cos θ_i``, ``u_n = ∏_{j<n} sin θ_j``;
    ``n = 1`` gives ``(1)`` (the direction ``±1`` is not an angle).
    """
    n = _check_n(n, 1)
    return sp.ImmutableMatrix(_u_entries(angle_symbols(n)))


def unit_norm(n: int, builder: UnitVectorBuilder = _u_entries) -> Derivation:
    """``‖u(θ)‖² = 1`` for every real ``θ``, with the telescoping steps.

    ``u`` is ``builder(θ)`` (Eqs. 10-11 by default). Steps (each verified):
    ``Σ_{i≥k} u_i² = ∏_{j<k} sin²θ_j`` for ``k = n, n-1, …, 1``, i.e. ``G_kk`` of Eq. (26)
    is the tail mass of ``u`` from ``k`` on; the case ``k = 1`` is the claim.
    """
    n = _check_n(n, 1)
    if builder is _u_entries:
        return _cached(_unit_norm, n, _u_entries)
    return _unit_norm(n, builder)



def _unit_norm(n: int, builder) -> Derivation:
    theta = angle_symbols(n)
    u = sp.ImmutableMatrix(builder(theta))
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
        statement=(f"For n = {n} and every real θ ∈ R^{n - 1}, u(θ) has unit length: summing "
                   "the squares from the last coordinate inwards telescopes (cos² + sin² = 1)."),
        lhs=lhs, rhs=rhs, holds=bool(ok), steps=(("u(θ)", u), *steps),
    )


def _metric_closed_form(n: int, entry: MetricEntry = metric_entry) -> sp.ImmutableMatrix:
    theta = angle_symbols(n)
    return sp.ImmutableMatrix(sp.diag(*[entry(theta, k) for k in range(1, n)]))


def metric_tensor(n: int, entry: MetricEntry = metric_entry,
                  builder: UnitVectorBuilder = _u_entries) -> Derivation:
    """``G = JᵀJ`` of ``u(θ)`` (``J = ∂u/∂θ``, ``n × (n-1)``) equals
    ``diag(1, sin²θ₁, sin²θ₁sin²θ₂, …, ∏_{j≤n-2} sin²θ_j)`` (Eq. 26).

    ``lhs`` is ``JᵀJ`` exactly as differentiated from ``builder(θ)`` (not simplified);
    ``rhs`` has diagonal ``entry(θ, k)``. Every entry is checked with
    :func:`trig_identity_holds`. Takes < 1 s for ``n ≤ 7``.
    """
    n = _check_n(n, 2)
    if entry is metric_entry and builder is _u_entries:
        return _cached(_metric_tensor, n, metric_entry, _u_entries)
    return _metric_tensor(n, entry, builder)



def _metric_tensor(n: int, entry, builder) -> Derivation:
    theta = angle_symbols(n)
    u = sp.ImmutableMatrix(builder(theta))
    J = u.jacobian(theta)
    lhs = sp.ImmutableMatrix(J.T * J)
    rhs = _metric_closed_form(n, entry)
    ok = verify(lhs, rhs, theta)
    return Derivation(
        name="Metric tensor of hyperspherical coordinates",
        statement=(f"For n = {n}, the pullback metric G = JᵀJ of u(θ) is diagonal with entries "
                   "1, sin²θ₁, sin²θ₁sin²θ₂, …, ∏_{j≤n-2} sin²θ_j."),
        lhs=lhs, rhs=rhs, holds=bool(ok),
        steps=(("u(θ)", u), ("J = ∂u/∂θ", sp.ImmutableMatrix(J))),
    )


def _default_corner(t1: sp.Symbol) -> sp.Expr:
    return -sp.sin(t1)


def _default_factor(t1: sp.Symbol) -> sp.Expr:
    return sp.sin(t1) ** 2


def _default_split(t1: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """The recursion ``u⁽ⁿ⁾ = (a(θ₁), s(θ₁)·u⁽ⁿ⁻¹⁾)`` of Eqs. (10)-(11): ``(cos θ₁, sin θ₁)``."""
    return sp.cos(t1), sp.sin(t1)


def _default_blocks(t1: sp.Symbol, u: Any, Jp: Any, corner=_default_corner
                    ) -> tuple[sp.Expr, Any, Any]:
    """The claimed block form ``J = [[corner, 0], [cos θ₁·u', sin θ₁·J']]``: returns the
    corner, the lower-left block and the lower-right block (the upper-right block is 0)."""
    return corner(t1), sp.cos(t1) * u, sp.sin(t1) * Jp


def _split_matches_definition(split=_default_split) -> bool:
    """``u⁽ⁿ⁾(θ₁, θ') = (a(θ₁), s(θ₁)·u⁽ⁿ⁻¹⁾(θ'))`` entry by entry against Eqs. (10)-(11),
    for ``n = 2, …, 7``: the recursion is derived from the definition, not assumed."""
    for n in range(2, 8):
        theta = angle_symbols(n)
        a, sc = split(theta[0])
        rec = [a] + [sc * e for e in _u_entries(theta[1:])]
        if any(sp.expand(x - y) != 0 for x, y in zip(_u_entries(theta), rec, strict=True)):
            return False
    return True


def _jacobian_entries(corner=_default_corner, split=_default_split
                      ) -> dict[str, sp.Expr] | None:
    """The four kinds of entries of ``J``, differentiated by SymPy, for every size.

    ``u = (a(θ₁), s(θ₁)·u'_1, …, s(θ₁)·u'_k)`` (``(a, s) = split(θ₁)``, by default
    ``(cos θ₁, sin θ₁)``) with ``u'_i`` a generic (undefined) function of the other angles.
    Whatever ``k`` and ``i``, ``J`` has four kinds of entries: ``∂a/∂θ₁`` (the corner),
    ``∂a/∂θ'_j``, ``∂(s u'_i)/∂θ₁ = (left)·u'_i`` and ``∂(s u'_i)/∂θ'_j = (right)·∂_j u'_i``.
    SymPy differentiates each once, for a generic entry, which covers every ``k``.

    Returns:
        ``{"corner", "top", "left", "right"}`` (scalar functions of ``θ₁``: the corner, the
        upper-right entry, and the coefficients of ``u'`` and ``J'``), or None when the
        derivatives do not have this form or the corner is not ``corner(θ₁)`` (the paper's
        ``-sin θ₁``; an argument so that tests can pass a wrong one).
    """
    t1, ta, tb = sp.symbols("theta_1 theta_a theta_b", real=True)
    f = sp.Function("f_i", real=True)(ta, tb)
    a, sc = split(t1)
    top = sp.diff(a, ta)
    left = sp.simplify(sp.diff(sc * f, t1) / f)
    right = sp.simplify(sp.diff(sc * f, ta) / sp.diff(f, ta))
    entries = {"corner": sp.diff(a, t1), "top": top, "left": left, "right": right}
    if any(e.has(ta, tb) for e in entries.values()) or top != 0:
        return None
    if sp.simplify(entries["corner"] - corner(t1)) != 0:
        return None
    return entries


def _same_block(got: Any, want: Any) -> bool:
    """Blocks of symbolic size (or scalars) equal: their difference simplifies to 0."""
    d = sp.simplify(got - want)
    if isinstance(d, sp.MatrixBase):
        return all(sp.simplify(x) == 0 for x in d)
    return d == 0 or getattr(d, "is_ZeroMatrix", False) is True


def _induction_generic(k: int, factor: sp.Expr | None = None, corner=_default_corner,
                       split=_default_split, blocks=_default_blocks) -> bool:
    """Concrete check of the induction step for ``u' ∈ R^k`` built from generic functions.

    ``u' = (f_1(θ'), …, f_k(θ'))`` with undefined real functions of ``θ' ∈ R^{k-1}``;
    ``u = (a, s·u')`` from ``split``; ``J`` is obtained by SymPy's differentiation and
    compared with the claimed block form ``blocks`` (default
    ``[[corner(θ₁), 0], [cos θ₁·u', sin θ₁·J']]``). With ``h₀ = u'ᵀu' - 1`` and
    ``h_j = u'ᵀ ∂_j u'`` (both 0 under the hypothesis ``‖u'‖ ≡ 1``) the difference
    ``JᵀJ - diag(1, factor·J'ᵀJ')`` must equal ``cos²θ₁ h₀`` in the corner,
    ``sinθ₁cosθ₁ h_j`` in the first row and column, and 0 elsewhere, exactly.
    """
    t1 = sp.Symbol("theta_1", real=True)
    tp = [sp.Symbol(f"theta_{i}", real=True) for i in range(2, k + 1)]
    f = sp.Matrix([sp.Function(f"f_{i}", real=True)(*tp) for i in range(1, k + 1)])
    a, sc = split(t1)
    U = sp.Matrix([a] + [sc * fi for fi in f])
    J = U.jacobian([t1, *tp])
    Jp = f.jacobian(tp)
    c0, lb, rb = blocks(t1, f, Jp, corner)
    block = sp.Matrix(sp.BlockMatrix([[sp.Matrix([[c0]]), sp.zeros(1, k - 1)],
                                      [sp.Matrix(lb), sp.Matrix(rb)]]))
    if (J - block).applyfunc(sp.expand) != sp.zeros(k + 1, k):
        return False
    factor = sp.sin(t1) ** 2 if factor is None else factor  # anything else: negative control
    D = (J.T * J - sp.diag(1, factor * (Jp.T * Jp))).applyfunc(sp.expand)
    h0 = _dot(f, f) - 1
    scs = sp.sin(t1) * sp.cos(t1)
    if not trig_identity_holds(D[0, 0] - sp.cos(t1) ** 2 * h0, (t1,)):
        return False
    for j in range(k - 1):
        hj = _dot(f, Jp[:, j])
        if sp.expand(D[0, j + 1] - scs * hj) != 0 or sp.expand(D[j + 1, 0] - scs * hj) != 0:
            return False
    return all(D[i, j] == 0 for i in range(1, k) for j in range(1, k))


def _induction_setup(corner=_default_corner, factor=_default_factor, split=_default_split,
                     blocks=_default_blocks):
    """Objects of the induction step with ``u' ∈ R^k``, ``k`` a symbolic size.

    ``J`` is *assembled from the entries* that :func:`_jacobian_entries` differentiates
    (None if they are not of block form); ``J_claimed`` is the block form as stated
    (``blocks``); ``U = (a, s·u')`` from ``split``.
    """
    k = sp.Symbol("k", integer=True, positive=True)
    t1 = sp.Symbol("theta_1", real=True)
    u = sp.MatrixSymbol("u'", k, 1)
    Jp = sp.MatrixSymbol("J'", k, k - 1)
    Gp = sp.MatrixSymbol("G'", k - 1, k - 1)
    ent = _jacobian_entries(corner, split)
    c0, lb, rb = blocks(t1, u, Jp, corner)
    J_claimed = sp.BlockMatrix([[sp.ImmutableMatrix([[c0]]), sp.ZeroMatrix(1, k - 1)],
                                [lb, rb]])
    a, sc = split(t1)
    U = sp.BlockMatrix([[sp.ImmutableMatrix([[a]])], [sc * u]])
    if ent is None:
        J = lhs = None
    else:
        e = {key: val.subs(sp.Symbol("theta_1", real=True), t1) for key, val in ent.items()}
        J = sp.BlockMatrix([[sp.ImmutableMatrix([[e["corner"]]]), sp.ZeroMatrix(1, k - 1)],
                            [e["left"] * u, e["right"] * Jp]])
        lhs = sp.block_collapse(J.T * J)
    rhs = sp.BlockMatrix([[sp.Identity(1), sp.ZeroMatrix(1, k - 1)],
                          [sp.ZeroMatrix(k - 1, 1), factor(t1) * Gp]])
    return k, t1, u, Jp, Gp, J, J_claimed, U, lhs, rhs


def _same_jacobian(J: Any, J_claimed: Any) -> bool:
    """The assembled (derived) ``J`` and the claimed block form agree block by block."""
    if J is None:
        return False
    return all(_same_block(J.blocks[i, j], J_claimed.blocks[i, j])
               for i in range(2) for j in range(2))


def _induction_symbolic(hypotheses: bool = True, corner=_default_corner,
                        factor=_default_factor, split=_default_split,
                        blocks=_default_blocks) -> bool:
    """Blockwise check of ``JᵀJ = diag(1, sin²θ₁ G')`` for symbolic ``k``, with ``J``
    assembled from the derived entries, using H1 and H2 only if ``hypotheses`` (without
    them it must fail: a negative control)."""
    k, t1, u, Jp, Gp, J, _, _, lhs, rhs = _induction_setup(corner, factor, split, blocks)
    if lhs is None:
        return False
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


def _norm_step(corner=_default_corner, split=_default_split) -> bool:
    """``‖u‖² = a² + s²·u'ᵀu' = 1`` under H1, for symbolic size, with ``U = (a, s·u')``
    taken from ``split`` (the same object whose Jacobian is checked)."""
    k = sp.Symbol("k", integer=True, positive=True)
    t1 = sp.Symbol("theta_1", real=True)
    u = sp.MatrixSymbol("u'", k, 1)
    a, sc = split(t1)
    U = sp.BlockMatrix([[sp.ImmutableMatrix([[a]])], [sc * u]])
    sq = sp.block_collapse(U.T * U).subs({u.T * u: sp.Identity(1)})
    val = sp.ImmutableMatrix(sp.Matrix(sq.as_explicit()))[0, 0]
    return trig_identity_holds(val - 1, (t1,))


def metric_induction_step(corner: Callable[[sp.Symbol], sp.Expr] = _default_corner,
                          factor: Callable[[sp.Symbol], sp.Expr] = _default_factor,
                          split: Callable[[sp.Symbol], tuple[sp.Expr, sp.Expr]]
                          = _default_split,
                          blocks: Callable[..., tuple[sp.Expr, Any, Any]] = _default_blocks
                          ) -> Derivation:
    """Induction step ``G⁽ⁿ⁾ = diag(1, sin²θ₁·G⁽ⁿ⁻¹⁾)``, for every ``n ≥ 3``.

    Recursion: ``u⁽ⁿ⁾(θ₁, θ') = (cos θ₁, sin θ₁·u'(θ'))`` with ``u' = u⁽ⁿ⁻¹⁾ ∈ R^k``,
    ``k = n-1`` (``split``; checked entry by entry against Eqs. 10-11 for ``n ≤ 7``).
    Assumed, and nothing else:

    - (H1) ``u'ᵀu' = 1`` for all ``θ'`` (induction hypothesis; the step
      ``cos²θ₁ + sin²θ₁·u'ᵀu' = 1`` carrying it to ``u`` is verified for symbolic ``k``);
    - (H2) ``u'ᵀJ' = 0`` with ``J' = ∂u'/∂θ'`` (H1 differentiated);
    - ``G⁽ⁿ⁻¹⁾ := J'ᵀJ'``.

    Derived, not assumed: the Jacobian. SymPy differentiates the four kinds of entries of
    ``u = (cos θ₁, sin θ₁·u')`` for a generic entry of ``u'`` (valid for every ``k``);
    ``J`` is *assembled from those entries* and compared block by block with the stated
    block form ``[[-sin θ₁, 0], [cos θ₁·u', sin θ₁·J']]`` (``J`` itself, not only
    ``JᵀJ``, which cannot see a sign flip of a block once H2 is assumed); for
    ``k = 2, …, 6`` the whole ``u`` built from undefined functions is differentiated again.
    ``lhs`` is ``JᵀJ`` of the assembled ``J`` from SymPy's block algebra with ``u'``, ``J'``
    matrix symbols of symbolic size ``k``; ``holds`` requires every block to reduce to
    ``rhs`` under H1, H2, and the concrete re-derivation to agree. ``corner``, ``factor``
    (``sin²θ₁``), ``split`` (``(cos θ₁, sin θ₁)``) and ``blocks`` (the stated block form)
    are arguments only so that tests can pass wrong ones. With the base case
    ``G⁽²⁾ = (1)`` this gives Eq. (26) for every ``n`` by induction (the induction
    principle itself is applied on paper, not by SymPy).
    """
    if (corner is _default_corner and factor is _default_factor
            and split is _default_split and blocks is _default_blocks):
        return _cached(_metric_induction_step, _default_corner, _default_factor,
                       _default_split, _default_blocks)
    return _metric_induction_step(corner, factor, split, blocks)



def _metric_induction_step(corner, factor, split=_default_split,
                           blocks=_default_blocks) -> Derivation:
    k, t1, u, Jp, Gp, J, J_claimed, U, lhs, rhs = _induction_setup(corner, factor, split,
                                                                    blocks)
    ok = (metric_tensor(2).holds  # base case G⁽²⁾ = (1)
          and _split_matches_definition(split)
          and _jacobian_entries(corner, split) is not None
          and _same_jacobian(J, J_claimed)
          and _norm_step(corner, split)
          and _induction_symbolic(True, corner, factor, split, blocks)
          and all(_induction_generic(kk, factor(t1), corner, split, blocks)
                  for kk in range(2, 7)))
    return Derivation(
        name="Metric tensor: induction step",
        statement=("If u' is a unit-vector function of θ' with Jacobian J' (so u'ᵀu' = 1 and "
                   "u'ᵀJ' = 0) and G' = J'ᵀJ', then u = (cos θ₁, sin θ₁·u') is a unit vector "
                   "with metric JᵀJ = diag(1, sin²θ₁·G'), for u' of any size k (symbolic; J "
                   "assembled from its differentiated entries); re-derived by "
                   "differentiation for k = 2..6."),
        lhs=lhs if lhs is not None else sp.Symbol("J^T J"), rhs=rhs, holds=bool(ok),
        steps=(("u (recursion, checked against Eqs. 10-11)", U),
               ("Jacobian (assembled from derived entries)",
                J if J is not None else J_claimed),
               ("hypothesis H1", _eq(u.T * u, sp.Identity(1))),
               ("hypothesis H2", _eq(u.T * Jp, sp.ZeroMatrix(1, k - 1))),
               ("definition", _eq(Gp, Jp.T * Jp)),
               ("base case n = 2", _eq(metric_tensor(2).lhs, sp.ImmutableMatrix([[1]])))),
    )


def _sos_witness(theta: tuple[sp.Symbol, ...], i: int) -> sp.Expr:
    """``Σ_{k<i} cos²θ_k ∏_{j<k} sin²θ_j``: a sum of squares equal to ``1 - G_ii``."""
    return sp.Add(*[(sp.cos(theta[k - 1]) * sp.Mul(*[sp.sin(t) for t in theta[: k - 1]])) ** 2
                    for k in range(1, i)])


def metric_bound(n: int, entry: MetricEntry = metric_entry, bound: sp.Expr | int = 1
                 ) -> Derivation:
    """Thm 3.7: ``εᵀGε ≤ bound·‖ε‖²`` (``bound = 1``) for the metric of ``u(θ) ∈ S^{n-1}``.

    ``lhs = bound·‖ε‖² - εᵀGε`` with ``G = JᵀJ`` as differentiated by SymPy (the ``lhs`` of
    :func:`metric_tensor`), ``rhs = Σ_i ε_i² (1 - g_i)`` with ``g_i = entry(θ, i)``
    (Eq. 26: ``∏_{j<i} sin²θ_j``). Verified: ``lhs = rhs``; and for *each coefficient that
    is actually there* — the coefficient of ``ε_i²`` in ``lhs`` and in ``rhs``
    (``expr.coeff(ε_i²)``), with no cross terms ``ε_iε_j`` — that it equals the sum of
    squares ``Σ_{k<i} cos²θ_k ∏_{j<k} sin²θ_j`` (``≥ 0``; SymPy's assumptions confirm the
    sign), and that ``g_i`` is a product of squares (``≥ 0``). So ``0 ≤ g_i ≤ 1``, every
    term of ``lhs`` is ``≥ 0``, and the first-order angle ``sqrt(εᵀGε)`` is at most
    ``‖ε‖``. ``entry`` and ``bound`` are arguments so that tests can pass wrong ones
    (``bound = 1/2`` claims the false ``εᵀGε ≤ ‖ε‖²/2``).
    """
    n = _check_n(n, 2)
    if entry is metric_entry and sp.sympify(bound) == 1:
        return _cached(_metric_bound, n, metric_entry, sp.Integer(1))
    return _metric_bound(n, entry, sp.sympify(bound))



def _metric_bound(n: int, entry, bound: sp.Expr | int = 1) -> Derivation:
    bound = sp.sympify(bound)
    theta = angle_symbols(n)
    eps = _vector("epsilon", n - 1)
    G = metric_tensor(n).lhs  # differentiated, not the closed form
    lhs = bound * _dot(eps, eps) - _dot(eps, G * eps)
    g = [entry(theta, i) for i in range(1, n)]
    rhs = sp.Add(*[eps[i] ** 2 * (bound - g[i]) for i in range(n - 1)])
    ok = trig_identity_holds(lhs - rhs, theta)
    lhs_e, rhs_e = sp.expand(lhs), sp.expand(rhs)
    for i in range(n - 1):
        for j in range(i + 1, n - 1):  # no cross terms: the form is diagonal
            ok = ok and trig_identity_holds(lhs_e.coeff(eps[i]).coeff(eps[j]), theta)
    steps: list[Step] = []
    for i in range(1, n):  # 1-based index of ε_i
        sos = _sos_witness(theta, i)
        e2 = eps[i - 1] ** 2
        for side in (lhs_e, rhs_e):  # the coefficients actually on each side
            ok = ok and trig_identity_holds(side.coeff(e2) - sos, theta)
        ok = (ok and sp.sympify(g[i - 1]).is_nonnegative is True
              and (sos == 0 or sos.is_nonnegative is True))
        steps.append((f"g_{i} = G_{i}{i}", _eq(sp.Symbol(f"g_{i}"), g[i - 1])))
        steps.append((f"coefficient of ε_{i}² as a sum of squares",
                      _eq(rhs_e.coeff(e2), sos)))
    c = "" if bound == 1 else f"{bound}·"
    return Derivation(
        name="Theorem 3.7",
        statement=(f"For n = {n}, {c}‖ε‖² - εᵀGε = Σ_i ε_i²({bound} - g_i) with each g_i = "
                   "∏_{j<i} sin²θ_j, and each coefficient of ε_i² on both sides is a sum of "
                   f"squares, so εᵀGε ≤ {c}‖ε‖²: the first-order change sqrt(εᵀGε) of the CAB "
                   f"direction is at most {'sqrt(' + str(bound) + ')·' if c else ''}‖ε‖."),
        lhs=lhs, rhs=rhs, holds=bool(ok), steps=tuple(steps),
    )


def metric_bound_numeric(n: int, seed: int = 0) -> dict[str, Any]:
    """Numerical companion of Thm 3.7 with :mod:`gmp.geometry` in float64.

    Draws ``θ`` as the angles of a uniformly distributed direction on ``S^{n-1}``
    (:func:`gmp.geometry.angles` of a standard Gaussian vector; *not* ``θ ~ U(-π, π)``,
    which crowds ``u`` towards the first axes) and a unit direction ``ε̂``, and for
    ``t = 1e-1, …, 1e-6`` computes the chord ratio ``‖u(θ + tε̂) - u(θ)‖ / t``, which
    tends to ``limit = sqrt(ε̂ᵀG(θ)ε̂) ≤ 1`` as ``t → 0`` (error ``O(t)``).

    Returns:
        dict with ``n``, ``seed``, ``theta (n-1,)``, ``direction (n-1,)``, ``scales (6,)``,
        ``ratios (6,)``, ``errors (6,) = |ratio - limit|``, ``limit`` and ``bound = 1.0``
        (arrays are float64 numpy).
    """
    n = _check_n(n, 2)
    gen = torch.Generator().manual_seed(int(seed))
    theta = geometry.angles(torch.randn(n, generator=gen, dtype=torch.float64))[0]
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
