"""The paper's GmP unit r·act(uᵀx + λ) (unit form) against the weight form (r·u)ᵀx + r·λ."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gmp
from gmp.nn import GmPConv2d, GmPLinear

F64 = torch.float64


def _pair(cls, *args, **kw):
    torch.manual_seed(0)
    unit = cls(*args, activation=nn.ReLU(), dtype=F64, **kw)
    weight = cls(*args, dtype=F64, **kw)
    weight.load_state_dict(unit.state_dict())
    with torch.no_grad():
        for layer in (unit, weight):
            layer.lam.normal_()
    weight.load_state_dict(unit.state_dict())
    return unit, weight


@pytest.mark.parametrize("n", [1, 2, 7])
def test_unit_and_weight_form_agree_for_positive_r(n):
    unit, weight = _pair(GmPLinear, n, 5)
    with torch.no_grad():
        unit.r.uniform_(0.1, 2.0)
        weight.r.copy_(unit.r)
    x = torch.randn(11, n, dtype=F64)
    torch.testing.assert_close(unit(x), torch.relu(weight(x)), rtol=0, atol=1e-14)


def test_negative_r_unit_form_negates_output_keeps_active_side():
    unit, weight = _pair(GmPLinear, 3, 4)
    with torch.no_grad():
        unit.r.copy_(torch.tensor([-0.5, -1.0, -2.0, -3.0], dtype=F64))
        weight.r.copy_(unit.r)
    x = torch.randn(200, 3, dtype=F64)
    u, lam = unit.direction_and_offset()
    z = x @ u.T + lam                                   # the canonical pre-activation uᵀx + λ
    out_unit = unit(x)
    # unit form: r·ReLU(z) ≤ 0, non-zero exactly where z > 0 (same active side as r > 0)
    torch.testing.assert_close(out_unit, unit.r * torch.relu(z))
    assert torch.equal(out_unit != 0, z > 0)
    assert (out_unit <= 0).all()
    # weight form followed by ReLU: ReLU(r·z) ≥ 0, non-zero exactly where z < 0 (side flipped)
    out_weight = torch.relu(weight(x))
    assert torch.equal(out_weight != 0, z < 0)
    assert (out_weight >= 0).all()


def test_unit_form_conv_matches_weight_form_for_positive_r():
    unit, weight = _pair(GmPConv2d, 3, 4, 3, padding=1)
    with torch.no_grad():
        unit.r.uniform_(0.1, 2.0)
        weight.r.copy_(unit.r)
    x = torch.randn(2, 3, 6, 6, dtype=F64)
    torch.testing.assert_close(unit(x), torch.relu(weight(x)), rtol=0, atol=1e-13)
    # unbatched input (C, H, W): r broadcasts over the channel axis
    torch.testing.assert_close(unit(x[0]), unit(x)[0])


def test_unit_form_conv_negative_r_negates():
    unit, _ = _pair(GmPConv2d, 2, 3, 3)
    with torch.no_grad():
        unit.r.fill_(-2.0)
    x = torch.randn(1, 2, 5, 5, dtype=F64)
    u, lam = unit.direction_and_offset()
    z = torch.nn.functional.conv2d(x, u, lam)
    torch.testing.assert_close(unit(x), -2.0 * torch.relu(z))


@pytest.mark.parametrize("n", [1, 4])
def test_unit_form_gradcheck(n):
    torch.manual_seed(1)
    layer = GmPLinear(n, 3, activation=nn.Softplus(), dtype=F64)  # smooth: exact gradcheck
    with torch.no_grad():
        layer.r.copy_(torch.tensor([0.7, -1.3, 2.0], dtype=F64))
    x = torch.randn(5, n, dtype=F64, requires_grad=True)
    names = [k for k in ("theta", "r", "lam") if getattr(layer, k).numel()]
    values = [getattr(layer, k).detach().clone().requires_grad_() for k in names]

    def f(x, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x, *values))


def test_unit_form_uses_fused_direction_and_eval_cache():
    torch.manual_seed(2)
    layer = GmPLinear(6, 4, activation=nn.ReLU())
    calls = []
    orig = gmp.nn.scaled_unit_vector

    def spy(theta, r=None):
        calls.append(r)
        return orig(theta, r)

    gmp.nn.scaled_unit_vector, saved = spy, gmp.nn.scaled_unit_vector
    try:
        x = torch.randn(3, 6)
        layer(x)
        assert calls == [None]          # u(θ) through the fused Function, r applied after
        layer.eval()
        with torch.no_grad():
            a = layer(x)
            b = layer(x)
        assert len(calls) == 2          # computed once, then cached
        torch.testing.assert_close(a, b)
        with torch.no_grad():
            layer.r.mul_(2.0)           # r is applied outside the cache: always current
            torch.testing.assert_close(layer(x), 2.0 * a)
    finally:
        gmp.nn.scaled_unit_vector = saved


def test_unit_form_cannot_revert_and_rejects_non_module_activation():
    layer = GmPLinear(3, 2, activation=nn.ReLU())
    with pytest.raises(ValueError, match="unit form"):
        layer.to_linear()
    with pytest.raises(gmp.ConversionError):
        gmp.revert(nn.Sequential(layer))
    with pytest.raises(TypeError, match="activation must be an nn.Module"):
        GmPLinear(3, 2, activation=torch.relu)
    assert "ReLU" in repr(layer)
