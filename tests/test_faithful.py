"""The authors' networks, Keras' training semantics, the protocols and the data generators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gmp.baselines import mlp
from gmp.data.banana import BananaSplits, banana_splits_authors, load_banana
from gmp.data.levy import levy, levy_data_authors
from gmp.experiments import small
from gmp.experiments.batched import BatchedAdam, BatchedPlateau
from gmp.experiments.fit import KerasAdam
from gmp.experiments.small import BananaConfig, LevyConfig, run
from gmp.nn import GmPLinear
from gmp.params import PRESETS, check_param, get_preset

F64 = torch.float64


# ---------------------------------------------------------------------------------------
# presets: the authors' initialization statistics
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_in", [1, 2])
def test_authors_gmp_hidden_is_a_converted_glorot_draw(n_in):
    m = 100
    bound = math.sqrt(6.0 / (n_in + m))
    rs, lams = [], []
    for seed in range(20):
        torch.manual_seed(seed)
        net = mlp("gmp", n_in, m, preset="authors")
        h = net.hidden
        assert isinstance(h, GmPLinear) and h.init == "glorot-authors"
        assert isinstance(h.activation, nn.ReLU) and isinstance(net.act, nn.Identity)
        w, _ = h.weight_and_bias()
        # r = ‖w‖ of a Glorot-uniform w: every coordinate of r·u within the bound
        assert (w.abs() <= bound + 1e-6).all()
        rs.append(h.r.detach())
        lams.append(h.lam.detach())
        # the read-out is Keras' Dense: Glorot-uniform weight, zero bias
        assert type(net.out) is nn.Linear and (net.out.bias == 0).all()
        assert (net.out.weight.abs() <= math.sqrt(6.0 / (m + 1)) + 1e-6).all()
    r = torch.cat(rs)
    assert (r > 0).all() and torch.equal(torch.cat(lams), torch.zeros_like(r))
    if n_in == 1:  # |U(-b, b)| is U(0, b): mean b/2, and max close to b
        assert float(r.mean()) == pytest.approx(bound / 2, rel=0.05)
        assert float(r.max()) > 0.99 * bound
    else:          # ‖U(-b, b)²‖: mean b·(√2 + ln(1 + √2))/3 ≈ 0.7652·b
        assert float(r.mean()) == pytest.approx(0.7652 * bound, rel=0.05)


def _authors_angles(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The authors' Cartesian-to-angles map, written out in numpy: ``x (n, m)`` holds one
    vector per column; the denominator of the last angle is ``|x_n|``."""
    num = x[:-1].copy()
    num[-1] += np.sqrt((x[-2:] ** 2).sum(axis=0))
    den = np.sqrt(np.cumsum((x[1:] ** 2)[::-1], axis=0)[::-1])
    ang = np.pi / 2 - np.arctan2(num, den)
    ang[-1] *= 2
    return ang, np.linalg.norm(x, axis=0)


@pytest.mark.parametrize("n", [2, 3, 6])
def test_glorot_authors_init_matches_the_authors_conversion(n):
    from gmp.geometry import unit_vector

    torch.manual_seed(4)
    layer = GmPLinear(n, 200, init="glorot-authors", dtype=F64)
    u = layer.unit_directions().detach()
    w = (layer.r.detach()[:, None] * u).numpy()        # the Glorot draw, as converted
    ang, rad = _authors_angles(w.T.copy())
    ref = unit_vector(torch.from_numpy(ang.T.copy()))
    torch.testing.assert_close(u, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.r.detach().numpy(), rad, rtol=1e-12)
    assert (u[:, -1] >= 0).all()                         # the sign of w_n is lost
    assert (u[:, :-1] < 0).any()                         # the other coordinates keep theirs
    assert (np.abs(w) <= math.sqrt(6.0 / (n + 200)) + 1e-12).all()
    # the plain Glorot init keeps the sign of the last coordinate
    torch.manual_seed(4)
    assert (GmPLinear(n, 200, init="glorot", dtype=F64).unit_directions()[:, -1] < 0).any()


def test_remark_3_5_preset_starts_at_r_one():
    torch.manual_seed(0)
    net = mlp("gmp", 3, 50, preset="paper-remark-3.5")
    assert torch.equal(net.hidden.r.detach(), torch.ones(50))
    assert type(net.out) is nn.Linear


@pytest.mark.parametrize("param", ["sp", "wn", "bn"])
def test_authors_baselines_use_keras_initialization(param):
    torch.manual_seed(3)
    net = mlp(param, 2, 10, preset="authors")
    lin = net.hidden[0] if param == "bn" else net.hidden
    assert (lin.bias == 0).all() and (net.out.bias == 0).all()
    assert (lin.weight.abs() <= math.sqrt(6.0 / 12) + 1e-6).all()
    if param == "wn":  # WN starts at g = ‖v‖ (the authors' DenseWN), read-out WN too
        g = lin.parametrizations.weight.original0
        v = lin.parametrizations.weight.original1
        torch.testing.assert_close(g.squeeze(1), v.norm(dim=1))
        assert hasattr(net.out, "parametrizations")
    if param == "bn":  # Keras' BatchNormalization(momentum=0.99, epsilon=1e-3)
        bn = net.hidden[1]
        assert bn.momentum == pytest.approx(0.01) and bn.eps == pytest.approx(1e-3)


def test_book_v1_preset_reproduces_the_first_edition_networks():
    torch.manual_seed(5)
    net = mlp("gmp", 2, 7, preset="book-v1")
    torch.manual_seed(5)
    ref_hidden, ref_out = GmPLinear(2, 7), GmPLinear(7, 1)
    for a, b in ((net.hidden, ref_hidden), (net.out, ref_out)):
        for k, v in b.state_dict().items():
            torch.testing.assert_close(a.state_dict()[k], v)
    assert net.hidden.activation is None and isinstance(net.act, nn.ReLU)


def test_preset_and_param_errors():
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("keras")
    with pytest.raises(ValueError, match="unknown parameterization 'ln'"):
        check_param("ln")
    assert set(PRESETS) >= {"authors", "paper-remark-3.5"}
    with pytest.raises(ValueError, match="unknown protocol"):
        run("levy", "sp", [0], protocol="leaky", config=LevyConfig(hidden=2, max_epochs=1),
            progress=False)


# ---------------------------------------------------------------------------------------
# Keras' optimizer and schedule
# ---------------------------------------------------------------------------------------
def test_keras_adam_formula_and_batched_version():
    torch.manual_seed(0)
    lr, b1, b2, eps = 0.05, 0.9, 0.999, 1e-7
    p0 = torch.randn(3, 4, dtype=F64)
    grads = [torch.randn(3, 4, dtype=F64) for _ in range(6)]
    # the update written out as Keras' Adam computes it, in numpy
    p, m, v = p0.numpy().copy(), np.zeros((3, 4)), np.zeros((3, 4))
    for t, g in enumerate(grads, start=1):
        g = g.numpy()
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        p -= lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
    a = p0.clone().requires_grad_()
    opt = KerasAdam([a], lr=lr, eps=eps)
    stacked = p0.clone().unsqueeze(0).requires_grad_()
    bopt = BatchedAdam([stacked], torch.tensor([lr], dtype=F64), eps=eps, eps_mode="keras")
    for g in grads:
        a.grad = g.clone()
        opt.step()
        stacked.grad = g.clone().unsqueeze(0)
        bopt.step()
    np.testing.assert_allclose(a.detach().numpy(), p, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(stacked[0].detach().numpy(), p, rtol=1e-12, atol=1e-14)
    # torch's Adam differs in the first steps (ε after the bias correction)
    c = p0.clone().requires_grad_()
    topt = torch.optim.Adam([c], lr=lr, eps=eps)
    c.grad = grads[0].clone()
    topt.step()
    assert not torch.allclose(c, torch.from_numpy(p), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="eps_mode"):
        BatchedAdam([stacked], torch.tensor([lr], dtype=F64), eps_mode="tf")


def test_keras_plateau_semantics():
    # Keras ReduceLROnPlateau(patience=3, min_delta=0.1, mode="min"): reduce after exactly 3
    # epochs without beating the best by more than 0.1 (absolute), then count anew
    lr = torch.tensor([1.0], dtype=F64)
    sched = BatchedPlateau.keras(lr, "min", factor=0.5, patience=3, min_delta=0.1)
    seq = [5.0, 4.95, 4.92, 4.91, 3.0, 2.95, 2.95, 2.95, 2.95, 2.95, 2.95]
    lrs = []
    for v in seq:
        sched.step(torch.tensor([v], dtype=F64))
        lrs.append(float(lr[0]))
    # epochs 1-3 improve by < 0.1: reduction at epoch 3; epoch 4 improves; epochs 5-7 do
    # not: reduction at epoch 7; epochs 8-10: reduction at epoch 10
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    # the same as torch's scheduler configured as small.py's module engine does
    ref_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, "min", factor=0.5, patience=2,
                                                     threshold=0.1, threshold_mode="abs", eps=0)
    for v, expected in zip(seq, lrs, strict=True):
        ref.step(v)
        assert ref_opt.param_groups[0]["lr"] == pytest.approx(expected)


# ---------------------------------------------------------------------------------------
# the protocols
# ---------------------------------------------------------------------------------------
def _synthetic(seed: int, test_targets: float | None = None) -> BananaSplits:
    g = torch.Generator().manual_seed(seed)

    def split(n):
        x = torch.randn(n, 2, generator=g, dtype=F64)
        y = ((x[:, 0] * x[:, 1] + 0.3 * torch.randn(n, generator=g, dtype=F64)) > 0).float()
        return x, y

    parts = [*split(48), *split(16), *split(16)]
    if test_targets is not None:
        parts[5] = torch.full_like(parts[5], test_targets)
    return BananaSplits(*parts, np.zeros(2), np.ones(2), seed)


TINY = BananaConfig(hidden=4, max_epochs=25, batch_size=16, plateau_patience=3, patience=5)


def test_honest_protocol_never_reads_test_targets():
    kw = dict(config=TINY, dtype=F64, progress=False, protocol="honest", lr=0.3)
    real = run("banana", ["sp", "gmp"], [0], data={0: _synthetic(0)}, **kw)
    blind = run("banana", ["sp", "gmp"], [0], data={0: _synthetic(0, math.nan)}, **kw)
    for a, b in zip(real, blind, strict=True):
        assert a.epochs_run == b.epochs_run and a.best_epoch == b.best_epoch
        for k in a.history:
            np.testing.assert_array_equal(a.history[k], b.history[k])
        assert a.metrics["monitor_acc"] == b.metrics["monitor_acc"]
        assert b.metrics["test_acc"] == 0.0  # NaN targets: read once, at the very end


def test_official_protocol_selects_on_the_test_split():
    kw = dict(config=TINY, dtype=F64, progress=False, protocol="official", lr=0.3)
    r = run("banana", "sp", [0], data={0: _synthetic(0)}, **kw)[0]
    assert r.metrics["monitor_acc"] == r.metrics["test_acc"]
    blind = run("banana", "sp", [0], data={0: _synthetic(0, math.nan)}, **kw)[0]
    assert (blind.history["monitor_acc"] == 0).all()  # it monitored the (NaN) test targets


def test_fixed_data_seed_varies_only_the_initialization():
    cfg = LevyConfig(hidden=5, max_epochs=3)
    runs = run("levy", "sp", [0, 1, 2], config=cfg, data_seed=0, progress=False)
    assert [r.data_seed for r in runs] == [0, 0, 0] and [r.seed for r in runs] == [0, 1, 2]
    assert len({r.metrics["test_rmse"] for r in runs}) == 3
    paired = run("levy", "sp", [1], config=cfg, progress=False)[0]
    assert paired.data_seed == 1


# ---------------------------------------------------------------------------------------
# the authors' data generators
# ---------------------------------------------------------------------------------------
def test_levy_generator_follows_the_notebooks_order_of_draws():
    state = np.random.get_state()
    try:
        np.random.seed(7)  # the notebook: seed, then uniform x, then Gaussian noise
        x = np.random.uniform(low=-10.0, high=10.0, size=[50, 1])
        eps = np.random.normal(loc=0.0, scale=0.1, size=[50, 1])
    finally:
        np.random.set_state(state)
    d = levy_data_authors(7)
    assert d.x_train.dtype == F64
    np.testing.assert_array_equal(d.x_train.numpy(), x)
    np.testing.assert_array_equal(d.y_train.numpy(), levy(x) + eps)
    assert d.x_test.shape == (201, 1) and float(d.x_test[0]) == -10.0
    # the authors' own sample: the first input of np.random.seed(0)
    assert float(levy_data_authors(0).x_train[0, 0]) == pytest.approx(0.9762700785464951)
    assert np.random.get_state()[1][0] == state[1][0]  # the global state is untouched


# Indices written by scikit-learn 1.9.1: np.random.seed(s); idx = np.random.choice(5300,
# 1000, replace=False); train_test_split(idx, test_size=0.2, random_state=s).
SKLEARN_SPLITS = {0: ([4801, 4055, 3318, 224, 5014, 4476], [2620, 2369, 5180, 125, 244, 5107]),
                  3: ([1679, 2276, 346, 1826, 5270, 1769], [3980, 2209, 4636, 5278, 2865, 2343])}


@pytest.mark.parametrize("seed", sorted(SKLEARN_SPLITS))
def test_banana_split_matches_the_notebooks(seed):
    try:
        x, y = load_banana(dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - the data file is optional for unit tests
        pytest.skip(f"Banana data not available: {e}")
    s = banana_splits_authors(seed)
    train_idx, test_idx = SKLEARN_SPLITS[seed]
    assert s.x_train.shape == (800, 2) and s.x_test.shape == (200, 2) and len(s.x_val) == 0
    np.testing.assert_allclose(s.x_train[:6].numpy(), (x[train_idx] - s.mean) / s.std)
    np.testing.assert_allclose(s.x_test[:6].numpy(), (x[test_idx] - s.mean) / s.std)
    np.testing.assert_array_equal(s.y_test[:6].numpy(), y[test_idx])
    # standardized with the training part's mean and population std
    np.testing.assert_allclose(s.x_train.mean(0).numpy(), 0, atol=1e-12)
    np.testing.assert_allclose(s.x_train.std(0, correction=0).numpy(), 1, rtol=1e-12)
    honest = banana_splits_authors(seed, validation=True)
    assert honest.x_train.shape == (640, 2) and honest.x_val.shape == (160, 2)
    np.testing.assert_array_equal(honest.y_test.numpy(), s.y_test.numpy())


def test_make_data_by_protocol():
    assert small.make_data("levy", 0, "honest").x_train.shape == (50, 1)
    with pytest.raises(ValueError, match="unknown task"):
        small.make_data("mnist", 0)


def test_units_through_data_counts_boundaries_that_cut_the_inputs():
    x = torch.linspace(-1, 1, 11, dtype=F64).view(1, -1, 1)
    w = torch.ones(1, 4, 1, dtype=F64)
    b = torch.tensor([[0.5, -5.0, 0.0, 0.99]], dtype=F64)  # x* = -0.5, 5, 0, -0.99
    assert small._units_through(w, b, x).tolist() == [3]
    r = run("levy", "gmp", [0], config=LevyConfig(hidden=7, max_epochs=2), progress=False)[0]
    assert 0 <= r.metrics["units_through_data"] <= 7


def test_keras_batchnorm_tracks_the_biased_variance():
    from gmp.layers import KerasBatchNorm1d

    torch.manual_seed(2)
    x = torch.randn(8, 3, dtype=F64)
    bn = KerasBatchNorm1d(3, momentum=0.25, eps=1e-3).to(F64)
    ref = nn.BatchNorm1d(3, momentum=0.25, eps=1e-3).to(F64)
    torch.testing.assert_close(bn(x), ref(x))                      # same training output
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    expected = 0.75 * 1.0 + 0.25 * x.var(dim=0, unbiased=False)    # Keras: biased variance
    torch.testing.assert_close(bn.running_var, expected)
    assert not torch.allclose(ref.running_var, expected)            # torch: unbiased
    bn.eval()
    torch.testing.assert_close(bn(x), (x - bn.running_mean) / torch.sqrt(bn.running_var + 1e-3))
    assert isinstance(mlp("bn", 2, 4, preset="authors").hidden[1], KerasBatchNorm1d)
    assert type(mlp("bn", 2, 4, preset="book-v1").hidden[1]) is nn.BatchNorm1d


@pytest.mark.parametrize("engine", ["batched", "module"])
def test_a_run_that_never_improves_keeps_the_weights_after_epoch_0(engine):
    from gmp.data.levy import LevyData

    d = levy_data_authors(0)
    nan = LevyData(d.x_train, torch.full_like(d.y_train, math.nan), d.x_test, d.y_test, 0, 0.1)
    cfg = LevyConfig(hidden=5, max_epochs=20, plateau_patience=3, patience=4)
    r = run("levy", "sp", [0], config=cfg, data={0: nan}, engine=engine, progress=False)[0]
    # Keras: NaN never improves, stopping triggers after `patience` epochs, and the weights
    # remembered at the end of epoch 0 come back
    assert r.best_epoch == -1 and r.stopped_early and r.epochs_run == 4
    assert r.kept_step == 1
