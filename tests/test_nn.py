"""gmp.nn: GmP layers (equivalence to the explicit GmP unit, init, caching, compile) and the
mean normalizers IMN / MBN (train/eval, buffers, synchronization across processes)."""

import io
import math
import os
import socket

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gmp.geometry import _unit_vector_reference
from gmp.nn import GmPConv2d, GmPLinear, InputMeanNorm, MeanOnlyBatchNorm

F64 = torch.float64


def gmp_units(x: torch.Tensor, theta, lam, r) -> torch.Tensor:
    """The paper's unit written out: ``r · ReLU(u(θ)ᵀx + λ)`` for every unit, ``(N, m)``."""
    u = _unit_vector_reference(theta)  # (m, n)
    return r * torch.relu(x @ u.T + lam)


def randomize_(layer, r_positive: bool = True) -> None:
    with torch.no_grad():
        layer.theta.copy_(torch.randn_like(layer.theta) * 2)
        layer.r.copy_(torch.rand_like(layer.r) + 0.5 if r_positive else torch.randn_like(layer.r))
        if layer.lam is not None:
            layer.lam.copy_(torch.randn_like(layer.lam))


def grads(*tensors):
    return [t.grad.clone() for t in tensors]


# ----- equivalence to the explicit unit -------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 7])
def test_linear_equals_explicit_gmp_unit_outputs_and_gradients(n):
    torch.manual_seed(n)
    layer = GmPLinear(n, 5, dtype=F64)
    randomize_(layer)
    x1 = torch.randn(9, n, dtype=F64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    y1 = torch.relu(layer(x1))
    theta = layer.theta.detach().clone().requires_grad_()
    lam = layer.lam.detach().clone().requires_grad_()
    r = layer.r.detach().clone().requires_grad_()
    if n == 1:  # no angles: the fixed direction ±1
        y2 = r * torch.relu(x2 @ layer.direction.T + lam)
    else:
        y2 = gmp_units(x2, theta, lam, r)
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    torch.testing.assert_close(grads(x1, layer.lam, layer.r), grads(x2, lam, r))
    if n > 1:
        torch.testing.assert_close(layer.theta.grad, theta.grad, rtol=1e-10, atol=1e-12)
    assert not layer.direction.requires_grad


def test_conv_equals_explicit_gmp_unit_on_patches():
    torch.manual_seed(0)
    conv = GmPConv2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=F64)
    randomize_(conv)
    x = torch.randn(2, 4, 7, 7, dtype=F64)
    y = torch.relu(conv(x))  # (2, 6, 4, 4)
    patches = F.unfold(x, 3, padding=1, stride=2)  # (2, 4·9, 16): group g uses rows g·18:(g+1)·18
    for g in range(2):
        cols = patches[:, g * 18:(g + 1) * 18].transpose(1, 2).reshape(-1, 18)
        units = slice(g * 3, (g + 1) * 3)
        ref = gmp_units(cols, conv.theta[units], conv.lam[units], conv.r[units])
        got = y[:, units].permute(0, 2, 3, 1).reshape(-1, 3)
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_negative_r_is_still_the_reparameterized_linear_map():
    layer = GmPLinear(4, 3, dtype=F64)
    randomize_(layer, r_positive=False)
    x = torch.randn(5, 4, dtype=F64)
    w = layer.r[:, None] * _unit_vector_reference(layer.theta)
    torch.testing.assert_close(layer(x), x @ w.T + layer.r * layer.lam)


@pytest.mark.parametrize("make", [
    lambda: GmPLinear(5, 3, dtype=F64),
    lambda: GmPLinear(1, 3, dtype=F64),
    lambda: GmPConv2d(2, 4, 3, padding="same", groups=2, padding_mode="reflect", dtype=F64),
    lambda: GmPConv2d(3, 2, (1, 2), stride=(2, 1), dilation=(1, 2), bias=False, dtype=F64),
])
def test_gradcheck_layers(make):
    torch.manual_seed(0)
    layer = make()
    randomize_(layer)
    shape = (2, layer.in_features) if isinstance(layer, GmPLinear) else (2, layer.in_channels,
                                                                         5, 6)
    x = torch.randn(shape, dtype=F64, requires_grad=True)
    params = [p for p in (layer.theta, layer.lam, layer.r) if p is not None]

    def f(x, *ps):
        return torch.func.functional_call(layer, dict(zip(
            [n for n, p in layer.named_parameters()], ps, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params))


# ----- initialization -------------------------------------------------------------------------

def test_sphere_init_is_uniform_on_the_sphere():
    torch.manual_seed(0)
    m, n = 4000, 5
    layer = GmPLinear(n, m, dtype=F64)
    assert torch.equal(layer.r, torch.ones(m, dtype=F64))
    assert torch.equal(layer.lam, torch.zeros(m, dtype=F64))
    u = layer.unit_directions().detach()
    # E[u] = 0 and E[u uᵀ] = I/n for the uniform distribution on S^{n-1}
    assert float(u.mean(0).abs().max()) < 4 / math.sqrt(m)
    cov = u.T @ u / m
    assert float((cov - torch.eye(n, dtype=F64) / n).abs().max()) < 4 / math.sqrt(m)
    # the sign of every coordinate is balanced (the stable inverse keeps the last one's sign)
    assert float((u > 0).double().mean(0).sub(0.5).abs().max()) < 4 / math.sqrt(m)


def test_sphere_init_n1_draws_both_directions():
    torch.manual_seed(0)
    layer = GmPLinear(1, 400)
    d = layer.direction.flatten()
    assert set(d.tolist()) == {-1.0, 1.0} and abs(float(d.mean())) < 0.2
    assert layer.theta.shape == (400, 0)


def test_glorot_init():
    torch.manual_seed(0)
    layer = GmPLinear(30, 20, init="glorot", dtype=F64)
    bound = math.sqrt(6 / (30 + 20))
    w, b = (t.detach() for t in layer.weight_and_bias())
    assert float(w.abs().max()) <= bound + 1e-12
    torch.testing.assert_close(layer.r, torch.linalg.vector_norm(w, dim=1))
    assert torch.equal(layer.lam, torch.zeros(20, dtype=F64)) and bool((b == 0).all())
    conv = GmPConv2d(4, 8, 3, init="glorot", dtype=F64)
    wc = conv.weight_and_bias()[0].detach()
    assert float(wc.abs().max()) <= math.sqrt(6 / (4 * 9 + 8 * 9)) + 1e-12


def test_init_is_reproducible_and_seeded():
    torch.manual_seed(3)
    a = GmPConv2d(3, 4, 3)
    torch.manual_seed(3)
    b = GmPConv2d(3, 4, 3)
    assert torch.equal(a.theta, b.theta)


# ----- errors ---------------------------------------------------------------------------------

def test_error_messages():
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        GmPLinear(3, 2, init="xavier")
    with pytest.raises(ValueError, match="expected input with 3 features.*got shape \\(4, 5\\)"):
        GmPLinear(3, 2)(torch.randn(4, 5))
    with pytest.raises(ValueError, match=r"expected input \(N, 3, H, W\)"):
        GmPConv2d(3, 2, 3)(torch.randn(1, 4, 5, 5))
    with pytest.raises(ValueError, match="fan-in must be >= 1"):
        GmPLinear(0, 2)
    with pytest.raises(ValueError, match="expected input \\(N, 4, ...\\)"):
        InputMeanNorm(4)(torch.randn(3, 5))
    with pytest.raises(ValueError, match="momentum"):
        MeanOnlyBatchNorm(4, momentum=0.0)
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite weight or bias in units \[1\]"):
        GmPLinear.from_linear(lin)
    with pytest.raises(TypeError, match="expects an nn.Linear"):
        GmPLinear.from_linear(nn.Conv2d(1, 1, 1))


# ----- conversion of a single layer -----------------------------------------------------------

def test_from_linear_to_linear_exact_and_rng_untouched():
    torch.manual_seed(0)
    lin = nn.Linear(6, 4).double()
    state = torch.random.get_rng_state()
    g = GmPLinear.from_linear(lin)
    assert torch.equal(state, torch.random.get_rng_state())
    x = torch.randn(3, 6, dtype=F64)
    torch.testing.assert_close(g(x), lin(x), rtol=1e-14, atol=1e-14)
    back = g.to_linear()
    torch.testing.assert_close(back.weight, lin.weight, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(back.bias, lin.bias, rtol=1e-14, atol=1e-15)
    assert torch.equal(g.direction, torch.ones(4, 1, dtype=F64))


# ----- state_dict, eval cache -----------------------------------------------------------------

def test_state_dict_save_and_load():
    torch.manual_seed(0)
    a, b = GmPConv2d(3, 5, 3, padding=1), GmPConv2d(3, 5, 3, padding=1)
    assert set(a.state_dict()) == {"theta", "r", "lam", "direction"}
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf))
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    c = GmPLinear(1, 4)
    c2 = GmPLinear(1, 4)
    c2.load_state_dict(c.state_dict())
    assert torch.equal(c.direction, c2.direction)


def test_eval_cache_is_used_and_invalidated():
    torch.manual_seed(0)
    layer = GmPLinear(8, 4)
    x = torch.randn(3, 8)
    layer.eval()
    with torch.no_grad():
        y0 = layer(x)
        w_cached = layer._weight_cache[1]
        layer(x)
        assert layer._weight_cache[1] is w_cached  # reused
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer.train()
    assert layer._weight_cache is None
    layer(x).sum().backward()
    opt.step()
    layer.eval()
    with torch.no_grad():
        y1 = layer(x)
        torch.testing.assert_close(y1, layer.to_linear()(x))
    assert not torch.allclose(y0, y1)
    with torch.no_grad():  # in-place edits bump version counters: the cache notices
        layer.lam.add_(1.0)
        torch.testing.assert_close(layer(x), layer.to_linear()(x))
        layer.load_state_dict(GmPLinear(8, 4).state_dict())
        torch.testing.assert_close(layer(x), layer.to_linear()(x))
        layer.r.data.mul_(2)  # .data bypasses version counters: documented, clear by hand
        layer.clear_weight_cache()
        torch.testing.assert_close(layer(x), layer.to_linear()(x))
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), layer.to_linear()(x))


def test_eval_with_autograd_recomputes_and_differentiates():
    layer = GmPLinear(5, 3).eval()
    x = torch.randn(2, 5)
    layer(x).sum().backward()
    assert layer.theta.grad is not None and layer._weight_cache is None


def test_training_mode_does_not_cache_under_no_grad():
    layer = GmPLinear(5, 3)
    with torch.no_grad():
        layer(torch.randn(2, 5))
    assert layer._weight_cache is None


# ----- torch.compile --------------------------------------------------------------------------

def test_torch_compile_matches_eager():
    """Dynamo + AOTAutograd trace the fused Function (its backward has one data-dependent
    check, so Dynamo breaks the graph there and runs it eagerly). ``aot_eager`` rather than
    ``inductor``: inductor also works here but compiles C++ for ~30 s on this machine."""
    torch.manual_seed(0)
    model = nn.Sequential(GmPLinear(5, 8), nn.ReLU(), GmPLinear(8, 2))
    x = torch.randn(4, 5)
    compiled = torch.compile(model, backend="aot_eager")
    y = compiled(x)
    y.square().sum().backward()
    g_compiled = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    y_eager = model(x)
    y_eager.square().sum().backward()
    torch.testing.assert_close(y, y_eager)
    for a, p in zip(g_compiled, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)


# ----- IMN / MBN ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(64, 3), (16, 3, 5, 4)])
def test_imn_train_and_eval(shape):
    torch.manual_seed(0)
    imn = InputMeanNorm(3, momentum=0.25)
    x = torch.randn(shape) + torch.tensor([1.0, -2.0, 3.0]).view((1, 3) + (1,) * (len(shape) - 2))
    dims = [0] + list(range(2, len(shape)))
    y = imn(x)
    torch.testing.assert_close(y.mean(dims), torch.zeros(3), rtol=0, atol=1e-5)
    torch.testing.assert_close(imn.running_mean, 0.25 * x.mean(dims))
    assert int(imn.num_batches_tracked) == 1
    imn(x)
    torch.testing.assert_close(imn.running_mean, (1 - 0.75 ** 2) * x.mean(dims))
    imn.eval()
    before = imn.running_mean.clone()
    y_eval = imn(x)
    torch.testing.assert_close(y_eval, x - before.view((1, 3) + (1,) * (len(shape) - 2)))
    assert torch.equal(imn.running_mean, before)  # eval does not update
    assert set(imn.state_dict()) == {"running_mean", "num_batches_tracked"}
    assert not list(imn.parameters())


def test_imn_gradient_goes_through_the_batch_mean():
    x = torch.randn(10, 2, requires_grad=True)
    InputMeanNorm(2)(x)[:, 0].sum().backward()
    torch.testing.assert_close(x.grad, torch.zeros(10, 2))  # Σ (x - mean) has zero gradient


@pytest.mark.parametrize("shape", [(32, 4), (8, 4, 3, 3)])
def test_mbn_train_and_eval(shape):
    torch.manual_seed(0)
    mbn = MeanOnlyBatchNorm(4)
    with torch.no_grad():
        mbn.bias.copy_(torch.arange(4.0))
    x = torch.randn(shape) * 3 + 1
    dims = [0] + list(range(2, len(shape)))
    y = mbn(x)
    torch.testing.assert_close(y.mean(dims), torch.arange(4.0), rtol=0, atol=1e-5)
    torch.testing.assert_close(y.var(dims), x.var(dims))  # mean only: scale untouched
    y.sum().backward()
    assert mbn.bias.grad is not None
    mbn.eval()
    view = (1, 4) + (1,) * (len(shape) - 2)
    torch.testing.assert_close(mbn(x), x - mbn.running_mean.view(view) + mbn.bias.view(view))
    assert set(mbn.state_dict()) == {"running_mean", "num_batches_tracked", "bias"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(GmPLinear(3, 4), InputMeanNorm(4), GmPLinear(4, 1))
    ddp = nn.parallel.DistributedDataParallel(model)
    x = torch.randn(6, 3) + rank * 10  # different data on each rank
    ddp(x).sum().backward()
    torch.save({"running_mean": model[1].running_mean, "x": x,
                "grad": model[0].theta.grad}, f"{out}/{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_imn_synchronized_under_ddp(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"{k}.pt") for k in (0, 1))
    torch.testing.assert_close(r0["running_mean"], r1["running_mean"], rtol=0, atol=0)
    torch.testing.assert_close(r0["grad"], r1["grad"])  # DDP averaged, identical
    # the running mean is that of the union of both ranks' batches
    torch.manual_seed(0)
    first = GmPLinear(3, 4)
    both = torch.cat([r0["x"], r1["x"]])
    with torch.no_grad():
        expected = 0.1 * first(both).mean(0)
    torch.testing.assert_close(r0["running_mean"], expected)
    # the gradient flows through the synchronized mean: DDP's average of the per-rank
    # gradients equals half the gradient of one model on the union batch
    torch.manual_seed(0)
    model = nn.Sequential(GmPLinear(3, 4), InputMeanNorm(4), GmPLinear(4, 1))
    (0.5 * model(both).sum()).backward()
    torch.testing.assert_close(r0["grad"], model[0].theta.grad)
