"""Tests of gmp.symbolic: every derivation verifies, cross-checks against gmp.geometry and
autograd, pinned SymPy behaviour (expressions, never printed strings), negative controls."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import sympy as sp
import torch

from gmp import geometry
from gmp import symbolic as S

F64 = torch.float64


# ---------------------------------------------------------------------------------------
# every derivation holds
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3])
def test_direction_change_propositions_hold(n):
    for fn in (S.cab_direction_change, S.sp_flip, S.wn_direction_change,
               S.bn_direction_change):
        d = fn(n)
        assert isinstance(d, S.Derivation)
        assert d.holds is True, (fn.__name__, n)
        assert d.name.startswith("Proposition 2.")


@pytest.mark.parametrize("n", range(1, 8))
def test_unit_norm_holds(n):
    d = S.unit_norm(n)
    assert d.holds is True and d.rhs == 1


@pytest.mark.parametrize("n", range(2, 8))
def test_metric_tensor_holds(n):
    d = S.metric_tensor(n)
    assert d.holds is True
    assert d.lhs.shape == d.rhs.shape == (n - 1, n - 1)


@pytest.mark.parametrize("n", range(2, 6))
def test_metric_bound_holds(n):
    d = S.metric_bound(n)
    assert d.holds is True and d.name == "Theorem 3.7"


def test_metric_induction_step_holds():
    d = S.metric_induction_step()
    assert d.holds is True
    assert isinstance(d.lhs, sp.BlockMatrix) and isinstance(d.rhs, sp.BlockMatrix)


def test_derivations_bundle():
    ds = S.derivations(3)
    assert len(ds) == 8 and all(d.holds for d in ds)


# ---------------------------------------------------------------------------------------
# cross-checks: symbolic G = geometry.metric_tensor = autograd JᵀJ
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", range(2, 8))
def test_metric_cross_check(n):
    gen = torch.Generator().manual_seed(n)
    theta = (torch.rand(5, n - 1, generator=gen, dtype=F64) * 2 - 1) * 4.0
    g_sym = S.metric_tensor_numeric(theta)
    g_geo = geometry.metric_tensor(theta)
    # jacrev per sample (geometry.unit_vector's custom backward has no vmap rule)
    J = torch.stack([torch.func.jacrev(geometry.unit_vector)(t) for t in theta])  # (5, n, n-1)
    g_ad = J.transpose(-1, -2) @ J
    assert g_sym.shape == (5, n - 1, n - 1) and g_sym.dtype == F64
    torch.testing.assert_close(g_sym, g_geo, rtol=0, atol=1e-14)
    torch.testing.assert_close(g_sym, g_ad, rtol=0, atol=1e-14)


def test_metric_tensor_numeric_shapes_and_errors():
    assert S.metric_tensor_numeric(torch.zeros(3, dtype=F64)).shape == (3, 3)
    assert S.metric_tensor_numeric(torch.zeros(2, 4, 1)).dtype == torch.float32
    with pytest.raises(ValueError, match="n >= 2"):
        S.metric_tensor_numeric(torch.zeros(4, 0))


@pytest.mark.parametrize("n,seed", [(2, 0), (3, 1), (5, 2), (7, 3)])
def test_metric_bound_numeric_converges_below_one(n, seed):
    out = S.metric_bound_numeric(n, seed)
    assert out["scales"].tolist() == pytest.approx([1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
    assert 0.0 <= out["limit"] <= 1.0
    # chord ≤ arc ≤ ‖ε‖: every ratio is bounded by 1, up to rounding of u(θ+tε) - u(θ)
    assert np.all(out["ratios"] <= 1.0 + 1e-15 / out["scales"])
    # first-order convergence: the error shrinks with the scale, ~1e-6 at the end
    assert out["errors"][-1] < 1e-5
    assert np.all(np.diff(out["errors"][:4]) < 0)


# ---------------------------------------------------------------------------------------
# pinned SymPy behaviour (expressions, not strings)
# ---------------------------------------------------------------------------------------
def test_pin_hyperspherical_unit_vector():
    t1, t2 = S.angle_symbols(3)
    assert t1.is_real and t2.is_real and t1.name == "theta_1"
    expected = sp.Matrix([sp.cos(t1), sp.sin(t1) * sp.cos(t2), sp.sin(t1) * sp.sin(t2)])
    assert S.hyperspherical_unit_vector(3) == expected
    assert S.hyperspherical_unit_vector(1) == sp.Matrix([1])
    # agrees numerically with gmp.geometry.unit_vector
    f = sp.lambdify((t1, t2), S.hyperspherical_unit_vector(3), "numpy")
    theta = torch.tensor([0.3, -2.0], dtype=F64)
    np.testing.assert_allclose(np.asarray(f(0.3, -2.0), float).ravel(),
                               geometry.unit_vector(theta).numpy(), rtol=0, atol=1e-15)


def test_pin_metric_closed_form():
    t1, t2, _ = S.angle_symbols(4)
    assert S.metric_tensor(4).rhs == sp.diag(1, sp.sin(t1) ** 2, sp.sin(t1) ** 2 * sp.sin(t2) ** 2)
    assert S.metric_tensor(2).rhs == sp.Matrix([[1]])


def test_pin_direction_change_forms():
    d = S.cab_direction_change(2)
    w1, w2, e1, e2 = sp.symbols("w_1 w_2 epsilon_1 epsilon_2", real=True)
    expected = (w1 * (w1 + e1) + w2 * (w2 + e2)) / (
        sp.sqrt(w1**2 + w2**2) * sp.sqrt((w1 + e1) ** 2 + (w2 + e2) ** 2))
    assert sp.simplify(d.rhs - expected) == 0
    flip = S.sp_flip(2)
    assert flip.rhs == -1 and sp.acos(flip.rhs) == sp.pi
    # the book's WN/BN cells compare against the SP form
    assert S.bn_direction_change(2).rhs == d.rhs


def test_pin_sympy_assumption_behaviour():
    # the checks rely on these automatic simplifications
    x, y = sp.symbols("x y", real=True)
    c = sp.Symbol("c", positive=True)
    assert sp.sqrt((x**2 + y**2) ** 2) == x**2 + y**2
    assert sp.sqrt(c**2 * (x**2 + y**2)) == c * sp.sqrt(x**2 + y**2)
    assert (sp.sin(x) ** 2 * sp.cos(y) ** 2).is_nonnegative is True
    assert (1 - sp.sin(x) ** 2).is_nonnegative is None  # hence the sum-of-squares route
    assert sp.sqrt(x**2) == sp.Abs(x)


def test_metric_bound_sum_of_squares_steps():
    t1, t2, _ = S.angle_symbols(4)
    steps = dict(S.metric_bound(4).steps)
    eq = steps["coefficient of ε_3² as a sum of squares"]
    assert eq.lhs == 1 - sp.sin(t1) ** 2 * sp.sin(t2) ** 2
    assert eq.rhs == sp.cos(t1) ** 2 + sp.sin(t1) ** 2 * sp.cos(t2) ** 2


def test_derivation_record_and_latex():
    d = S.metric_tensor(3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.holds = False  # type: ignore[misc]
    assert d._repr_latex_().startswith("$$ ") and d._repr_latex_().endswith(" $$")
    assert all(isinstance(label, str) and isinstance(expr, sp.Basic) for label, expr in d.steps)
    assert S.metric_tensor(3) is d  # cached


# ---------------------------------------------------------------------------------------
# negative controls
# ---------------------------------------------------------------------------------------
def test_wrong_rhs_gives_holds_false():
    t = S.angle_symbols(4)
    good = S.metric_tensor(4)
    wrong = sp.diag(1, sp.sin(t[0]) ** 2, sp.sin(t[1]) ** 2)  # a factor sin²θ₁ missing
    bad = S.Derivation.check("wrong", "a wrong metric", good.lhs, wrong, angles=t)
    assert bad.holds is False and r"\overset{?}{=}" in bad.latex()
    assert S.Derivation.check("right", "", good.lhs, good.rhs, angles=t).holds is True
    d = S.cab_direction_change(2)
    assert S.verify(d.lhs, d.rhs) is True
    assert S.verify(d.lhs, -d.rhs) is False
    assert S.verify(d.lhs, 1) is False
    assert S.verify(sp.Matrix([1, 2]), sp.Matrix([1])) is False


def test_trig_identity_decider():
    t1, t2 = S.angle_symbols(3)
    assert S.trig_identity_holds(sp.sin(t1) ** 2 + sp.cos(t1) ** 2 - 1, (t1,))
    assert S.trig_identity_holds(sp.sin(t1) ** 4 - sp.cos(t1) ** 4
                                 - sp.sin(t1) ** 2 + sp.cos(t1) ** 2, (t1,))
    assert not S.trig_identity_holds(sp.sin(t1) ** 2 - sp.cos(t1) ** 2, (t1,))
    assert not S.trig_identity_holds(sp.sin(t1) * sp.cos(t2) - sp.sin(t2) * sp.cos(t1),
                                     (t1, t2))
    # an expression outside the polynomial class goes through simplify
    assert S.trig_identity_holds(sp.tan(t1) * sp.cos(t1) - sp.sin(t1), (t1,))


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must be >= 2"):
        S.metric_tensor(1)
    with pytest.raises(ValueError, match=r"in \[1, 3\]"):
        S.bn_direction_change(4)
    with pytest.raises(TypeError, match="integer"):
        S.unit_norm(2.0)


def test_numeric_bound_matches_closed_form():
    out = S.metric_bound_numeric(4, seed=5)
    theta = torch.from_numpy(out["theta"])
    d = torch.from_numpy(out["direction"])
    g = S.metric_tensor_numeric(theta)
    assert math.isclose(float(torch.sqrt(d @ g @ d)), out["limit"], rel_tol=1e-14)


def test_induction_step_needs_its_hypotheses():
    # without u'ᵀu' = 1 and u'ᵀJ' = 0 the block check must fail
    assert S._induction_symbolic(hypotheses=True) is True
    assert S._induction_symbolic(hypotheses=False) is False
    t1 = sp.Symbol("theta_1", real=True)
    assert S._induction_generic(3) is True
    assert S._induction_generic(3, factor=sp.cos(t1) ** 2) is False
    assert S._induction_generic(4, factor=sp.Integer(1)) is False
