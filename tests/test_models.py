"""VGG-6 and ResNet-18 under every parameterization: structure, placement of IMN/MBN, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gmp.models import ARCHS, build_model, count_parameters
from gmp.nn import GmPConv2d, GmPLinear, InputMeanNorm, MeanOnlyBatchNorm
from gmp.params import ALL_PARAMS as PARAMS
from gmp.train.engine import decay_groups

torch.set_num_threads(1)


def _count(model: nn.Module, kind) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def _convs(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("param", PARAMS)
def test_every_variant_trains_a_step(arch, param):
    torch.manual_seed(0)
    model = build_model(arch, param, num_classes=7, width=1 / 16)
    x = torch.randn(4, 3, 32, 32)
    out = model(x)
    assert out.shape == (4, 7)
    out.logsumexp(1).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    model.eval()
    assert torch.isfinite(model(x)).all()


def test_vgg6_layout_at_full_width():
    model = build_model("vgg6", "sp")
    assert [c.out_channels for c in _convs(model)] == [128, 128, 256, 256, 512, 512]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in _convs(model))
    assert _count(model, nn.MaxPool2d) == 3 and model.fc.out_features == 1000
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1000)


def test_resnet18_bn_is_torchvisions():
    import torchvision

    ref = torchvision.models.resnet18(num_classes=1000).state_dict()
    ours = build_model("resnet18", "bn").state_dict()
    assert [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in ref.items()]


@pytest.mark.parametrize("arch,layers", [("vgg6", 7), ("resnet18", 21)])
def test_where_imn_and_mbn_sit_book_v1(arch, layers):
    kw = dict(width=1 / 16, preset="book-v1")
    gmp_imn = build_model(arch, "gmp_imn", 10, **kw)
    n_gmp = _count(gmp_imn, (GmPConv2d, GmPLinear))
    assert n_gmp == layers and _count(gmp_imn, InputMeanNorm) == layers - 1  # not the stem
    assert _count(build_model(arch, "gmp", 10, **kw), InputMeanNorm) == 0
    wn_mbn = build_model(arch, "wn_mbn", 10, **kw)
    wn_convs = [m for m in wn_mbn.modules()
                if isinstance(m, nn.Conv2d) and parametrize.is_parametrized(m)]
    assert len(wn_convs) == layers - 1 and all(c.bias is None for c in wn_convs)
    assert _count(wn_mbn, MeanOnlyBatchNorm) == layers - 1  # one per conv, not on the output
    assert parametrize.is_parametrized(wn_mbn.fc)
    bn = build_model(arch, "bn", 10, **kw)
    assert _count(bn, nn.BatchNorm2d) == layers - 1
    assert all(c.bias is None for c in _convs(bn))


@pytest.mark.parametrize("preset", ["authors", "book-v1"])
def test_resnet_block_placement(preset):
    block = build_model("resnet18", "gmp_imn", 10, width=1 / 16, preset=preset).layer2[0]
    for seq in (block.conv1, block.conv2, block.downsample[0]):  # IMN, then the GmP conv
        assert isinstance(seq[0], InputMeanNorm) and isinstance(seq[1], GmPConv2d)
    assert block.downsample[0][1].kernel_size == (1, 1)
    mbn = build_model("resnet18", "wn_mbn", 10, width=1 / 16).layer2[0]
    assert isinstance(mbn.bn1, MeanOnlyBatchNorm) and isinstance(mbn.bn2, MeanOnlyBatchNorm)
    assert isinstance(mbn.downsample[1], MeanOnlyBatchNorm)  # before the addition


def test_weight_norm_is_a_reparameterization_at_init():
    """book-v1, same seed: WN starts as exactly the SP function (g = ‖v‖)."""
    x = torch.randn(2, 3, 32, 32)
    for arch in ARCHS:
        torch.manual_seed(3)
        sp = build_model(arch, "sp", 10, width=1 / 8, preset="book-v1")
        torch.manual_seed(3)
        wn = build_model(arch, "wn", 10, width=1 / 8, preset="book-v1")
        assert count_parameters(wn) > count_parameters(sp)  # one g per unit
        torch.testing.assert_close(wn(x), sp(x), rtol=1e-4, atol=1e-5)


def test_build_model_errors():
    with pytest.raises(ValueError, match="unknown architecture 'vgg16'"):
        build_model("vgg16", "sp")
    with pytest.raises(ValueError, match="unknown parameterization 'ln'"):
        build_model("vgg6", "ln")
    with pytest.raises(ValueError, match="width must be a positive"):
        build_model("vgg6", "sp", width=0)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("resnet18", "bn", num_classes=0)


def test_weight_decay_groups():
    model = build_model("resnet18", "gmp_imn", 10, width=1 / 16, preset="book-v1")
    decay, no_decay = decay_groups(model, 1e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    dec = {names[id(p)].rsplit(".", 1)[-1] for p in decay["params"]}
    nodec = {names[id(p)].rsplit(".", 1)[-1] for p in no_decay["params"]}
    assert dec == {"r"} and nodec == {"theta", "lam"}
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    bn = build_model("resnet18", "bn", 10, width=1 / 16)
    groups = decay_groups(bn, 1e-4)
    assert sum(p.numel() for g in groups for p in g["params"]) == count_parameters(bn)
    assert all(p.dim() > 1 for p in groups[0]["params"])  # conv/fc weights only
    wn = build_model("vgg6", "wn", 10, width=1 / 16)
    dec = {n.rsplit(".", 1)[-1] for n, p in wn.named_parameters()
           if any(p is q for q in decay_groups(wn, 1.0)[0]["params"])}
    assert dec == {"original0", "original1"}


def test_layer_factories_decide_every_param_and_reject_unknown_ones():
    from gmp import layers
    from gmp.params import ALL_PARAMS

    for p in ALL_PARAMS:
        c = layers.conv(p, 3, 4, 3, padding=1)
        assert c(torch.randn(2, 3, 5, 5)).shape == (2, 4, 5, 5)
        assert layers.classifier(p, 4, 7)(torch.randn(2, 4)).shape == (2, 7)
        assert isinstance(layers.norm_layer(p)(4), nn.Module)
    assert layers.norm_layer("bn") is nn.BatchNorm2d
    for bad in (lambda: layers.conv("ln", 3, 4, 3), lambda: layers.classifier("ln", 4, 7),
                lambda: layers.norm_layer("ln"), lambda: layers.hidden_layer("gmp_imn", 2, 3)):
        with pytest.raises(ValueError, match="unknown parameterization"):
            bad()
