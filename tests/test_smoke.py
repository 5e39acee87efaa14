"""Package-level smoke tests: public API imports and a conversion round trip."""

import torch

import gmp


def test_public_api():
    for name in gmp.__all__:
        assert hasattr(gmp, name), name


def test_convert_revert_mlp_roundtrip():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    x = torch.randn(64, 6)
    ref = model(x)
    gmp.convert(model)
    assert isinstance(model[0], gmp.GmPLinear)
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-6)
    gmp.revert(model)
    assert type(model[0]) is torch.nn.Linear
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-6)
