"""gmp.perturbation: the Fig. 1(b–e) perturbation experiment (Props. 2.3–2.5, Thm. 3.7)."""

import numpy as np
import pytest
import torch

from gmp.cab import effective_weight_bias
from gmp.perturbation import (
    build_layer,
    centred_batch,
    perturb_,
    perturbation_grid,
    run_perturbation,
    sample_units,
    summarize,
)

DELTAS = (1e-4, 1e-3, 1e-2, 1e-1)


def _angle(a, b):
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.arccos(np.clip(cos, -1, 1))


def test_sample_units_shapes_seed_and_scale():
    w, b = sample_units(2000, 3, std=1e-3, seed=5)
    assert w.shape == (2000, 3) and b.shape == (2000,)
    assert np.std(w) == pytest.approx(1e-3, rel=0.05)
    w2, b2 = sample_units(2000, 3, std=1e-3, seed=5)
    np.testing.assert_array_equal(w, w2)
    np.testing.assert_array_equal(b, b2)
    with pytest.raises(ValueError, match="m >= 1"):
        sample_units(0)
    with pytest.raises(ValueError, match="std"):
        sample_units(1, std=0.0)


def test_centred_batch_has_zero_mean():
    x = centred_batch(3, size=50, seed=2)
    assert x.shape == (50, 3) and x.dtype == torch.float64
    torch.testing.assert_close(x.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-15,
                               rtol=0)
    with pytest.raises(ValueError, match="size >= 2"):
        centred_batch(2, size=1)


@pytest.mark.parametrize("param", ["sp", "wn", "gmp"])
def test_build_layer_reproduces_units(param):
    w, b = sample_units(4, 2, seed=3)
    layer = build_layer(param, w, b)
    we, be = effective_weight_bias(layer)
    np.testing.assert_allclose(we.numpy(), w, rtol=1e-12, atol=0)
    np.testing.assert_allclose(be.numpy(), b, rtol=1e-12, atol=1e-18)


def test_build_layer_bn_direction_and_validation():
    w, b = sample_units(4, 2, seed=3)
    layer = build_layer("bn", w, b)
    we, be = effective_weight_bias(layer, centred_batch(2))
    cos = (we.numpy() * w).sum(1) / (np.linalg.norm(w, axis=1) * we.norm(dim=1).numpy())
    np.testing.assert_allclose(cos, 1.0)  # γ = 1 > 0: BN keeps w's direction
    np.testing.assert_allclose(be.numpy(), 0.0, atol=1e-12)  # β = 0, zero-mean input
    with pytest.raises(ValueError, match="unknown parameterization"):
        build_layer("ln", w, b)
    with pytest.raises(ValueError, match=r"shape \(m, n\)"):
        build_layer("sp", w, b[:2])


def test_build_layer_leaves_global_rng_alone():
    torch.manual_seed(123)
    ref = torch.rand(3)
    torch.manual_seed(123)
    build_layer("wn", *sample_units(2, 2))
    torch.testing.assert_close(torch.rand(3), ref)


def test_perturb_adds_delta_to_the_right_parameters():
    w, b = sample_units(3, 2, seed=0)
    gmp_layer = build_layer("gmp", w, b)
    r0 = gmp_layer.r.detach().clone()
    th0, lam0 = gmp_layer.theta.detach().clone(), gmp_layer.lam.detach().clone()
    perturb_(gmp_layer, 0.25)
    torch.testing.assert_close(gmp_layer.theta, th0 + 0.25)
    torch.testing.assert_close(gmp_layer.lam, lam0 + 0.25)
    torch.testing.assert_close(gmp_layer.r, r0)  # r does not move the CAB: untouched
    wn = build_layer("wn", w, b)
    before = [p.detach().clone() for p in wn.parameters()]
    perturb_(wn, -0.5)
    for p, q in zip(wn.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), q - 0.5)


@pytest.mark.parametrize("delta", DELTAS)
def test_sp_direction_change_is_prop_2_3(delta):
    res = run_perturbation("sp", delta, m=200, seed=1)
    w, b = sample_units(200, 2, seed=1)
    np.testing.assert_allclose(res.weight_after, w + delta)
    np.testing.assert_allclose(res.bias_after, b + delta)
    np.testing.assert_allclose(res.angle_change, _angle(w, w + delta), atol=1e-7)
    np.testing.assert_allclose(res.location_before, -b[:, None] * w / (w**2).sum(1)[:, None])


@pytest.mark.parametrize("delta", DELTAS)
def test_wn_and_bn_turn_exactly_like_sp(delta):
    # v = w, g + δ > 0 (WN) and γ + δ > 0 (BN): the direction after is that of w + δ·1.
    sp, wn, bn = (run_perturbation(m, delta, m=300, seed=2) for m in ("sp", "wn", "bn"))
    np.testing.assert_allclose(wn.angle_change, sp.angle_change, atol=1e-9)
    np.testing.assert_allclose(bn.angle_change, sp.angle_change, atol=1e-9)


def test_instability_large_turns_for_small_weights():
    res = run_perturbation("sp", 1e-2, m=1000, seed=0)
    # δ = 1e-2 is ten times the weights' scale: w + ε ≈ δ·1, whatever w was.
    assert np.median(res.angle_change_deg) > 45.0
    assert np.max(res.angle_change_deg) > 170.0


@pytest.mark.parametrize("delta", DELTAS)
def test_gmp_turns_by_exactly_delta_in_2d(delta):
    # In R², u(θ) = (cos θ, sin θ): adding δ to θ turns the CAB by |δ| (Thm 3.7 is tight).
    res = run_perturbation("gmp", delta, m=300, seed=3)
    np.testing.assert_allclose(res.angle_change, delta, rtol=1e-6)
    # φ = -λ·u: the location moves by ‖(λ+δ)u' - λu‖ ≤ |δ| + |λ|·|δ|.
    lam = np.linalg.norm(res.location_before, axis=1)
    assert (res.location_shift <= delta * (1 + lam) * (1 + 1e-9)).all()


def test_gmp_bound_in_higher_dimensions():
    # n = 5: the turn is at most ‖ε‖ = δ·sqrt(n-1) up to second order (Thm 3.7).
    delta = 1e-4
    res = run_perturbation("gmp", delta, m=200, n=5, seed=4)
    assert (res.angle_change <= delta * 2.0 * (1 + 1e-3)).all()
    sp = run_perturbation("sp", delta, m=200, n=5, seed=4)
    assert np.median(sp.angle_change) > 100 * np.median(res.angle_change)


def test_bn_uses_given_batch_and_validates_it():
    res = run_perturbation("bn", 1e-2, m=5, seed=0, batch=centred_batch(2, 64, seed=9))
    assert res.weight_before.shape == (5, 2)
    with pytest.raises(ValueError, match=r"batch must have shape \(N, 2\)"):
        run_perturbation("bn", 1e-2, m=5, batch=torch.zeros(10, 3))


def test_results_are_deterministic_and_independent_of_global_rng():
    torch.manual_seed(0)
    a = run_perturbation("wn", 1e-3, m=10, seed=7)
    torch.manual_seed(999)
    b = run_perturbation("wn", 1e-3, m=10, seed=7)
    np.testing.assert_array_equal(a.location_after, b.location_after)


def test_grid_and_summary():
    grid = perturbation_grid(("sp", "gmp"), DELTAS, m=50, seed=0)
    assert [[r.param for r in row] for row in grid] == [["sp"] * 4, ["gmp"] * 4]
    # every parameterization starts from the same boundaries
    np.testing.assert_allclose(grid[0][0].location_before, grid[1][0].location_before,
                               rtol=1e-9)
    rows = summarize(r for row in grid for r in row)
    assert len(rows) == 8 and rows[0]["units"] == 50
    gmp_rows = [r for r in rows if r["param"] == "gmp"]
    np.testing.assert_allclose([r["median_angle_deg"] for r in gmp_rows],
                               np.degrees(DELTAS), rtol=1e-6)


# ---------------------------------------------------------------------------------------
# from perturbations to optimizer steps
# ---------------------------------------------------------------------------------------
def test_gradient_identities_hold():
    from gmp.perturbation import gradient_identities
    errs = gradient_identities(n=5, m=3, seed=1)
    assert set(errs) == {"wn_orthogonal", "wn_formula", "wn_g", "bn_orthogonal", "bn_formula",
                         "gmp_theta", "gmp_r", "gmp_lambda"}
    assert max(errs.values()) < 1e-12


def test_optimizer_step_turns_bounds_and_shapes():
    from gmp.perturbation import adam_step_ceiling, optimizer_step_turns
    unit = optimizer_step_turns("gmp", "adam", lr=1e-2, steps=20, width=8, init_scale=0.01,
                                form="unit")
    assert unit.turn.shape == unit.theta_step.shape == (20, 8)
    assert unit.param_norm.shape == unit.scale.shape == (21, 8)
    # Thm 3.7, finite form: in the unit form the turn never exceeds the angle step
    assert np.all(unit.turn <= unit.theta_step + 1e-12)
    np.testing.assert_array_equal(unit.turn, unit.u_turn)
    # Adam's per-coordinate step is at most adam_step_ceiling()·lr
    assert np.nanmax(unit.theta_step_max) <= 1e-2 * adam_step_ceiling() * (1 + 1e-6)
    sp = optimizer_step_turns("sp", "adam", lr=1e-2, steps=20, width=8, init_scale=0.01)
    assert np.isnan(sp.theta_step).all() and sp.loss.shape == (20,)
    # same function at initialization for every parameterization and form
    assert sp.loss[0] == pytest.approx(unit.loss[0], rel=1e-12)


def test_weight_form_sign_changes_of_r_turn_by_pi():
    """Issue #23, item 1: with small weights r changes sign under Adam; in the weight form
    that step turns the boundary (oriented towards the active side) by π − (turn of u)."""
    from gmp.perturbation import optimizer_step_turns
    r = optimizer_step_turns("gmp", "adam", lr=1e-2, steps=20, width=8, init_scale=0.01)
    flips = r.sign_changes
    assert flips.any()
    np.testing.assert_allclose(r.turn[flips], np.pi - r.u_turn[flips], atol=1e-9)
    assert np.all(r.turn[~flips] <= r.theta_step[~flips] + 1e-12)
    assert np.all(r.u_turn <= r.theta_step + 1e-12)
    assert r.turn.max() > np.pi / 2 > np.nanmax(r.theta_step)   # the old bound fails


def test_adam_step_exceeds_kingma_ba_bound_but_not_the_ceiling():
    """Issue #23, item 3: lr·(1-β1)/sqrt(1-β2) ≈ 3.16·lr is not a ceiling."""
    from gmp.perturbation import adam_step_ceiling, adam_steps, adam_worst_gradients
    lr, t = 1e-2, 1000
    steps = np.abs(adam_steps(1e3 * adam_worst_gradients(t), lr=lr))
    assert steps[-1] > 1.5 * lr * 0.1 / np.sqrt(1e-3)
    assert steps[-1] == pytest.approx(lr * adam_step_ceiling(t=t), rel=1e-6)
    assert steps.max() <= lr * adam_step_ceiling() * (1 + 1e-9)
    assert adam_step_ceiling() == pytest.approx(0.1 / np.sqrt(1e-3) / np.sqrt(1 - 0.81 / 0.999))
    # an isolated spike after quiet steps: Kingma & Ba's 3.16·lr (approached from below)
    spike = np.abs(adam_steps(np.r_[np.full(5000, 1e-6), 1e3], lr=lr))[-1]
    assert 3.0 * lr < spike <= lr * 0.1 / np.sqrt(1e-3)


def test_wn_norm_never_shrinks_under_sgd():
    from gmp.perturbation import optimizer_step_turns
    r = optimizer_step_turns("wn", "sgd", lr=1e-2, steps=30, width=8, init_scale=0.01)
    assert np.all(np.diff(r.param_norm, axis=0) >= -1e-12)
    assert np.any(r.param_norm[-1] > r.param_norm[0])  # dead units keep theirs


def test_optimizer_step_turns_bad_arguments():
    from gmp.perturbation import optimizer_step_turns
    with pytest.raises(ValueError, match="param must be one of"):
        optimizer_step_turns("bn")
    with pytest.raises(ValueError, match="optimizer must be"):
        optimizer_step_turns("sp", optimizer="rmsprop")
    with pytest.raises(ValueError, match="steps >= 1"):
        optimizer_step_turns("sp", steps=0)
