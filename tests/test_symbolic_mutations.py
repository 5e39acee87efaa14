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
    assert S._jacobian_entries(lambda t: sp.sin(t)) is False
    assert S._norm_step() is True
