"""gmp.convert / gmp.revert: function-preserving, all-or-nothing model conversion."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

import gmp
from gmp import ConversionError, GmPConv2d, GmPLinear, InputMeanNorm

F64 = torch.float64

CONV_OPTIONS = [
    dict(),
    dict(stride=2),
    dict(padding=1),
    dict(padding="same"),
    dict(padding="same", dilation=2),
    dict(padding=(1, 2), dilation=(2, 1), stride=(1, 2)),
    dict(groups=2, padding=1),
    dict(groups=4, padding="same", padding_mode="reflect"),
    dict(padding=1, padding_mode="circular"),
    dict(padding=2, padding_mode="replicate", bias=False),
    dict(kernel_size=(1, 3), padding="valid"),
]


def small_cnn(opts: dict) -> nn.Module:
    opts = dict(opts)
    k = opts.pop("kernel_size", 3)
    return nn.Sequential(
        nn.Conv2d(4, 8, k, **opts), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding="same", bias=False), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


def test_mlp_roundtrip_outputs_and_gradients():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 2)).double()
    x = torch.randn(32, 6, dtype=F64, requires_grad=True)
    ref = model(x)
    (gx_ref,) = torch.autograd.grad(ref.sum(), x)
    converted = gmp.convert(copy.deepcopy(model))
    assert [type(m) for m in converted] == [GmPLinear, nn.ReLU, GmPLinear, nn.ReLU, GmPLinear]
    y = converted(x)
    torch.testing.assert_close(y, ref, rtol=1e-13, atol=1e-13)
    (gx,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-13, atol=1e-13)
    reverted = gmp.revert(converted)
    assert all(type(m) in (nn.Linear, nn.ReLU) for m in reverted)
    torch.testing.assert_close(reverted(x), ref, rtol=1e-13, atol=1e-13)
    for a, b in zip(reverted.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("opts", CONV_OPTIONS, ids=[str(o) for o in CONV_OPTIONS])
def test_cnn_roundtrip_every_conv_option(opts):
    torch.manual_seed(0)
    model = small_cnn(opts).double()
    x = torch.randn(2, 4, 9, 10, dtype=F64)
    ref = model(x)
    converted = gmp.convert(copy.deepcopy(model))
    first = converted[0]
    assert isinstance(first, GmPConv2d)
    for attr in ("stride", "padding", "dilation", "groups", "padding_mode", "kernel_size"):
        assert getattr(first, attr) == getattr(model[0], attr)
    assert (first.lam is None) == (model[0].bias is None)
    torch.testing.assert_close(converted(x), ref, rtol=1e-12, atol=1e-12)
    reverted = gmp.revert(converted)
    assert type(reverted[0]) is nn.Conv2d and reverted[0].padding_mode == model[0].padding_mode
    torch.testing.assert_close(reverted(x), ref, rtol=1e-12, atol=1e-12)


def test_float32_roundtrip():
    torch.manual_seed(0)
    model = small_cnn({"padding": 1})
    x = torch.randn(3, 4, 8, 8)
    ref = model(x)
    torch.testing.assert_close(gmp.convert(copy.deepcopy(model))(x), ref, rtol=1e-5, atol=1e-6)


def test_bare_layers_and_idempotence():
    lin = nn.Linear(3, 2)
    g = gmp.convert(lin)
    assert isinstance(g, GmPLinear) and gmp.convert(g) is g
    assert type(gmp.revert(g)) is nn.Linear
    conv = gmp.convert(nn.Conv2d(2, 3, 3))
    assert isinstance(conv, GmPConv2d)
    relu = nn.ReLU()
    assert gmp.convert(relu) is relu


def test_imn_insertion():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 7), nn.ReLU(), nn.Linear(7, 1))
    ref_model = copy.deepcopy(model)
    gmp.convert(model, imn=True)
    assert isinstance(model[0], GmPLinear)
    for i in (2, 4):
        assert isinstance(model[i], nn.Sequential)
        assert isinstance(model[i][0], InputMeanNorm) and isinstance(model[i][1], GmPLinear)
        assert model[i][0].num_features == 7
    x = torch.randn(16, 5)
    model.eval()  # running means are still 0: IMN is the identity, the function is unchanged
    torch.testing.assert_close(model(x), ref_model(x), rtol=1e-5, atol=1e-6)
    all_imn = gmp.convert(copy.deepcopy(ref_model), imn=True, skip_first=False)
    assert isinstance(all_imn[0][0], InputMeanNorm)


def test_training_flag_and_shared_modules_are_kept():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared).eval()
    gmp.convert(model, imn=True)
    assert model[0] is model[2] and isinstance(model[0], GmPLinear)
    assert not any(m.training for m in model.modules())


def test_conversion_errors_list_every_layer_and_leave_the_model_unchanged():
    torch.manual_seed(0)
    bad_bias = nn.Linear(3, 3)
    with torch.no_grad():
        bad_bias.weight[1] = 0
    nan_conv = nn.Conv2d(2, 2, 1)
    with torch.no_grad():
        nan_conv.weight[0, 0] = float("inf")

    class MyLinear(nn.Linear):
        pass

    model = nn.Sequential(nn.Linear(3, 3), weight_norm(nn.Linear(3, 3)), MyLinear(3, 3),
                          bad_bias, nn.Conv1d(1, 1, 1), nan_conv, nn.LazyLinear(2),
                          nn.MultiheadAttention(4, 2))
    before = [type(m) for m in model.modules()]
    with pytest.raises(ConversionError) as info:
        gmp.convert(model)
    msg = str(info.value)
    assert "7 layer(s) could not be converted" in msg and "not modified" in msg
    for needle in ["1 (ParametrizedLinear): layer carries torch parametrizations",
                   "2 (MyLinear): subclass of nn.Linear",
                   "3 (Linear): GmPLinear.from_linear: units [1] have a zero weight vector",
                   "4 (Conv1d): only nn.Linear and nn.Conv2d", "5 (Conv2d): GmPConv2d.from_conv:"
                   " non-finite weight or bias in units [0]", "6 (LazyLinear): lazy layer",
                   "7.out_proj (NonDynamicallyQuantizableLinear)"]:
        assert needle in msg, needle
    assert [type(m) for m in model.modules()] == before  # all or nothing


def test_non_strict_leaves_other_convolutions():
    model = nn.Sequential(nn.Conv1d(1, 2, 1), nn.Linear(2, 2))
    gmp.convert(model, strict=False)
    assert type(model[0]) is nn.Conv1d and isinstance(model[1], GmPLinear)


def test_unknown_init():
    with pytest.raises(ValueError, match="unknown init 'he'"):
        gmp.convert(nn.Linear(2, 2), init="he")


def test_convert_keeps_rng_state_and_device_dtype():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2)).double()
    model(torch.randn(1, 3, 5, 5, dtype=F64))  # materialize the lazy layer
    state = torch.random.get_rng_state()
    gmp.convert(model)
    assert torch.equal(state, torch.random.get_rng_state())
    assert model[0].theta.dtype == F64 and model[2].r.dtype == F64



class _TiedLM(nn.Module):
    """A toy language model whose output head shares its weight with the embedding."""

    def __init__(self, vocab: int = 11, dim: int = 6) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight            # tied

    def forward(self, tokens):
        return self.head(torch.relu(self.mix(self.embed(tokens))))


def test_convert_refuses_to_untie_tied_parameters():
    """Converting the head alone would keep the outputs right after conversion and then let
    the two weights drift apart in training: refused, naming both places, model unchanged."""
    torch.manual_seed(0)
    model = _TiedLM()
    with pytest.raises(ConversionError, match=r"head \(Linear\): its weight is tied to "
                                              r"embed\.weight"):
        gmp.convert(model)
    assert type(model.head) is nn.Linear and type(model.mix) is nn.Linear
    assert model.head.weight is model.embed.weight
    # two Linear layers sharing one weight: refused as well
    a = nn.Linear(4, 4)
    b = nn.Linear(4, 4)
    b.weight = a.weight
    with pytest.raises(ConversionError, match="tied to 1.weight"):
        gmp.convert(nn.Sequential(a, b))
    # the same module registered twice is one layer, not a tie: converted once, shared
    shared = nn.Linear(4, 4)
    seq = gmp.convert(nn.Sequential(shared, nn.ReLU(), shared))
    assert seq[0] is seq[2] and isinstance(seq[0], GmPLinear)
