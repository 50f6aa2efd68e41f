import importlib.util
import os
import warnings

import numpy as np
import pytest
import torch

from dgmn.ops import all_finite, dynamic_aggregate, node_grid, sample_nodes

from .loop_reference import bilinear, dynamic_aggregate_loop

HAS_TRITON = importlib.util.find_spec("triton") is not None
CUDA = torch.cuda.is_available()
IMPLS = ["reference", "cpu"] + (["triton"] if HAS_TRITON and (CUDA or os.environ.get("TRITON_INTERPRET") == "1") else [])
if not HAS_TRITON:  # the dev requirements install triton; say loudly that its tests did not run
    warnings.warn("triton is not installed: the Triton kernel's tests are not collected")


def device_for(impl):
    return "cuda" if impl == "triton" and CUDA else "cpu"


def make_inputs(B, C, H, W, dilations, G, ks, dtype, seed=0, scale=2.5, far=False):
    g = torch.Generator().manual_seed(seed)
    S, K = len(dilations), ks * ks
    x = torch.randn(B, C, H, W, generator=g, dtype=dtype)
    off = torch.randn(B, S * K * 2, H, W, generator=g, dtype=dtype) * scale
    if far:  # every third node far outside the map (tens of pixels away, both signs)
        off[:, ::3] += torch.where(torch.rand(off[:, ::3].shape, generator=g) < 0.5, -40.0, 40.0).to(dtype)
    w = torch.randn(B, S * K * G, H, W, generator=g, dtype=dtype)
    return x, off, w


CASES = [  # (B, C, H, W, dilations, G, kernel_size, far)
    (2, 4, 6, 7, (1,), 1, 3, False),
    (2, 8, 5, 6, (1, 2), 2, 3, True),
    (2, 8, 7, 5, (1, 3, 2), 4, 3, False),
    (3, 4, 6, 6, (2, 1), 4, 5, True),
    (2, 6, 4, 5, (1, 2, 3), 2, 5, False),
    (1, 3, 1, 5, (1,), 1, 3, False),  # a map with a side of one pixel
    # channel groups of 16, 32 and 64: the fused kernel's register-blocked paths
    (2, 32, 5, 4, (1, 2), 2, 3, True),
    (1, 64, 4, 5, (1,), 2, 3, False),
    (1, 128, 3, 4, (2, 1), 2, 3, True),
]


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


def test_loop_reference_bilinear_is_exact_at_integer_positions():
    img = np.arange(12, dtype=np.float64).reshape(1, 3, 4)
    assert bilinear(img, 1.0, 2.0)[0] == img[0, 1, 2]
    assert bilinear(img, 0.5, 0.0)[0] == pytest.approx((img[0, 0, 0] + img[0, 1, 0]) / 2)
    assert bilinear(img, -1.0, 0.0)[0] == 0.0  # outside: zero, per corner
    assert bilinear(img, -0.5, 0.0)[0] == pytest.approx(0.5 * img[0, 0, 0])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"B{c[0]}C{c[1]}{c[2]}x{c[3]}S{len(c[4])}G{c[5]}k{c[6]}{'far' if c[7] else ''}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_independent_loop(impl, case, dtype):
    B, C, H, W, dil, G, ks, far = case
    x, off, w = make_inputs(B, C, H, W, dil, G, ks, dtype, far=far)
    want = dynamic_aggregate_loop(x.double().numpy(), off.double().numpy(), w.double().numpy(), dil, ks)
    dev = device_for(impl)
    got = dynamic_aggregate(x.to(dev), off.to(dev), w.to(dev), dil, ks, impl=impl)
    assert got.shape == (B, C, H, W) and got.dtype == dtype
    assert rel_err(got.cpu().numpy(), want) <= (1e-5 if dtype == torch.float32 else 1e-9)


@pytest.mark.parametrize("impl", IMPLS)
def test_channels_last_and_strided_inputs_give_the_same_result(impl):
    dev = device_for(impl)
    x, off, w = make_inputs(2, 8, 6, 5, (1, 2), 2, 3, torch.float64)
    x, off, w = x.to(dev), off.to(dev), w.to(dev)
    a = dynamic_aggregate(x, off, w, (1, 2), impl=impl)
    b = dynamic_aggregate(x.contiguous(memory_format=torch.channels_last), off, w, (1, 2), impl=impl)
    xt = x.transpose(2, 3).contiguous().transpose(2, 3)  # same values, non-standard strides
    c = dynamic_aggregate(xt, off, w, (1, 2), impl=impl)
    cl = torch.channels_last
    d = dynamic_aggregate(x, off.contiguous(memory_format=cl), w.contiguous(memory_format=cl), (1, 2), impl=impl)
    e = dynamic_aggregate(x, off.transpose(2, 3).contiguous().transpose(2, 3), w, (1, 2), impl=impl)  # copied
    for other in (b, c, d, e):
        assert torch.allclose(a, other, rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_gradients_keep_the_memory_format_of_offsets_and_weights(impl):
    dev = device_for(impl)
    x, off, w = (t.to(dev) for t in make_inputs(2, 8, 6, 5, (1, 2), 2, 3, torch.float64, seed=7))
    grads = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        o = off.detach().contiguous(memory_format=fmt).clone(memory_format=fmt).requires_grad_()
        ww = w.detach().clone(memory_format=fmt).requires_grad_()
        xx = x.clone().requires_grad_()
        (dynamic_aggregate(xx, o, ww, (1, 2), impl=impl) * torch.arange(8.0, dtype=x.dtype, device=dev).view(1, 8, 1, 1)).sum().backward()
        grads.append((xx.grad, o.grad, ww.grad))
    for g1, g2 in zip(*grads):
        assert torch.allclose(g1, g2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "case",
    [(2, 4, 4, 5, (1, 2), 2, 3), (1, 4, 3, 4, (1,), 4, 5), (2, 2, 3, 3, (2,), 1, 3), (1, 32, 3, 3, (1,), 2, 3)],
    ids=lambda c: f"B{c[0]}C{c[1]}S{len(c[4])}G{c[5]}k{c[6]}",
)
def test_gradcheck(impl, case):
    B, C, H, W, dil, G, ks = case
    dev = device_for(impl)
    x, off, w = (t.to(dev).requires_grad_() for t in make_inputs(B, C, H, W, dil, G, ks, torch.float64, seed=3))
    # Offsets with fractional parts away from integers: the bilinear kernel has kinks at integer positions.
    with torch.no_grad():
        off.copy_(off.round() + 0.25 + 0.5 * torch.rand_like(off))
    fast = impl == "triton" and not CUDA  # the full gradcheck takes minutes in the Triton interpreter
    assert torch.autograd.gradcheck(
        lambda a, b, c: dynamic_aggregate(a, b, c, dil, ks, impl=impl), (x, off, w), fast_mode=fast
    )


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("C, G", [(8, 4), (64, 4), (64, 2), (64, 1)])
def test_gradients_match_reference_when_only_some_inputs_need_them(impl, C, G):
    dev = device_for(impl)
    x, off, w = (t.to(dev) for t in make_inputs(2, C, 5, 5, (1, 3), G, 3, torch.float64, seed=5))
    off.requires_grad_()
    w.requires_grad_()
    g_out = torch.randn(2, C, 5, 5, dtype=torch.float64, device=dev)
    (dynamic_aggregate(x, off, w, (1, 3), impl=impl) * g_out).sum().backward()
    go, gw = off.grad.clone(), w.grad.clone()
    off.grad = w.grad = None
    (dynamic_aggregate(x, off, w, (1, 3), impl="reference") * g_out).sum().backward()
    assert torch.allclose(go, off.grad, atol=1e-10) and torch.allclose(gw, w.grad, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("C, G", [(8, 2), (32, 2), (64, 1)])
def test_all_gradients_match_reference_on_every_kernel_path(impl, C, G):
    dev = device_for(impl)
    ins = [t.to(dev).requires_grad_() for t in make_inputs(2, C, 4, 6, (1, 2), G, 3, torch.float64, seed=9, far=True)]
    g_out = torch.randn(2, C, 4, 6, dtype=torch.float64, device=dev)
    got = torch.autograd.grad((dynamic_aggregate(*ins, (1, 2), impl=impl) * g_out).sum(), ins)
    want = torch.autograd.grad((dynamic_aggregate(*ins, (1, 2), impl="reference") * g_out).sum(), ins)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-10)


def test_zero_offsets_sample_the_dilated_grid():
    x = torch.arange(2 * 7 * 9, dtype=torch.float64).view(1, 2, 7, 9)
    off = torch.zeros(1, 2 * 9 * 2, 7, 9, dtype=torch.float64)
    nodes = sample_nodes(x, off, (1, 2), 3)  # (1, 2, 18, 7, 9)
    pos = node_grid(off, (1, 2), 3)[0]  # (18, 7, 9, 2)
    for sk in range(18):
        py, px = pos[sk, 3, 4].tolist()
        d = (1, 2)[sk // 9]
        ky, kx = divmod(sk % 9, 3)
        assert (py, px) == (3 + (ky - 1) * d, 4 + (kx - 1) * d)
        assert nodes[0, 1, sk, 3, 4] == x[0, 1, int(py), int(px)]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: dict(a, x=a["x"][0]), "`x` must be 4-D"),
        (lambda a: dict(a, offset=a["offset"][:, :-2]), "`offset` must have shape (B, S·K·2, H, W) = (2, 36, 5, 6)"),
        (lambda a: dict(a, weight=a["weight"][:, :-1]), "`weight` must have shape (B, S·K·G, H, W)"),
        (lambda a: dict(a, weight=torch.zeros(2, 18 * 3, 5, 6)), "G=3 channel groups, which does not divide C=8"),
        (lambda a: dict(a, dilations=(1, 0)), "`dilations` must be a non-empty sequence of positive ints"),
        (lambda a: dict(a, dilations=()), "`dilations` must be a non-empty sequence of positive ints"),
        (lambda a: dict(a, offset=a["offset"].double()), "`offset` has dtype torch.float64 but `x` has torch.float32"),
        (lambda a: dict(a, x=a["x"].long()), "`offset` has dtype torch.float32 but `x` has torch.int64"),
        (lambda a: dict(a, kernel_size=0), "`kernel_size` must be a positive int"),
        (lambda a: dict(a, impl="cuda"), "impl='cuda' is not an implementation"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_problem(mutate, message):
    x, off, w = make_inputs(2, 8, 5, 6, (1, 2), 2, 3, torch.float32)
    args = mutate(dict(x=x, offset=off, weight=w, dilations=(1, 2)))
    with pytest.raises(ValueError) as err:
        dynamic_aggregate(**args)
    assert message in str(err.value)


def test_environment_variable_selects_the_implementation(monkeypatch):
    from dgmn.ops import default_impl

    monkeypatch.setenv("DGMN_OP_IMPL", "reference")
    assert default_impl(torch.device("cpu")) == "reference"
    monkeypatch.setenv("DGMN_OP_IMPL", "fast")
    with pytest.raises(ValueError, match="DGMN_OP_IMPL='fast' is not an implementation"):
        default_impl(torch.device("cpu"))
    monkeypatch.delenv("DGMN_OP_IMPL")
    assert default_impl(torch.device("cpu")) == "cpu"


@pytest.mark.parametrize("impl", IMPLS)
def test_nan_offsets_are_refused(impl):
    dev = device_for(impl)
    x, off, w = (t.to(dev) for t in make_inputs(1, 4, 4, 4, (1,), 1, 3, torch.float32))
    off[0, 3, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="`offset` contains NaN or infinite values"):
        dynamic_aggregate(x, off, w, (1,), impl=impl)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_finite_is_exact(dtype):
    big = torch.finfo(dtype).max
    assert all_finite(torch.zeros(0, dtype=dtype)) and all_finite(torch.randn(3, 5, dtype=dtype))
    assert all_finite(torch.full((4,), big, dtype=dtype))  # the sum overflows, every element is finite
    assert all_finite(torch.tensor([big, -big, big], dtype=dtype))
    for bad in (float("nan"), float("inf"), float("-inf")):
        t = torch.randn(2, 3, 4, dtype=dtype)
        t[1, 2, 3] = bad
        assert not all_finite(t)
    assert not all_finite(torch.tensor([float("inf"), float("-inf")], dtype=dtype))  # sums to NaN


@pytest.mark.parametrize("impl", IMPLS)
def test_huge_finite_offsets_are_accepted_and_sample_zeros(impl):
    dev = device_for(impl)
    x, off, w = (t.to(dev) for t in make_inputs(1, 4, 4, 4, (1,), 1, 3, torch.float32))
    big = torch.finfo(torch.float32).max  # the offsets' sum overflows; every node lands far outside
    got = dynamic_aggregate(x, torch.full_like(off, big), w, (1,), impl=impl)
    assert torch.equal(got, torch.zeros_like(got))
    got = dynamic_aggregate(x, torch.full_like(off, -big), w, (1,), impl=impl)
    assert torch.equal(got, torch.zeros_like(got))
