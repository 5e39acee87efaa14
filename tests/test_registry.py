"""The registry of parameterizations (gmp.params): built-ins, registration rules, and a toy
parameterization added through the public API and run through every experiment, as
CONTRIBUTING.md ("Adding a parameterization") describes."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gmp import params
from gmp.experiments.batched import BatchedMLP, StackedLinear
from gmp.layers import keras_conv2d, linear
from gmp.params import Parameterization, get_preset, get_spec, registered, seed_id

F64 = torch.float64


# ------------------------------------------------------------------ the toy: "scaled SP"
class Scale(nn.Module):
    """``w = s·v`` with one scale ``s`` per output unit (a torch parametrization: the layer
    keeps ``parametrizations.weight.original0 = s (m, 1, ...)`` and ``original1 = v``)."""

    def forward(self, s, v):
        return s * v

    def right_inverse(self, w):
        return torch.ones((w.shape[0],) + (1,) * (w.dim() - 1), dtype=w.dtype,
                          device=w.device), w


def scaled(layer: nn.Module) -> nn.Module:
    parametrize.register_parametrization(layer, "weight", Scale(), unsafe=True)
    return layer


class ScaledSP(Parameterization):
    name, label, color, seed_id, lr = "ssp", "sSP", "#F0E442", 99, 0.01
    dense = convertible = True

    def hidden(self, in_features, out_features, preset):
        return scaled(linear(in_features, out_features, preset.baseline_init))

    readout = hidden

    def authors_conv(self, in_channels, out_channels, kernel_size=3, padding=1):
        return [scaled(keras_conv2d(in_channels, out_channels, kernel_size, padding)),
                nn.ReLU(inplace=True)]

    def authors_classifier(self, in_features, num_classes):
        return scaled(linear(in_features, num_classes, "keras"))

    def from_linear(self, layer):
        return scaled(layer)

    def recognizes(self, layer):
        return (isinstance(layer, nn.Linear) and parametrize.is_parametrized(layer, "weight")
                and isinstance(layer.parametrizations.weight[0], Scale))

    def tensors(self, layer):
        p = layer.parametrizations.weight
        return {"s": p.original0, "v": p.original1, "bias": layer.bias}

    def affine(self, t):
        return t["s"] * t["v"], t["bias"]


@pytest.fixture
def toy():
    with registered(ScaledSP()) as spec:
        yield spec
    assert "ssp" not in params.names()


# ------------------------------------------------------------------ built-ins and rules
def test_builtins_keep_their_names_order_and_seed_ids():
    assert params.PARAMS == ("sp", "wn", "bn", "gmp")
    assert params.ALL_PARAMS == ("sp", "wn", "wn_mbn", "bn", "gmp", "gmp_imn")
    assert {p: seed_id(p) for p in params.ALL_PARAMS} == {
        "sp": 0, "wn": 1, "bn": 2, "gmp": 3, "wn_mbn": 4, "gmp_imn": 5}
    assert dict(params.PAPER_LR) == {"sp": 0.01, "wn": 0.01, "bn": 0.01, "gmp": 0.1}
    assert params.COLORS["gmp"] == "#D55E00" and params.LABELS["gmp_imn"] == "GmP+IMN"
    assert len(set(params.COLORS.values())) == len(params.ALL_PARAMS)


def _toy_with(**kw) -> ScaledSP:
    spec = ScaledSP()
    for k, v in kw.items():
        setattr(spec, k, v)
    return spec


@pytest.mark.parametrize("kw, match", [
    (dict(color=""), "needs a colour '#RRGGBB'"),
    (dict(color="red"), "needs a colour '#RRGGBB'"),
    (dict(seed_id=3), "seed id 3 is taken by 'gmp'"),
    (dict(seed_id=-1), "seed id >= 0"),
    (dict(name="gmp"), "'gmp' is already registered"),
    (dict(name="SSP"), "lower-case name"),
    (dict(label=""), "has no label"),
])
def test_registration_refuses_bad_specs(kw, match):
    with pytest.raises(ValueError, match=match):
        params.register(_toy_with(**kw))
    assert params.ALL_PARAMS == params.names()


def test_builtins_cannot_be_unregistered_and_unknown_names_are_named():
    with pytest.raises(ValueError, match="cannot be unregistered"):
        params.unregister("sp")
    with pytest.raises(ValueError, match="unknown parameterization 'ln'"):
        get_spec("ln")


def test_unsupported_layers_say_so(toy):
    from gmp import layers
    with pytest.raises(NotImplementedError, match="'ssp' does not build a book-v1 conv"):
        layers.conv("ssp", 3, 4, 3)
    with pytest.raises(NotImplementedError, match="'wn_mbn' does not build a dense hidden"):
        get_spec("wn_mbn").hidden(3, 4, get_preset())


def test_registration_is_live_and_undone(toy):
    assert params.names(dense=True) == ("sp", "wn", "bn", "gmp", "ssp")
    assert params.check_param("SSP") == "ssp"
    assert params.LABELS["ssp"] == "sSP" and params.PAPER_LR["ssp"] == 0.01
    assert seed_id("ssp") == 99
    assert params.PARAMS == ("sp", "wn", "bn", "gmp")      # the paper's four stay fixed


# ------------------------------------------------------------------ the toy, end to end
def test_toy_stacked_form_matches_modules_and_gradcheck(toy):
    from gmp.baselines import mlp
    models = []
    for s in range(3):
        torch.manual_seed(s)
        models.append(mlp("ssp", 3, 5).double())
    with torch.no_grad():
        for i, m in enumerate(models):
            m.hidden.parametrizations.weight.original0.mul_(1.0 + i)
    net = BatchedMLP.from_modules(models)
    assert net.hidden.param == "ssp" and [n for n, _ in net.hidden.named_parameters()] == [
        "s", "v", "bias"]
    x = torch.randn(3, 7, 3, dtype=F64)
    out = net(x)
    for s, m in enumerate(models):
        torch.testing.assert_close(out[s], m(x[s]), rtol=1e-12, atol=1e-12)
    w, _ = net.effective_hidden()
    torch.testing.assert_close(w[2], models[2].hidden.weight.detach())
    phi, d = net.cab_state()
    assert phi.shape == d.shape == (3, 5, 3)
    # write a member back
    with torch.no_grad():
        net.hidden.s.add_(0.5)
    back = net.load_into(models[1], 1)
    torch.testing.assert_close(back.hidden.parametrizations.weight.original0,
                               net.hidden.s[1])
    # float64 gradcheck of the generic stacked path, parameters and input
    st = StackedLinear([m.hidden for m in models])
    t = {k: v.detach().clone().requires_grad_(True) for k, v in st.stacked_tensors().items()}
    xg = torch.randn(3, 4, 3, dtype=F64, requires_grad=True)

    def f(s, v, b, xx):
        return torch.func.functional_call(st, {"s": s, "v": v, "bias": b}, (xx,))

    assert torch.autograd.gradcheck(f, (t["s"], t["v"], t["bias"], xg))


def test_toy_runs_the_small_experiment(toy):
    # both engines, at the spec's own learning rate
    from gmp.experiments.small import LevyConfig, run
    cfg = LevyConfig(hidden=4, max_epochs=6, plateau_patience=2, patience=4)
    kw = dict(config=cfg, dtype=F64, progress=False)
    a = run("levy", ["ssp"], [0], engine="batched", **kw)[0]
    b = run("levy", ["ssp"], [0], engine="module", **kw)[0]
    assert a.param == "ssp" and a.lr == toy.lr and np.isfinite(a.score)
    assert a.score == pytest.approx(b.score, rel=1e-9)
    np.testing.assert_allclose(a.max_angular_change, b.max_angular_change, rtol=1e-7,
                               atol=1e-9)


def test_toy_trains_on_tiny_uci_data(toy):
    # the one fit loop on a stack equals its module reference
    from gmp.baselines import seeded_mlps
    from gmp.experiments.fit import FitConfig, fit, fit_module
    g = torch.Generator().manual_seed(0)
    S, N, n = 2, 20, 3
    x, xv = torch.randn(S, N, n, generator=g, dtype=F64), torch.randn(S, 6, n, generator=g,
                                                                      dtype=F64)
    y, yv = x.sum(-1).sin(), xv.sum(-1).sin()
    cfg = FitConfig(max_epochs=8, patience=3, plateau_patience=2, batch_size=8)
    a = fit(seeded_mlps("ssp", n, 5, [1, 2], dtype=F64), x, y, [0.01, 0.03], cfg, [3, 4],
            monitor=(xv, yv))
    for s, (seed, lr) in enumerate(((1, 0.01), (2, 0.03))):
        b = fit_module(seeded_mlps("ssp", n, 5, [seed], dtype=F64)[0], x[s], y[s], lr, cfg,
                       [3, 4][s], monitor=(xv[s], yv[s]))
        assert int(a.epochs_run[s]) == int(b.epochs_run[0])
        torch.testing.assert_close(a.best_monitor[s], b.best_monitor[0], rtol=1e-9, atol=0)


def test_toy_runs_a_uci_unit(toy):
    # the UCI seeds come from the param's seed id, not its place in a list
    from gmp.data.uci import UCIData
    from gmp.experiments import uci_protocol as uci
    from gmp.experiments.uci_runner import run_unit
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=40)
    cfg = uci.UCIConfig(protocol="honest-no-refit", splits=1, hidden=4, folds=2,
                        lr_grid=(1e-2,), max_epochs=5, patience=2, batch_size=16,
                        dtype="float64", params=("ssp",))
    entry = run_unit(UCIData("tiny", X, y, (0, 1, 2), 3), "ssp", cfg)
    assert np.isfinite(entry["test_rmse_mean"])


def test_toy_in_the_perturbation_experiment(toy):
    from gmp.perturbation import run_perturbation, sample_units
    r = run_perturbation("ssp", 1e-3, m=4, n=2, seed=1)
    w, b = sample_units(4, 2, seed=1)
    np.testing.assert_allclose(r.weight_before, w, rtol=1e-15)
    np.testing.assert_allclose(r.bias_before, b, rtol=1e-15)
    # like SP, a step of 1e-3 on weights of size 1e-3 turns the boundaries far
    assert np.median(r.angle_change_deg) > 1.0


def test_toy_builds_a_model(toy):
    from gmp.models import build_model
    torch.manual_seed(0)
    net = build_model("vgg6", "ssp", num_classes=3, width=1 / 32)
    assert net.param == "ssp"
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 3)
    with pytest.raises(NotImplementedError, match="'ssp' does not build a ResNet-18"):
        build_model("resnet18", "ssp", num_classes=3, width=1 / 32)


def test_toy_learning_rates_are_asked_of_the_spec(toy, monkeypatch):
    """The fixed learning rates (the small experiments', UCI's official ones) are the spec's,
    read when needed: a param registered at run time has them too."""
    from gmp.experiments import small
    from gmp.experiments.uci_protocol import UCIConfig
    assert small.default_lr("ssp") == toy.lr
    cfg = UCIConfig(protocol="official", params=("ssp",))
    assert cfg.to_dict()["lr"] == {"ssp": toy.lr}
    monkeypatch.setattr(toy, "lr", None)
    assert small._lrs("ssp", {"ssp": 0.05}) == [0.05]
    with pytest.raises(ValueError, match="has no default learning rate"):
        small._lrs("ssp", None)
