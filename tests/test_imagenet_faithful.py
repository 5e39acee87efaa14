"""The large benchmarks as the authors ran them (#28): the ``authors`` VGG-6 against their
``imagenet32.py`` / ``models.py`` (commit 0c48483), and the ``official`` protocol's plateau
schedule, early stopping and reported epoch on a scripted validation curve."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gmp.data.imagenet32 import write_synthetic
from gmp.models import build_model
from gmp.nn import GmPConv2d, InputMeanNorm, MeanOnlyBatchNorm
from gmp.train import TrainConfig, engine
from gmp.train import checkpoint as ckpt_io
from gmp.train.protocol import OfficialSchedule, PaperTextSchedule

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The layer lists of imagenet32.py's build_model, one token per Keras layer (RandomFlip is
# the data pipeline's flip here; Conv2D+ReLU activation is written as two tokens).
_BLOCK = {
    "standard": ["Conv", "ReLU"],
    "weightnorm": ["ConvWN", "ReLU"],
    "weightnorm_mbn": ["ConvWN", "MBN", "ReLU"],
    "batchnorm": ["Conv", "BN", "ReLU"],
    "gmp": ["GmP"],                 # Conv2DReparam(activation='relu'): r·ReLU(uᵀx + λ)
    "gmp_mn": ["GmP", "MN"],        # ... then MeanOnlyBatchNormalization()
}
_OURS = {"sp": "standard", "wn": "weightnorm", "wn_mbn": "weightnorm_mbn", "bn": "batchnorm",
         "gmp": "gmp", "gmp_imn": "gmp_mn"}


def _authors_order(name: str) -> list[str]:
    stage = _BLOCK[name] * 2 + ["Pool"]
    return stage * 3


def _token(m: nn.Module) -> str:
    if isinstance(m, GmPConv2d):
        return "GmP"
    if isinstance(m, nn.Conv2d):
        return "ConvWN" if parametrize.is_parametrized(m) else "Conv"
    return {InputMeanNorm: "MN", MeanOnlyBatchNorm: "MBN", nn.BatchNorm2d: "BN",
            nn.ReLU: "ReLU", nn.MaxPool2d: "Pool"}[type(m)]


@pytest.mark.parametrize("param", list(_OURS))
def test_layer_order_is_the_authors(param):
    model = build_model("vgg6", param, 10, width=1 / 16)
    assert [_token(m) for m in model.features] == _authors_order(_OURS[param])
    # classifier: Dense, or DenseWN for the WN variants; no IMN before it
    assert isinstance(model.fc, nn.Linear)
    assert parametrize.is_parametrized(model.fc) == param.startswith("wn")
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d)


def test_normalizer_settings_are_keras():
    for m in build_model("vgg6", "wn_mbn", 10, width=1 / 16).modules():
        if isinstance(m, MeanOnlyBatchNorm):   # center=False, momentum 0.99
            assert m.bias is None and m.momentum == pytest.approx(0.01)
        if isinstance(m, nn.Conv2d):
            assert m.bias is None  # cancelled by the mean removal that follows
    bns = [m for m in build_model("vgg6", "bn", 10, width=1 / 16).modules()
           if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 6 and all(b.momentum == pytest.approx(0.01) and b.eps == 1e-3
                                 for b in bns)
    imns = [m for m in build_model("vgg6", "gmp_imn", 10, width=1 / 16).modules()
            if isinstance(m, InputMeanNorm)]
    assert len(imns) == 6 and all(m.momentum == pytest.approx(0.01) for m in imns)


def test_imn_centres_each_gmp_output_before_pooling():
    torch.manual_seed(0)
    model = build_model("vgg6", "gmp_imn", 10, width=1 / 16).train()
    x = torch.randn(8, 3, 32, 32)
    feats = model.features
    h = feats[1](feats[0](x))  # first GmP unit, then its mean removal
    assert (feats[0](x) >= 0).all()   # r > 0 at init: r·ReLU(·) is non-negative
    torch.testing.assert_close(h.mean(dim=(0, 2, 3)), torch.zeros(h.shape[1]), atol=1e-5,
                               rtol=0)


def test_gmp_init_statistics_are_the_authors():
    """r = ‖w‖ of a Glorot draw with bound sqrt(6/(n + m)) (n = 9·C_in, m = C_out): mean
    r ≈ sqrt(2n/(n + m)), 0.59 in layer 1 and about 1.3 elsewhere; λ = 0; u_n ≥ 0."""
    torch.manual_seed(0)
    model = build_model("vgg6", "gmp_imn")
    convs = [m for m in model.modules() if isinstance(m, GmPConv2d)]
    means = []
    for c in convs:
        n, m = c.fan_in, c.out_channels
        assert c.lam is not None and torch.equal(c.lam, torch.zeros_like(c.lam))
        assert (c.unit_directions()[:, -1] >= 0).all()
        expected = math.sqrt(2 * n / (n + m))
        assert float(c.r.mean()) == pytest.approx(expected, rel=0.03)
        means.append(float(c.r.mean()))
    assert means[0] == pytest.approx(0.59, abs=0.02)
    assert all(1.25 < r < 1.37 for r in means[1:])


def test_gmp_units_are_in_unit_form():
    """r·ReLU(uᵀx + λ): a negative r negates the unit's output (the weight form would fire
    on the other side instead)."""
    torch.manual_seed(1)
    model = build_model("vgg6", "gmp", 10, width=1 / 16)
    c = model.features[0]
    assert isinstance(c.activation, nn.ReLU)
    assert not any(type(m) is nn.ReLU for m in model.features)  # no ReLU outside the units
    with torch.no_grad():
        c.r[0] = -2.0
    x = torch.randn(2, 3, 8, 8)
    u, lam = c.direction_and_offset()
    z = torch.nn.functional.conv2d(x, u.view(c.out_channels, 3, 3, 3), lam, padding=1)
    expected = torch.relu(z) * c.r.view(1, -1, 1, 1)
    torch.testing.assert_close(c(x), expected, atol=1e-5, rtol=1e-5)
    assert (c(x)[:, 0] <= 0).all() and (c(x)[:, 0] < 0).any()


@pytest.mark.parametrize("param", ["sp", "bn", "gmp", "gmp_imn"])
def test_dense_classifier_is_keras_glorot(param):
    torch.manual_seed(2)
    fc = build_model("vgg6", param).fc
    assert type(fc) is nn.Linear and torch.equal(fc.bias, torch.zeros(1000))
    bound = math.sqrt(6 / (512 + 1000))
    assert float(fc.weight.abs().max()) <= bound
    assert float(fc.weight.std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)


def test_baseline_convs_are_keras_and_wn_starts_at_g_equal_norm_v():
    torch.manual_seed(3)
    sp = build_model("vgg6", "sp").features[2]  # 128 -> 128
    bound = math.sqrt(6 / (9 * 128 + 9 * 128))
    assert torch.equal(sp.bias, torch.zeros(128))
    assert float(sp.weight.std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)
    wn = build_model("vgg6", "wn").features[2]
    v = wn.parametrizations.weight.original1
    g = wn.parametrizations.weight.original0
    torch.testing.assert_close(g.flatten(), v.flatten(1).norm(dim=1))
    wn_bound = math.sqrt(6 / (9 * 128 + 128))  # their GlorotUniformHyperWN
    assert float(v.std()) == pytest.approx(wn_bound / math.sqrt(3), rel=0.02)


# ------------------------------------------------------------------------------ protocols

# A scripted validation top-5 curve (epochs 1..20) and what Keras' callbacks do with it.
_CURVE = [0.10, 0.20, 0.30] + [0.30] * 5 + [0.35, 0.35 + 5e-5] + [0.30] * 10
# ReduceLROnPlateau(patience=5, min_delta=1e-4): bad epochs 4-8 -> ×0.1 from epoch 9;
# epoch 10 (+5e-5) is not a plateau improvement: bad epochs 10-14 -> ×0.1 from 15, 15-19 ->
# ×0.1 from 20. EarlyStopping(patience=10, min_delta=0): epoch 10 is the best (any increase);
# epochs 11-20 without one -> stop after epoch 20.
_LRS = [0.1] * 8 + [0.01] * 6 + [0.001] * 5 + [1e-4]
_BEST, _STOP = 10, 20


def test_official_schedule_on_a_scripted_curve():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    sched = OfficialSchedule(opt)
    lrs, best = [], 0
    for epoch, v in enumerate(_CURVE, 1):
        lrs.append(opt.param_groups[0]["lr"])
        if sched.step({"val_top5": v, "val_top1": 0.0}):
            best = epoch
        assert sched.stopped == (epoch == _STOP)
    assert lrs == pytest.approx(_LRS) and best == _BEST


def test_paper_text_schedule_steps_at_30_60_80():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    sched = PaperTextSchedule(opt, [30, 60, 80])
    lrs = []
    for _ in range(90):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step({"val_top1": 0.0, "val_top5": 0.0})
    assert lrs == pytest.approx([0.1] * 30 + [0.01] * 30 + [0.001] * 20 + [1e-4] * 10)
    assert not sched.stopped


@pytest.fixture(scope="module")
def in32(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("in32"), 32, 8, num_classes=10)


def _scripted_evaluate(monkeypatch):
    """engine.evaluate returning _CURVE's top-5, one value per call (epoch)."""
    calls = {"n": 0}

    def evaluate(model, data, ctx, amp):
        v = _CURVE[calls["n"]]
        calls["n"] += 1
        return {"val_loss": 1.0, "val_top1": v / 2, "val_top5": v, "val_images": 8}

    monkeypatch.setattr(engine, "evaluate", evaluate)
    return calls


def _cfg(data, out, **kw) -> TrainConfig:
    base = dict(task="imagenet32", data=str(data), out=str(out), param="gmp_imn",
                width=1 / 16, num_classes=10, batch_size=16, max_steps_per_epoch=1,
                device="cpu", tensorboard=False, progress=False, epochs=50)
    base.update(kw)
    return TrainConfig(**base)


def test_official_protocol_end_to_end(in32, tmp_path, monkeypatch):
    """gmp-train's default protocol: the LR follows the plateaus, training stops after 10
    epochs without a better top-5, best.pt and the reported numbers are the best epoch's;
    a run killed in the middle resumes to the same end."""
    _scripted_evaluate(monkeypatch)
    res = engine.train(_cfg(in32, tmp_path / "a"))
    assert [r["lr"] for r in res.history] == pytest.approx(_LRS)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["finished"] and summary["stopped_early"]
    assert summary["epochs_completed"] == _STOP and summary["best_epoch"] == _BEST
    assert summary["reported"] == {"rule": "best-val-top5-epoch", "epoch": _BEST,
                                   "val_top1": _CURVE[_BEST - 1] / 2,
                                   "val_top5": _CURVE[_BEST - 1]}
    assert ckpt_io.load(tmp_path / "a" / "best.pt")["epoch"] == _BEST

    calls = _scripted_evaluate(monkeypatch)

    class Killed(Exception):
        pass

    def kill(epoch, step):
        if epoch == 12:
            raise Killed

    with pytest.raises(Killed):
        engine.train(_cfg(in32, tmp_path / "b"), on_step=kill)
    calls["n"] = 12  # the resumed run validates epochs 13.. of the script
    res_b = engine.train(_cfg(in32, tmp_path / "b", resume=True))
    assert [r["lr"] for r in res_b.history] == pytest.approx(_LRS)
    again = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert again["reported"] == summary["reported"] and again["stopped_early"]
    n = calls["n"]
    engine.train(_cfg(in32, tmp_path / "b", resume=True))  # stopped: nothing to train
    assert calls["n"] == n


def test_paper_text_protocol_reports_the_final_epoch(in32, tmp_path, monkeypatch):
    _scripted_evaluate(monkeypatch)
    engine.train(_cfg(in32, tmp_path / "p", protocol="paper-text", epochs=12,
                      milestones=[10]))
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["reported"]["rule"] == "final-epoch"
    assert summary["reported"]["epoch"] == 12 and not summary["stopped_early"]
    assert [r["lr"] for r in summary["history"]] == pytest.approx([0.1] * 10 + [0.01] * 2)
