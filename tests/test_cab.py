"""Tests of gmp.cab: effective parameters, CAB geometry, angles, and the tracker."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from gmp import cab
from gmp.baselines import mlp
from gmp.geometry import unit_vector
from gmp.nn import GmPConv2d, GmPLinear

F64 = torch.float64


def _linear(w, b) -> nn.Linear:
    w = torch.as_tensor(w, dtype=F64)
    lin = nn.Linear(w.shape[1], w.shape[0], dtype=F64)
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(torch.as_tensor(b, dtype=F64))
    return lin


# ---------------------------------------------------------------------------------------
# hand-computed cases
# ---------------------------------------------------------------------------------------
def test_hand_computed_location_and_direction():
    # unit 0: w=(3,4), b=-10: ‖w‖=5, φ = 10·(3,4)/25 = (1.2, 1.6), distance |b|/‖w‖ = 2
    # unit 1: w=(0,2), b=4:  φ = -4·(0,2)/4 = (0, -2)
    lin = _linear([[3.0, 4.0], [0.0, 2.0]], [-10.0, 4.0])
    phi = cab.spatial_locations(lin)
    torch.testing.assert_close(phi, torch.tensor([[1.2, 1.6], [0.0, -2.0]], dtype=F64))
    torch.testing.assert_close(cab.directions(lin),
                               torch.tensor([[0.6, 0.8], [0.0, 1.0]], dtype=F64))
    # φ lies on its CAB: wᵀφ + b = 0
    w, b = cab.effective_weight_bias(lin)
    torch.testing.assert_close((w * phi).sum(-1) + b, torch.zeros(2, dtype=F64))
    assert w.dtype == F64 and not w.requires_grad and not b.requires_grad


def test_characteristic_points_1d():
    lin = _linear([[2.0], [-4.0]], [-3.0, 2.0])  # x* = 1.5 and 0.5
    torch.testing.assert_close(cab.characteristic_points(lin),
                               torch.tensor([1.5, 0.5], dtype=F64))
    with pytest.raises(ValueError, match="1-D input only"):
        cab.characteristic_points(_linear([[1.0, 1.0]], [0.0]))


def test_zero_weight_gives_nan_location():
    lin = _linear([[0.0, 0.0], [1.0, 0.0]], [1.0, 1.0])
    phi, d = cab.spatial_locations(lin), cab.directions(lin)
    assert torch.isnan(phi[0]).all() and torch.isnan(d[0]).all()
    assert torch.isfinite(phi[1]).all()


def test_linear_without_bias():
    lin = nn.Linear(3, 2, bias=False)
    _, b = cab.effective_weight_bias(lin)
    assert torch.equal(b, torch.zeros(2, dtype=F64))


# ---------------------------------------------------------------------------------------
# GmP
# ---------------------------------------------------------------------------------------
def test_sp_and_converted_gmp_agree():
    torch.manual_seed(0)
    lin = nn.Linear(5, 7, dtype=F64)
    g = GmPLinear.from_linear(lin)
    torch.testing.assert_close(cab.spatial_locations(g), cab.spatial_locations(lin))
    torch.testing.assert_close(cab.directions(g), cab.directions(lin))
    wg, bg = cab.effective_weight_bias(g)
    torch.testing.assert_close(wg, lin.weight.detach())
    torch.testing.assert_close(bg, lin.bias.detach())


def test_gmp_location_is_minus_lambda_u_and_ignores_r():
    torch.manual_seed(1)
    g = GmPLinear(3, 4, dtype=F64)
    with torch.no_grad():
        g.lam.normal_()
        g.r.uniform_(0.5, 2.0)
    phi = cab.spatial_locations(g)
    expected = -g.lam.detach().unsqueeze(-1) * unit_vector(g.theta.detach())
    assert torch.equal(phi, expected)
    with torch.no_grad():
        g.r.mul_(1e-3)
    assert torch.equal(cab.spatial_locations(g), phi)
    assert torch.equal(cab.directions(g), unit_vector(g.theta.detach()))


def _gmp_pair(r) -> tuple[GmPLinear, GmPLinear]:
    """The same (θ, λ, r) in the unit form r·ReLU(uᵀx + λ) and the weight form."""
    torch.manual_seed(5)
    unit = GmPLinear(3, len(r), dtype=F64, activation=nn.ReLU())
    with torch.no_grad():
        unit.lam.normal_()
        unit.r.copy_(torch.as_tensor(r, dtype=F64))
    weight = GmPLinear(3, len(r), dtype=F64)
    weight.load_state_dict(unit.state_dict())
    return unit, weight


def test_gmp_direction_points_into_the_active_side_in_both_forms():
    """Issue #23, item 1: the weight form's normal is sign(r)·u (it was u(θ) whatever r)."""
    unit, weight = _gmp_pair([1.5, -0.7, 0.2, -2.0])
    u = unit_vector(unit.theta.detach())
    sign = torch.sign(unit.r.detach()).unsqueeze(-1)
    assert torch.equal(cab.directions(unit), u)
    assert torch.equal(cab.directions(weight), sign * u)
    # the normal points where the unit is active: a step along it switches the unit on
    x = cab.spatial_locations(weight) + 1e-3 * cab.directions(weight)
    with torch.no_grad():
        pre_weight = torch.stack([weight(x[i:i + 1])[0, i] for i in range(4)])
    assert (pre_weight > 0).all()
    x_unit = cab.spatial_locations(unit) + 1e-3 * cab.directions(unit)
    assert ((x_unit * u).sum(1) + unit.lam.detach() > 0).all()   # unit form: uᵀx + λ > 0
    # old behaviour on request; other layer types unaffected
    assert torch.equal(cab.directions(weight, towards_active=False), u)
    lin = weight.to_linear()
    torch.testing.assert_close(cab.directions(weight), cab.directions(lin))


def test_weight_form_sign_change_of_r_is_a_turn_of_pi():
    """A weight-form step that changes the sign of r flips the active side: Δ = π, while
    u(θ) does not move and the unit form's boundary does not turn at all."""
    unit, weight = _gmp_pair([0.0051, 0.3])
    before_w, before_u = cab.directions(weight), cab.directions(unit)
    with torch.no_grad():
        for layer in (unit, weight):
            layer.r.copy_(torch.tensor([-0.0049, 0.3], dtype=F64))
    turn_w = cab.angular_change(before_w, cab.directions(weight))
    turn_u = cab.angular_change(before_u, cab.directions(unit))
    torch.testing.assert_close(turn_w, torch.tensor([math.pi, 0.0], dtype=F64))
    torch.testing.assert_close(turn_u, torch.zeros(2, dtype=F64))


def test_weight_form_r_zero_has_no_direction():
    _, weight = _gmp_pair([0.0, 1.0])
    d = cab.directions(weight)
    assert torch.isnan(d[0]).all() and not torch.isnan(d[1]).any()


def test_tracker_measures_the_weight_form_by_sign_r():
    _, weight = _gmp_pair([0.01, 0.5])
    opt = torch.optim.SGD(weight.parameters(), lr=1.0)
    tracker = cab.CABTracker(weight).attach(opt)
    old = cab.CABTracker(weight, towards_active=False)
    old.record()
    weight.r.grad = torch.tensor([0.02, 0.0], dtype=F64)   # r: 0.01 → -0.01
    weight.theta.grad = torch.zeros_like(weight.theta)
    weight.lam.grad = torch.zeros_like(weight.lam)
    opt.step()
    old.record()
    tracker.detach()
    np.testing.assert_allclose(tracker.max_angular_change(), [180.0])
    np.testing.assert_allclose(old.max_angular_change(), [0.0], atol=1e-12)


def test_gmp_1d_uses_fixed_direction():
    torch.manual_seed(2)
    g = GmPLinear(1, 6, dtype=F64)
    with torch.no_grad():
        g.lam.normal_()
    u = g.direction[:, 0]
    assert set(u.tolist()) <= {-1.0, 1.0}
    torch.testing.assert_close(cab.characteristic_points(g), -g.lam.detach() * u)
    w, b = cab.effective_weight_bias(g)
    torch.testing.assert_close(-b / w[:, 0], cab.characteristic_points(g))


def test_gmp_conv_matches_its_plain_conv():
    torch.manual_seed(3)
    g = GmPConv2d(2, 3, 3, padding=1, dtype=F64)
    with torch.no_grad():
        g.lam.normal_()
    conv = g.to_conv()
    torch.testing.assert_close(cab.spatial_locations(g), cab.spatial_locations(conv))
    w, b = cab.effective_weight_bias(conv)
    assert w.shape == (3, 2 * 3 * 3)
    # one output pixel = flattened patch · w + b
    x = torch.randn(1, 2, 5, 5, dtype=F64)
    patches = F.unfold(x, 3, padding=1)[0].T  # (25, 18)
    torch.testing.assert_close(patches @ w.T + b, conv(x)[0].flatten(1).T)


# ---------------------------------------------------------------------------------------
# WN and BN against the module's own forward
# ---------------------------------------------------------------------------------------
def test_weight_norm_matches_forward():
    torch.manual_seed(4)
    layer = weight_norm(nn.Linear(4, 6))
    with torch.no_grad():
        layer.parametrizations.weight.original0.mul_(3.0)  # g ≠ ‖v‖
    x = torch.randn(16, 4)
    w, b = cab.effective_weight_bias(layer)
    torch.testing.assert_close(x.double() @ w.T + b, layer(x).double(), rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
@pytest.mark.filterwarnings("ignore:.*weight_norm.*:UserWarning")
def test_legacy_weight_norm_matches_forward():
    torch.manual_seed(5)
    layer = torch.nn.utils.weight_norm(nn.Linear(3, 2, dtype=F64))
    with torch.no_grad():
        layer.weight_g.mul_(0.5)  # layer.weight is stale until the next forward
    x = torch.randn(8, 3, dtype=F64)
    w, b = cab.effective_weight_bias(layer)
    torch.testing.assert_close(x @ w.T + b, layer(x))


def _bn_block(n_in=3, m=5, affine=True, track=True):
    block = nn.Sequential(nn.Linear(n_in, m, dtype=F64),
                          nn.BatchNorm1d(m, affine=affine, track_running_stats=track, dtype=F64))
    if affine:
        with torch.no_grad():
            block[1].weight.uniform_(0.5, 2.0)
            block[1].bias.normal_()
    return block


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_train_uses_batch_statistics(affine):
    torch.manual_seed(6)
    block = _bn_block(affine=affine).train()
    x = torch.randn(32, 3, dtype=F64)
    before = block[1].running_mean.clone()
    w, b = cab.effective_weight_bias(block, x)
    assert torch.equal(block[1].running_mean, before)  # no side effect on BN's statistics
    torch.testing.assert_close(x @ w.T + b, block(x))


def test_batchnorm_eval_uses_running_statistics():
    torch.manual_seed(7)
    block = _bn_block().train()
    for _ in range(5):
        block(torch.randn(32, 3, dtype=F64) + 1.0)
    block.eval()
    x = torch.randn(10, 3, dtype=F64)
    for xs in (None, x):  # in eval mode x is ignored, as BN ignores the batch
        w, b = cab.effective_weight_bias(block, xs)
        torch.testing.assert_close(x @ w.T + b, block(x))
    # train mode without x falls back to the running statistics too
    w2, b2 = cab.effective_weight_bias(block.train())
    torch.testing.assert_close(w2, w)
    torch.testing.assert_close(b2, b)


def test_batchnorm_characteristic_point_formula():
    # BN in training mode, 1-D input: x* = -(b + σβ/γ - μ)/w (Def. 2.1 applied to γ(wx+b-μ)/σ+β)
    torch.manual_seed(8)
    block = _bn_block(n_in=1, m=4).train()
    x = torch.randn(20, 1, dtype=F64)
    lin, bn = block
    z = lin(x).detach()
    mu, sigma = z.mean(0), torch.sqrt(z.var(0, unbiased=False) + bn.eps)
    w, b, gamma, beta = (lin.weight.detach()[:, 0], lin.bias.detach(), bn.weight.detach(),
                         bn.bias.detach())
    expected = -(b + sigma * beta / gamma - mu) / w
    torch.testing.assert_close(cab.characteristic_points(block, x), expected)


def test_batchnorm_errors():
    block = _bn_block(track=False)
    with pytest.raises(ValueError, match="running statistics"):
        cab.effective_weight_bias(block)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        cab.effective_weight_bias(block, torch.randn(4, 2, dtype=F64))


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.Sequential(nn.Linear(2, 2), nn.ReLU()),
                                   nn.Bilinear(2, 2, 2), "not a module"])
def test_unsupported_layer_type(layer):
    with pytest.raises(TypeError, match="unsupported layer type .*supported: nn.Linear"):
        cab.effective_weight_bias(layer)
    with pytest.raises(TypeError):
        cab.CABTracker(layer)


@pytest.mark.parametrize("param", ["sp", "wn", "bn", "gmp"])
def test_baseline_hidden_layers(param):
    torch.manual_seed(9)
    net = mlp(param, 2, hidden=6)
    x = torch.randn(16, 2)
    w, b = cab.effective_weight_bias(net.hidden, x)
    # ReLU(wᵀx + b) is the hidden unit's output (GmP in the paper's unit form includes its
    # ReLU; r > 0 at initialization, where both forms agree)
    torch.testing.assert_close(torch.relu(x.double() @ w.T + b),
                               net.act(net.hidden(x)).double(), rtol=1e-5, atol=1e-5)
    assert cab.spatial_locations(net.hidden, x).shape == (6, 2)


# ---------------------------------------------------------------------------------------
# angles
# ---------------------------------------------------------------------------------------
def test_angular_change_near_zero_where_arccos_fails():
    a = torch.tensor([[1.0, 0.0]], dtype=F64)
    b = torch.tensor([[1.0, 1e-8]], dtype=F64)
    cos = (a * b).sum() / (a.norm() * b.norm())
    assert torch.arccos(cos.clamp(-1, 1)) == 0  # the naive formula loses the angle
    torch.testing.assert_close(cab.angular_change(a, b), torch.tensor([1e-8], dtype=F64),
                               rtol=1e-12, atol=0)


def test_angular_change_near_pi_where_arccos_fails():
    a = torch.tensor([[3.0, 0.0]], dtype=F64)
    b = torch.tensor([[-2.0, 2e-8]], dtype=F64)
    cos = (a * b).sum() / (a.norm() * b.norm())
    assert torch.arccos(cos.clamp(-1, 1)) == math.pi
    torch.testing.assert_close(cab.angular_change(a, b),
                               torch.tensor([math.pi - 1e-8], dtype=F64), rtol=0, atol=1e-15)


def test_angular_change_exact_rotations_and_degrees():
    alpha = torch.linspace(0, math.pi, 101, dtype=F64)
    phi0 = 0.7
    a = torch.stack([torch.cos(torch.full_like(alpha, phi0)),
                     torch.sin(torch.full_like(alpha, phi0))], -1) * 2.5
    b = torch.stack([torch.cos(phi0 + alpha), torch.sin(phi0 + alpha)], -1) * 0.01
    torch.testing.assert_close(cab.angular_change(a, b), alpha, rtol=0, atol=4e-15)
    torch.testing.assert_close(cab.angular_change(a, b, degrees=True), torch.rad2deg(alpha))


def test_angular_change_small_perturbation_matches_projection():
    # first order: Δ ≈ ‖(I - ŵŵᵀ)ε‖/‖w‖, error O(‖ε‖²/‖w‖²)
    gen = torch.Generator().manual_seed(10)
    w = torch.randn(20, 5, generator=gen, dtype=F64)
    for scale in (1e-3, 1e-5, 1e-7):
        eps = scale * torch.randn(20, 5, generator=gen, dtype=F64)
        wh = w / w.norm(dim=-1, keepdim=True)
        proj = eps - (eps * wh).sum(-1, keepdim=True) * wh
        first_order = proj.norm(dim=-1) / w.norm(dim=-1)
        got = cab.direction_change(w, eps)
        rel = ((got - first_order).abs() / first_order).max()
        assert rel < 50 * scale, (scale, rel)


def test_angular_change_matches_autograd_derivative():
    # d/dt Δ(w, t·ε) at t = 0⁺ is the first-order rate ‖(I - ŵŵᵀ)ε‖/‖w‖; compare the
    # finite difference of angular_change with autograd's derivative of the unit normal.
    gen = torch.Generator().manual_seed(11)
    w = torch.randn(4, generator=gen, dtype=F64)
    eps = torch.randn(4, generator=gen, dtype=F64)

    def normal(t):
        v = w + t * eps
        return v / v.norm()

    (jac,) = torch.autograd.functional.jacobian(normal, (torch.zeros((), dtype=F64),))
    rate = jac.norm()
    t = 1e-7
    torch.testing.assert_close(cab.direction_change(w, t * eps) / t, rate, rtol=1e-6, atol=0)


def test_angular_change_inputs_and_errors():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[0.0, 1.0], [0.0, -1.0]])
    got = cab.angular_change(a, b)
    assert isinstance(got, torch.Tensor) and got.dtype == F64
    torch.testing.assert_close(got, torch.tensor([math.pi / 2, math.pi], dtype=F64))
    assert cab.angular_change([1.0, 0.0], [1.0, 1.0]).shape == ()
    with pytest.raises(ValueError, match="shapes differ"):
        cab.angular_change(a, b[:1])
    with pytest.raises(ValueError, match="shape"):
        cab.direction_change(np.ones(3), np.ones(2))
    assert torch.isnan(cab.angular_change([0.0, 0.0], [1.0, 0.0]))


def test_direction_change_flip():
    w = torch.tensor([1e-3, -2e-3], dtype=F64)
    for delta in (1e-6, 0.1, 10.0):
        eps = -(1 + delta) * w
        torch.testing.assert_close(cab.direction_change(w, eps),
                                   torch.tensor(math.pi, dtype=F64), rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=6, max_size=6),
       st.floats(1e-3, 1e3), st.floats(1e-3, 1e3))
def test_angular_change_properties(vals, s1, s2):
    a = torch.tensor(vals[:3], dtype=F64)
    b = torch.tensor(vals[3:], dtype=F64)
    if a.norm() < 1e-6 or b.norm() < 1e-6:
        return
    ang = cab.angular_change(a, b)
    assert 0.0 <= float(ang) <= math.pi
    torch.testing.assert_close(cab.angular_change(b, a), ang, rtol=0, atol=1e-14)
    torch.testing.assert_close(cab.angular_change(s1 * a, s2 * b), ang, rtol=0, atol=1e-12)
    torch.testing.assert_close(cab.angular_change(a, -b), math.pi - ang, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------
# tracker
# ---------------------------------------------------------------------------------------
def _tiny_problem(param: str, n_in: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    x = torch.randn(24, n_in)
    y = torch.sin(x.sum(-1, keepdim=True))
    net = mlp(param, n_in, hidden=5)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)

    def step():
        opt.zero_grad()
        F.mse_loss(net(x), y).backward()
        opt.step()

    return net, opt, x, step


@pytest.mark.parametrize("param", ["sp", "wn", "bn", "gmp"])
def test_tracker_records_every_step(param):
    net, opt, x, step = _tiny_problem(param)
    tracker = cab.CABTracker(net.hidden, inputs=x).attach(opt)
    assert len(tracker) == 1  # initial state
    for _ in range(6):
        step()
    tracker.detach()
    T = 7
    assert tracker.steps.tolist() == list(range(T))
    assert tracker.locations.shape == (T, 5, 2) and tracker.locations.dtype == np.float64
    assert tracker.directions.shape == (T, 5, 2)
    assert tracker.weights.shape == (T, 5, 2) and tracker.biases.shape == (T, 5)
    np.testing.assert_allclose(np.linalg.norm(tracker.directions, axis=-1), 1.0, rtol=1e-12)
    # the last record is the current state
    np.testing.assert_allclose(tracker.locations[-1], cab.spatial_locations(net.hidden, x))
    mac = tracker.max_angular_change()
    assert mac.shape == (T - 1,) and np.all(mac >= 0) and np.all(mac <= 180)
    assert np.any(mac > 0)  # the parameters did move
    d = tracker.directions
    manual = np.rad2deg(np.max(cab.angular_change(d[:-1], d[1:]).numpy(), axis=1))
    np.testing.assert_allclose(mac, manual)
    np.testing.assert_allclose(tracker.max_angular_change(degrees=False), np.deg2rad(mac))
    mlc = tracker.max_location_change()
    np.testing.assert_allclose(
        mlc, np.max(np.linalg.norm(np.diff(tracker.locations, axis=0), axis=-1), axis=1))


def test_tracker_every_k_and_detach():
    net, opt, _, step = _tiny_problem("gmp")
    tracker = cab.CABTracker(net.hidden, every=3).attach(opt)
    for _ in range(10):
        step()
    assert tracker.steps.tolist() == [0, 3, 6, 9]
    tracker.detach()
    for _ in range(5):
        step()
    assert len(tracker) == 4  # detach stops recording
    tracker.record()  # default step: optimizer steps seen while attached
    assert tracker.steps.tolist() == [0, 3, 6, 9, 10]
    with pytest.raises(RuntimeError, match="already attached"):
        tracker.attach(opt).attach(opt)
    tracker.detach()


def test_tracker_manual_records_and_1d_points():
    torch.manual_seed(12)
    layer = nn.Linear(1, 3)
    tracker = cab.CABTracker(layer)
    tracker.record()
    with torch.no_grad():
        layer.bias.add_(1.0)
    tracker.record(step=10)
    assert tracker.steps.tolist() == [0, 10]
    pts = tracker.characteristic_points()
    assert pts.shape == (2, 3)
    np.testing.assert_allclose(pts[1], cab.characteristic_points(layer).numpy())
    np.testing.assert_allclose(pts[1] - pts[0], -1.0 / layer.weight.detach().double()[:, 0])
    with pytest.raises(ValueError, match="1-D input only"):
        cab.CABTracker(nn.Linear(2, 3)).characteristic_points()


def test_tracker_empty_and_bad_every():
    tracker = cab.CABTracker(nn.Linear(2, 3))
    assert tracker.locations.shape == (0, 3, 2)
    assert tracker.max_angular_change().shape == (0,)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="every"):
            cab.CABTracker(nn.Linear(2, 3), every=bad)


def test_tracker_records_are_snapshots_for_float64_layers():
    # Regression: float64 weights were stored as views of the live parameter.
    torch.manual_seed(0)
    layer = torch.nn.Linear(2, 3).double()
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    tracker = cab.CABTracker(layer).attach(opt)
    for _ in range(2):
        opt.zero_grad()
        layer(torch.randn(4, 2, dtype=torch.float64)).sum().backward()
        opt.step()
    assert len(tracker.weights) == 3
    assert not np.allclose(tracker.weights[0], tracker.weights[-1])
    np.testing.assert_allclose(tracker.weights[-1], layer.weight.detach().numpy())
