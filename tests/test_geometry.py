"""gmp.geometry: u(θ), its fused O(n) backward, the stable inverse, and the metric G = JᵀJ."""

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gmp.geometry import (
    _suffix_sums,
    _unit_vector_reference,
    angles,
    metric_diagonal,
    metric_tensor,
    scaled_unit_vector,
    unit_vector,
)

F64 = torch.float64
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def roundtrip_error(v: torch.Tensor) -> float:
    """max |norm·u(θ) - v|; for n = 1 the direction (sign) is not encoded by angles."""
    theta, norm = angles(v)
    u = unit_vector(theta) if v.shape[-1] > 1 else torch.where(v >= 0, 1.0, -1.0).to(v)
    return float((norm.unsqueeze(-1) * u - v).abs().max())


# ----- forward --------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_unit_vector_matches_the_definition(n):
    theta = torch.randn(5, n - 1, dtype=F64) * 2
    expected = torch.empty(5, n, dtype=F64)
    for i in range(n):
        prod = torch.prod(torch.sin(theta[:, :i]), dim=-1)
        expected[:, i] = prod * (torch.cos(theta[:, i]) if i < n - 1 else 1.0)
    torch.testing.assert_close(unit_vector(theta), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("shape", [(6,), (2, 6), (3, 2, 6), (4, 1, 0)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_unit_vector_any_batch_shape_and_dtype(shape, dtype):
    theta = torch.randn(shape, dtype=dtype)
    u = unit_vector(theta)
    assert u.shape == shape[:-1] + (shape[-1] + 1,) and u.dtype == dtype
    torch.testing.assert_close(torch.linalg.vector_norm(u, dim=-1),
                               torch.ones(shape[:-1], dtype=dtype))
    flat = unit_vector(theta.reshape(math.prod(shape[:-1]), shape[-1])).reshape(u.shape)
    torch.testing.assert_close(u, flat, rtol=0, atol=0)


def test_scaled_unit_vector_is_r_times_u():
    theta, r = torch.randn(4, 9, dtype=F64), torch.randn(4, dtype=F64)
    torch.testing.assert_close(scaled_unit_vector(theta, r), r[:, None] * unit_vector(theta),
                               rtol=1e-15, atol=1e-15)
    empty = torch.empty(4, 0, dtype=F64)
    torch.testing.assert_close(scaled_unit_vector(empty, r), r[:, None])


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=40))
def test_unit_norm_for_every_real_theta(values):
    u = unit_vector(torch.tensor(values, dtype=F64))
    assert abs(float(torch.linalg.vector_norm(u)) - 1.0) < 1e-12


# ----- inverse --------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 5, 64, 4608])
def test_roundtrip_random_vectors(n):
    torch.manual_seed(n)
    v = torch.randn(3, n, dtype=F64) * torch.tensor([[1e-3], [1.0], [1e4]], dtype=F64)
    assert roundtrip_error(v) <= 1e-12 * float(v.abs().max())


def test_roundtrip_angles_to_vector_to_angles():
    torch.manual_seed(0)
    theta = torch.rand(50, 6, dtype=F64) * math.pi  # canonical range: (0, π) ...
    theta[:, -1] = (torch.rand(50, dtype=F64) * 2 - 1) * math.pi  # ... and (-π, π) last
    back, norm = angles(unit_vector(theta))
    torch.testing.assert_close(back, theta, rtol=0, atol=1e-12)
    torch.testing.assert_close(norm, torch.ones(50, dtype=F64), rtol=0, atol=1e-15)


ADVERSARIAL = [
    [1.0, 0.0, 0.0, 0.0],        # zero tail: θ = 0
    [-2.0, 0.0, 0.0, 0.0],       # θ_1 = π
    [0.0, 0.0, 0.0, -3.0],       # negative last coordinate (its sign must survive)
    [1.0, 2.0, 0.0, -1e-300],    # tiny negative tail
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.0],        # zero vector: θ = 0, norm 0
    [1e300, -1e300, 1e300, 1e-300],  # no overflow in the squares
    [1e-300, 0.0, -1e-300, 0.0],     # no underflow
    [3.0, -4.0, 0.0, 0.0],
]


@pytest.mark.parametrize("v", ADVERSARIAL)
def test_roundtrip_adversarial(v):
    x = torch.tensor(v, dtype=F64)
    assert roundtrip_error(x) <= 1e-12 * max(float(x.abs().max()), 1e-300)


def test_sign_of_last_coordinate_is_kept():
    for n in (2, 3, 10):
        v = torch.randn(20, n, dtype=F64)
        v[:, -1] = -v[:, -1].abs()
        theta, _ = angles(v)
        assert bool((unit_vector(theta)[:, -1] < 0).all())
        assert bool((theta[:, -1] < 0).all())


def test_angles_n1_and_ranges():
    theta, norm = angles(torch.tensor([[-2.0], [3.0]], dtype=F64))
    assert theta.shape == (2, 0)
    torch.testing.assert_close(norm, torch.tensor([2.0, 3.0], dtype=F64))
    theta, _ = angles(torch.randn(100, 6, dtype=F64))
    assert bool((theta[:, :-1] >= 0).all() and (theta[:, :-1] <= math.pi).all())
    assert bool((theta[:, -1].abs() <= math.pi).all())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=30))
def test_roundtrip_property(values):
    v = torch.tensor(values, dtype=F64)
    assert roundtrip_error(v) <= 1e-12 * max(float(v.abs().max()), 1.0)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_angles_does_not_modify_its_input(dtype):
    v = torch.randn(4, 7, dtype=dtype)
    v[0, 3:] = 0
    before = v.clone()
    theta, norm = angles(v)
    assert torch.equal(v, before)
    assert theta.dtype == dtype and norm.dtype == dtype
    assert theta.data_ptr() != v.data_ptr()


def test_angles_has_no_autograd_and_accepts_grad_tensors():
    v = torch.randn(3, 4, dtype=F64, requires_grad=True)
    theta, norm = angles(v)
    assert not theta.requires_grad and not norm.requires_grad


def test_float32_angles_are_computed_in_float64():
    v64 = torch.randn(10, 300, dtype=F64)
    theta32, _ = angles(v64.float())
    theta64, _ = angles(v64.float().double())
    torch.testing.assert_close(theta32, theta64.float(), rtol=0, atol=0)


# ----- errors ---------------------------------------------------------------------------------

def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="0-d"):
        unit_vector(torch.tensor(1.0))
    with pytest.raises(TypeError, match="floating-point"):
        unit_vector(torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="n >= 1"):
        angles(torch.ones(3, 0))
    with pytest.raises(TypeError, match="floating-point"):
        angles(torch.ones(3, dtype=torch.int32))
    with pytest.raises(ValueError, match="r must have shape"):
        scaled_unit_vector(torch.ones(3, 4), torch.ones(4))
    with pytest.raises(TypeError, match="must match theta"):
        scaled_unit_vector(torch.ones(3, 4), torch.ones(3, dtype=F64))


# ----- gradients ------------------------------------------------------------------------------

def _zero_tail_angles() -> torch.Tensor:
    v = torch.tensor([[1.0, 0, 0, 0, 0], [-1.0, 0, 0, 0, 0], [1.0, 2.0, 0, 0, 0],
                      [0, 1.0, -1.0, 0, 0], [1.0, -2.0, 3.0, 0, 1.0], [0, 0, 0, 0, 0],
                      [2.0, 1.0, -1.0, 0.5, 3.0]], dtype=F64)
    return angles(v)[0]


def test_gradcheck_random_angles():
    torch.manual_seed(0)
    theta = (torch.randn(2, 3, 6, dtype=F64) * 3).requires_grad_()
    r = torch.randn(2, 3, dtype=F64).requires_grad_()
    assert torch.autograd.gradcheck(unit_vector, (theta,))
    assert torch.autograd.gradcheck(scaled_unit_vector, (theta, r))


def test_gradcheck_at_zero_tail_angles_and_zero_radius():
    theta = _zero_tail_angles()
    assert bool((theta == 0).any()) and bool((theta.abs() == math.pi).any())
    theta.requires_grad_()
    r = torch.tensor([1.0, 0.0, -2.0, 0.5, 0.0, 1.0, 3.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(unit_vector, (theta,))
    assert torch.autograd.gradcheck(scaled_unit_vector, (theta, r))


def test_gradcheck_at_exact_zero_and_pi():
    theta = torch.tensor([[0.0, 0.0, 0.3], [math.pi, 0.2, 0.0], [0.4, math.pi, math.pi],
                          [0.0, 0.0, 0.0]], dtype=F64, requires_grad=True)
    r = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(scaled_unit_vector, (theta, r))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_fused_backward_matches_autograd_reference(dtype):
    torch.manual_seed(1)
    theta = angles(torch.randn(16, 300, dtype=F64))[0].to(dtype)
    theta[3, 100:] = 0  # a row through the exact fallback
    theta[7, 50] = 1e-25  # tiny, non-zero sine: the fallback in float32, closed form in float64
    theta[9, 20] = math.pi - 1e-7  # sin θ ≈ 1e-7: the closed form
    r = torch.rand(16, dtype=dtype) + 0.5
    r[5] = 0
    g = torch.randn(16, 300, dtype=dtype)
    t1, r1 = theta.clone().requires_grad_(), r.clone().requires_grad_()
    scaled_unit_vector(t1, r1).backward(g)
    t2, r2 = theta.clone().requires_grad_(), r.clone().requires_grad_()
    (_unit_vector_reference(t2) * r2[:, None]).backward(g)
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-10,
                                                                        "atol": 1e-12}
    torch.testing.assert_close(t1.grad, t2.grad, **tol)
    torch.testing.assert_close(r1.grad, r2.grad, **tol)
    assert t1.grad.is_contiguous()


def test_large_n_backward_float64():
    torch.manual_seed(2)
    theta = angles(torch.randn(2, 4608, dtype=F64))[0]
    g = torch.randn(2, 4608, dtype=F64)
    t1 = theta.clone().requires_grad_()
    unit_vector(t1).backward(g)
    t2 = theta.clone().requires_grad_()
    _unit_vector_reference(t2).backward(g)
    torch.testing.assert_close(t1.grad, t2.grad, rtol=1e-9, atol=1e-12)


def test_once_differentiable():
    theta = torch.randn(3, 4, dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(unit_vector(theta).sum(), theta, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()


@pytest.mark.parametrize("n", [1, 2, 3, 17, 48, 1031])
def test_suffix_sums(n):
    h = torch.randn(3, 2, n, dtype=F64)
    expected = torch.stack([h[..., k + 1:].sum(-1) for k in range(n)], dim=-1)
    torch.testing.assert_close(_suffix_sums(h), expected, rtol=1e-12, atol=1e-12)


# ----- metric ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_metric_is_jacobian_gram(n):
    torch.manual_seed(n)
    zero_tail = torch.cat([torch.randn(2, dtype=F64), torch.zeros(n - 2, dtype=F64)])
    for theta in (torch.randn(n - 1, dtype=F64) * 3, angles(zero_tail)[0]):
        with warnings.catch_warnings():  # no batching-rule fallback notices under vmap
            warnings.simplefilter("error")
            jac = torch.func.jacrev(unit_vector)(theta)
        assert jac.shape == (n, n - 1)
        torch.testing.assert_close(jac.T @ jac, metric_tensor(theta), rtol=0, atol=1e-14)
        ref = torch.func.jacrev(_unit_vector_reference)(theta)
        torch.testing.assert_close(jac, ref, rtol=0, atol=1e-15)


def test_metric_diagonal_shapes_and_bounds():
    theta = torch.randn(7, 5, 9, dtype=F64) * 4
    d = metric_diagonal(theta)
    assert d.shape == theta.shape
    assert bool(((d >= 0) & (d <= 1)).all()) and bool((d[..., 0] == 1).all())
    assert metric_diagonal(torch.empty(3, 0)).shape == (3, 0)
    assert metric_tensor(theta).shape == (7, 5, 9, 9)


# ----- weight kernels: no host synchronization, compiled forward ---------------------------------

def _hard_rows(dtype=F64):
    """Angles with rows through the exact fallback: zero tails (sin θ_k = 0), a tiny sine, and
    ordinary rows; radii with a zero."""
    torch.manual_seed(3)
    theta = angles(torch.randn(6, 10, dtype=F64))[0]
    theta[1, 4:] = 0  # zero tail
    theta[2, 2] = math.pi  # sin = 1.2e-16, not zero
    theta[3, 0] = 1e-300  # sine below the threshold, non-zero
    r = torch.rand(6, dtype=F64) + 0.5
    r[4] = 0
    return theta.to(dtype), r.to(dtype)


def test_backward_reads_nothing_on_the_host_off_cpu():
    """On the meta device every host read (``bool``, ``.item()``, boolean-mask indexing)
    raises: forward and backward must run there as they would on a GPU."""
    theta = torch.empty(5, 7, device="meta", requires_grad=True)
    r = torch.empty(5, device="meta", requires_grad=True)
    scaled_unit_vector(theta, r).backward(torch.empty(5, 8, device="meta"))
    assert theta.grad.shape == (5, 7) and r.grad.shape == (5,)
    u = torch.empty(3, 4, device="meta", requires_grad=True)
    unit_vector(u).sum().backward()
    assert u.grad.shape == (3, 4)
    with pytest.raises(RuntimeError):  # the guard itself: a host read does fail on meta
        bool((theta > 0).any())


@pytest.fixture
def device_path(monkeypatch):
    """Run the accelerator's backward (fallback rows selected with torch.where) on the CPU."""
    import gmp.geometry as geo

    monkeypatch.setattr(geo, "_host_checks", lambda t: False)


def _forbid_host_reads(monkeypatch):
    def forbidden(*_a, **_k):
        raise AssertionError("host read of a tensor in the device path")

    for name in ("__bool__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)


def test_device_path_gradcheck_with_small_sine_rows(device_path):
    theta, r = _hard_rows()
    theta.requires_grad_()
    r.requires_grad_()
    torch.autograd.gradcheck(scaled_unit_vector, (theta, r), raise_exception=True)
    torch.autograd.gradcheck(unit_vector, (theta,), raise_exception=True)


@pytest.mark.parametrize("host", [True, False], ids=["cpu-path", "device-path"])
def test_fallback_rows_are_exact(monkeypatch, host):
    """Rows with a (near) zero sine and the zero radius get the reference composition's
    gradient to the last bit, on either path; the device path reads nothing on the host."""
    import gmp.geometry as geo

    theta, r = _hard_rows()
    g = torch.randn(6, 10, dtype=F64)
    t1, r1 = theta.clone().requires_grad_(), r.clone().requires_grad_()
    with monkeypatch.context() as m:
        if not host:
            m.setattr(geo, "_host_checks", lambda t: False)
            _forbid_host_reads(m)
        scaled_unit_vector(t1, r1).backward(g)
    t2, r2 = theta.clone().requires_grad_(), r.clone().requires_grad_()
    (_unit_vector_reference(t2) * r2[:, None]).backward(g)
    for row in (1, 3):  # fallback rows: bitwise equal
        assert torch.equal(t1.grad[row], t2.grad[row])
    assert torch.equal(r1.grad[4], r2.grad[4])
    torch.testing.assert_close(t1.grad, t2.grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(r1.grad, r2.grad, rtol=1e-12, atol=1e-14)


def test_set_weight_kernel_validates_and_restores():
    from gmp.geometry import set_weight_kernel, weight_kernel

    with pytest.raises(ValueError, match="unknown kernel 'triton'"):
        set_weight_kernel("triton")
    old = set_weight_kernel("eager")
    try:
        assert weight_kernel() == "eager"
    finally:
        set_weight_kernel(old)


def test_compile_failure_falls_back_to_eager(monkeypatch):
    import gmp.geometry as geo

    def broken(*_a):
        raise RuntimeError("no compiler here")

    monkeypatch.setitem(geo._kernel, "compiled", broken)
    monkeypatch.setitem(geo._kernel, "name", "compile")
    monkeypatch.setattr(geo, "_COMPILE_MIN_NUMEL", 0)
    theta = torch.randn(3, 4, dtype=F64)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        u = unit_vector(theta)
    assert geo.weight_kernel() == "eager"
    torch.testing.assert_close(u, _unit_vector_reference(theta), rtol=0, atol=1e-15)


def _can_compile() -> bool:
    import shutil

    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


@pytest.mark.slow
@pytest.mark.skipif(not _can_compile(), reason="torch.compile (inductor) needs a C++ compiler")
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_compiled_kernel_matches_eager(monkeypatch, dtype):
    """The inductor-generated forward (C++ on this CPU) gives eager's weight and, through
    the shared closed-form backward, its gradients; fallback rows stay exact."""
    import gmp.geometry as geo

    monkeypatch.setattr(geo, "_COMPILE_MIN_NUMEL", 0)  # compile even these small rows
    theta, r = _hard_rows(dtype)
    g = torch.randn(6, 10, dtype=dtype)
    grads = {}
    for name in ("compile", "eager"):
        monkeypatch.setitem(geo._kernel, "name", name)
        t, rr = theta.clone().requires_grad_(), r.clone().requires_grad_()
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no silent fallback to eager
            w = scaled_unit_vector(t, rr)
        w.backward(g)
        grads[name] = (w.detach(), t.grad, rr.grad)
    assert geo._kernel["compiled"] is not None
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12,
                                                                       "atol": 1e-14}
    for a, b in zip(grads["compile"], grads["eager"], strict=True):
        torch.testing.assert_close(a, b, **tol)
    if dtype == F64:
        monkeypatch.setitem(geo._kernel, "name", "compile")
        t, rr = theta.clone().requires_grad_(), r.clone().requires_grad_()
        assert torch.autograd.gradcheck(scaled_unit_vector, (t, rr))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_backward_has_no_synchronization():
    """Forward and backward of a GmP weight raise on any host synchronization."""
    theta = angles(torch.randn(64, 300, device="cuda"))[0].requires_grad_()
    r = torch.rand(64, device="cuda").requires_grad_()
    g = torch.randn(64, 300, device="cuda")
    scaled_unit_vector(theta, r).backward(g)  # warm-up (lazy initializations may sync)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        theta.grad = r.grad = None
        scaled_unit_vector(theta, r).backward(g)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    t2, r2 = theta.detach().clone().requires_grad_(), r.detach().clone().requires_grad_()
    (_unit_vector_reference(t2) * r2[:, None]).backward(g)
    torch.testing.assert_close(theta.grad, t2.grad, rtol=1e-4, atol=1e-5)


def test_backward_with_a_non_contiguous_incoming_gradient():
    # a stacked (S, m, n) weight used transposed by bmm receives a non-contiguous grad_w
    torch.manual_seed(11)
    S, m, n = 3, 5, 4
    theta = torch.randn(S, m, n - 1, dtype=torch.float64, requires_grad=True)
    r = torch.rand(S, m, dtype=torch.float64, requires_grad=True)
    x = torch.randn(S, 7, n, dtype=torch.float64)
    out = torch.bmm(x, scaled_unit_vector(theta, r).transpose(1, 2))
    out.pow(2).sum().backward()
    t2, r2 = theta.detach().clone().requires_grad_(), r.detach().clone().requires_grad_()
    ref = torch.bmm(x, (_unit_vector_reference(t2) * r2[..., None]).transpose(1, 2))
    ref.pow(2).sum().backward()
    torch.testing.assert_close(theta.grad, t2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(r.grad, r2.grad, rtol=1e-12, atol=1e-12)
