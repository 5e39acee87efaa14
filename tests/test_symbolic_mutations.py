"""Mutation tests for gmp.symbolic: every check must reject a wrong formula.

Each derivation takes its formula (or model) as an argument; here each one is handed
mutated versions — a wrong power, a dropped normalization, sin and cos swapped, a wrong
sign — and must report ``holds is False``. The unmutated default must hold (so a check
that rejects everything fails these tests too). Mutations that leave the claim true (a
sign flip of ``u``'s coordinate does not change ``‖u‖``) are not listed: a check may not
reject a true statement.
"""

from __future__ import annotations

import pytest
import sympy as sp

from gmp import symbolic as S
from gmp.symbolic import _dot, _norm

N_PROP = 2  # dimension for Props. 2.3-2.5


# --- Prop. 2.3, Eq. (7) -----------------------------------------------------------------
EQ7_MUTATIONS = {
    "wrong power": lambda w, e: _dot(w, w + e) / (_norm(w) * _norm(w + e)) ** 2,
    "dropped normalization": lambda w, e: _dot(w, w + e),
    "dropped ‖w+ε‖": lambda w, e: _dot(w, w + e) / _norm(w) ** 2,
    "wrong sign": lambda w, e: -S.eq7(w, e),
    "ε in place of w+ε": lambda w, e: _dot(w, e) / (_norm(w) * _norm(e)),
}


def test_eq7_default_holds():
    assert S.cab_direction_change(N_PROP, S.eq7).holds is True
    # a new callable with the same formula is checked afresh, not served from the cache
    assert S.cab_direction_change(N_PROP, lambda w, e: S.eq7(w, e)).holds is True


@pytest.mark.parametrize("name", EQ7_MUTATIONS)
def test_eq7_mutations_rejected(name):
    assert S.cab_direction_change(N_PROP, EQ7_MUTATIONS[name]).holds is False


@pytest.mark.parametrize("name,perturbation", [
    ("wrong sign", lambda w, d: (1 + d) * w),
    ("dropped 1", lambda w, d: -d * w),
    ("wrong sign of δ", lambda w, d: -(1 - d) * w),
    ("wrong power", lambda w, d: -(1 + d) ** 2 * w),
])
def test_flip_mutations_rejected(name, perturbation):
    assert S.sp_flip(N_PROP, perturbation).holds is False


# --- Prop. 2.4: weight normalization ----------------------------------------------------
@pytest.mark.parametrize("name,weight", [
    ("dropped normalization", lambda g, v: g * v),
    ("wrong power", lambda g, v: g * v / _norm(v) ** 2),
    ("wrong power of g", lambda g, v: g**2 * v / _norm(v)),
])
def test_wn_model_mutations_rejected(name, weight):
    assert S.wn_direction_change(N_PROP, weight=weight).holds is False


@pytest.mark.parametrize("name", ["wrong power", "dropped normalization", "wrong sign"])
def test_wn_formula_mutations_rejected(name):
    assert S.wn_direction_change(N_PROP, formula=EQ7_MUTATIONS[name]).holds is False


def test_wn_default_holds_with_fresh_callables():
    d = S.wn_direction_change(N_PROP, weight=lambda g, v: g * v / _norm(v))
    assert d.holds is True


# --- Prop. 2.5: batch normalization -----------------------------------------------------
@pytest.mark.parametrize("name,scale", [
    ("dropped data covariance (‖w‖)", lambda w, sigma: _norm(w)),
    ("arbitrary positive scalar", lambda w, sigma: sp.Symbol("a", positive=True)),
    ("wrong power (no square root)", lambda w, sigma: _dot(w, sigma * w)),
    ("wrong sign", lambda w, sigma: -sp.sqrt(_dot(w, sigma * w))),
    ("dropped normalization", lambda w, sigma: sp.Integer(1)),
])
def test_bn_scale_mutations_rejected(name, scale):
    assert S.bn_direction_change(N_PROP, scale=scale).holds is False


def test_bn_formula_mutation_rejected_and_default_holds():
    assert S.bn_direction_change(N_PROP, formula=EQ7_MUTATIONS["wrong sign"]).holds is False
    fresh = S.bn_direction_change(N_PROP, scale=lambda w, sigma: sp.sqrt(_dot(w, sigma * w)))
    assert fresh.holds is True


# --- hyperspherical coordinates ---------------------------------------------------------
def _swap_last(theta):
    u = S._u_entries(theta)
    u[-1] = sp.Mul(*[sp.cos(t) for t in theta])  # cos in place of sin
    return u


def _wrong_power(theta):
    u = S._u_entries(theta)
    u[-1] = u[-1] ** 2
    return u


def _swap_first(theta):
    u = S._u_entries(theta)
    u[0] = sp.sin(theta[0])  # sin θ₁ in place of cos θ₁: ‖u‖ ≠ 1
    return u


U_MUTATIONS = {"swapped sin/cos (last)": _swap_last, "wrong power": _wrong_power,
               "swapped sin/cos (first)": _swap_first}


@pytest.mark.parametrize("name", U_MUTATIONS)
@pytest.mark.parametrize("n", [3, 5])
def test_unit_norm_mutations_rejected(name, n):
    assert S.unit_norm(n, U_MUTATIONS[name]).holds is False
    assert S.unit_norm(n, lambda th: S._u_entries(th)).holds is True


G_MUTATIONS = {
    "wrong power": lambda th, k: sp.Mul(*[sp.sin(t) for t in th[: k - 1]]),
    "swapped sin/cos": lambda th, k: sp.Mul(*[sp.cos(t) ** 2 for t in th[: k - 1]]),
    "dropped factors": lambda th, k: sp.sin(th[k - 2]) ** 2 if k > 1 else sp.Integer(1),
    "wrong sign": lambda th, k: -S.metric_entry(th, k) if k > 1 else sp.Integer(1),
    "off by one": lambda th, k: S.metric_entry(th, k + 1) if k < len(th) else sp.Integer(1),
}


@pytest.mark.parametrize("name", G_MUTATIONS)
@pytest.mark.parametrize("n", [4, 6])  # n = 3 has no second factor to drop
def test_metric_tensor_mutations_rejected(name, n):
    assert S.metric_tensor(n, entry=G_MUTATIONS[name]).holds is False
    assert S.metric_tensor(n, entry=lambda th, k: S.metric_entry(th, k)).holds is True


@pytest.mark.parametrize("name", ["swapped sin/cos (last)", "swapped sin/cos (first)"])
def test_metric_tensor_model_mutations_rejected(name):
    assert S.metric_tensor(4, builder=U_MUTATIONS[name]).holds is False


@pytest.mark.parametrize("name", G_MUTATIONS)
def test_metric_bound_mutations_rejected(name):
    assert S.metric_bound(4, entry=G_MUTATIONS[name]).holds is False
    assert S.metric_bound(4, entry=lambda th, k: S.metric_entry(th, k)).holds is True


# --- induction step ---------------------------------------------------------------------
@pytest.mark.parametrize("name,corner,factor", [
    ("wrong sign of the corner of J", lambda t: sp.sin(t), None),
    ("swapped sin/cos in the corner", lambda t: -sp.cos(t), None),
    ("swapped sin/cos in the factor", None, lambda t: sp.cos(t) ** 2),
    ("wrong power of the factor", None, lambda t: sp.sin(t)),
    ("dropped factor", None, lambda t: sp.Integer(1)),
])
def test_induction_mutations_rejected(name, corner, factor):
    kwargs = {}
    if corner is not None:
        kwargs["corner"] = corner
    if factor is not None:
        kwargs["factor"] = factor
    assert S.metric_induction_step(**kwargs).holds is False


def test_induction_fresh_defaults_hold():
    d = S.metric_induction_step(corner=lambda t: -sp.sin(t), factor=lambda t: sp.sin(t) ** 2)
    assert d.holds is True
    assert S._jacobian_entries(lambda t: sp.sin(t)) is None
    assert S._norm_step() is True


# --- issue #23, item 9(a): J and U of the symbolic-size step are derived, not typed ------
def _blocks(corner_sign=1, left_sign=1, right_sign=1):
    def blocks(t, u, Jp, corner):
        return corner_sign * corner(t), left_sign * sp.cos(t) * u, right_sign * sp.sin(t) * Jp
    return blocks


BLOCK_MUTATIONS = {
    "sign of the corner of J": dict(blocks=_blocks(corner_sign=-1)),
    "sign of the lower-left block of J": dict(blocks=_blocks(left_sign=-1)),
    "sign of the lower-right block of J": dict(blocks=_blocks(right_sign=-1)),
    "signs of both lower blocks of J": dict(blocks=_blocks(left_sign=-1, right_sign=-1)),
    "U = (sin θ₁, cos θ₁·u')": dict(split=lambda t: (sp.sin(t), sp.cos(t))),
    "U = (sin θ₁, cos θ₁·u') with a matching J": dict(
        split=lambda t: (sp.sin(t), sp.cos(t)), corner=lambda t: sp.cos(t),
        blocks=lambda t, u, Jp, c: (sp.cos(t), -sp.sin(t) * u, sp.cos(t) * Jp)),
    "U = (cos θ₁, -sin θ₁·u')": dict(split=lambda t: (sp.cos(t), -sp.sin(t))),
}


def _symbolic_size_only(corner=S._default_corner, factor=S._default_factor,
                        split=S._default_split, blocks=S._default_blocks) -> bool:
    """The checks for a symbolic size k alone (no re-derivation for k = 2..6)."""
    *_, J, J_claimed, _, _, _ = S._induction_setup(corner, factor, split, blocks)
    return (S._jacobian_entries(corner, split) is not None
            and S._same_jacobian(J, J_claimed) and S._norm_step(corner, split)
            and S._induction_symbolic(True, corner, factor, split, blocks))


@pytest.mark.parametrize("name", BLOCK_MUTATIONS)
def test_induction_block_mutations_rejected(name):
    kwargs = BLOCK_MUTATIONS[name]
    assert S.metric_induction_step(**kwargs).holds is False
    # and the symbolic-size part rejects it by itself: it compares J, not only JᵀJ
    assert _symbolic_size_only(**kwargs) is False


def test_jtj_alone_cannot_see_a_block_sign_flip():
    """Why J itself is compared: with H2, JᵀJ of a sign-flipped J is still diag(1, sin²G')."""
    import sympy as sp_
    k, t1, u, Jp, Gp, J, _, _, _, rhs = S._induction_setup()
    flipped = sp_.BlockMatrix([[J.blocks[0, 0], J.blocks[0, 1]],
                               [-J.blocks[1, 0], J.blocks[1, 1]]])
    gram = sp_.block_collapse(flipped.T * flipped)
    hyp = {u.T * u: sp_.Identity(1), u.T * Jp: sp_.ZeroMatrix(1, k - 1),
           Jp.T * u: sp_.ZeroMatrix(k - 1, 1)}
    assert sp_.simplify(gram.blocks[1, 0].subs(hyp)).is_ZeroMatrix
    assert S._same_jacobian(J, flipped) is False


def test_induction_symbolic_size_default_holds():
    assert _symbolic_size_only() is True
    assert S._split_matches_definition() is True
    assert S._split_matches_definition(lambda t: (sp.sin(t), sp.cos(t))) is False


# --- issue #23, item 9(b): the coefficients actually on each side are the SOS witnesses ---
@pytest.mark.parametrize("bound", [sp.Rational(1, 2), sp.Rational(9, 10), sp.Integer(0)])
@pytest.mark.parametrize("n", [2, 4])
def test_metric_bound_wrong_constant_rejected(n, bound):
    """εᵀGε ≤ c‖ε‖² with c < 1 is false (θ = 0, ε = e₁ gives c - 1 < 0); lhs = rhs still
    holds with c on both sides, so only the coefficient check can reject it."""
    d = S.metric_bound(n, bound=bound)
    assert d.holds is False
    assert S.verify(d.lhs, d.rhs, S.angle_symbols(n)) is True
    theta0 = dict.fromkeys(S.angle_symbols(n), 0)
    eps1 = {sp.Symbol(f"epsilon_{i}", real=True): int(i == 1) for i in range(1, n)}
    assert sp.simplify(d.lhs.subs(theta0).subs(eps1)) == bound - 1 < 0


def test_metric_bound_default_and_fresh_hold():
    assert S.metric_bound(3).holds is True
    assert S.metric_bound(3, bound=sp.Integer(1)).holds is True
    assert "1/2" in S.metric_bound(3, bound=sp.Rational(1, 2)).statement
