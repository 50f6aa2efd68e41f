"""dgmn.ops.sampled_attention (DGMN2's sampled attention): the fused CPU kernel, the Triton kernel (through the
interpreter on CPU tensors; tiny shapes) and the pure-PyTorch reference against an independent float64 loop: per
pixel, per head, per sample, an explicit 4-corner bilinear read, the dot product, the softmax and the weighted sum."""
import math
import os

import pytest
import torch

from dgmn.ops import sampled_attention, sampled_attention_reference

try:
    import triton  # noqa: F401
    HAS_TRITON = True
except ImportError:
    HAS_TRITON = False

CUDA = torch.cuda.is_available()
IMPLS = ["reference", "cpu"] + (["triton"] if HAS_TRITON and (CUDA or os.environ.get("TRITON_INTERPRET") == "1") else [])


def loop_reference(q, k, v, offset, pos, scale):
    """(B, H, W, h, d) in float64, one pixel, head and sample at a time (the docstring's formula read literally)."""
    q, k, v, offset, pos = (t.double() for t in (q, k, v, offset, pos))
    B, H, W, NH, D = q.shape
    out = torch.zeros(B, H, W, NH, D, dtype=torch.float64)

    def bilinear(img, py, px):  # img (H, W, D)
        val = torch.zeros(D, dtype=torch.float64)
        y0, x0 = math.floor(py), math.floor(px)
        for iy in (y0, y0 + 1):
            for ix in (x0, x0 + 1):
                if 0 <= iy < H and 0 <= ix < W:
                    val += (1 - abs(py - iy)) * (1 - abs(px - ix)) * img[iy, ix]
        return val

    for b in range(B):
        for n in range(NH):
            kk, vv = k[b, :, :, n], v[b, :, :, n]
            for y in range(H):
                for x in range(W):
                    logits, vals = [], []
                    for s in range(9):
                        py = y + s // 3 - 1 + offset[b, y, x, n, 2 * s].item()
                        px = x + s % 3 - 1 + offset[b, y, x, n, 2 * s + 1].item()
                        if abs(py) > 1e6 or abs(px) > 1e6:  # far outside: every corner is zero
                            ks = vs = torch.zeros(D, dtype=torch.float64)
                        else:
                            ks, vs = bilinear(kk, py, px), bilinear(vv, py, px)
                        logits.append(scale * float(q[b, y, x, n] @ ks) + pos[b, n, s, y, x].item())
                        vals.append(vs)
                    m = max(logits)
                    e = [math.exp(l - m) for l in logits]
                    out[b, y, x, n] = sum(ei / sum(e) * vi for ei, vi in zip(e, vals))
    return out


def make_inputs(B, H, W, NH, D, dtype=torch.float64, spread=1.5, seed=0, views=True):
    """q, k, v as views into one qkv tensor (as the model passes them), offsets partly far out of range and partly
    landing exactly on integers and on the border, pos logits non-contiguous."""
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(B, H, W, 3, NH, D, generator=g, dtype=dtype)
    if views:
        q, k, v = qkv.unbind(3)
    else:
        q, k, v = (t.contiguous() for t in qkv.unbind(3))
    offset = torch.randn(B, H, W, NH, 18, generator=g, dtype=dtype) * spread
    offset.view(-1)[::7] = offset.view(-1)[::7].round()  # integer positions (corner weights exactly 0 / 1)
    offset.view(-1)[3::11] = 40.0  # far out of range
    offset.view(-1)[5::13] = -1e7  # very far: guards the integer cast
    offset[..., 0] = -1.0  # sample 0 of pixel (y, x) at y − 2: exactly on the row −1 for y = 1
    pos = torch.randn(B, H, W, NH, 9, generator=g, dtype=dtype).permute(0, 3, 4, 1, 2)  # (B, h, 9, H, W), strided
    return q, k, v, offset, pos


SHAPES = [  # (B, H, W, heads, d)
    (1, 5, 7, 1, 4),
    (2, 4, 3, 3, 5),  # several heads, odd d
    (1, 1, 6, 2, 3),  # a 1-pixel-high map
    (1, 6, 1, 1, 8),  # a 1-pixel-wide map
    (1, 1, 1, 2, 2),  # a single pixel
    (1, 7, 9, 5, 6),  # odd sizes, DGMN2's stage-3 head count
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES)
def test_float64_equals_the_loop(impl, shape):
    q, k, v, offset, pos = make_inputs(*shape, seed=sum(shape))
    if impl == "triton" and CUDA:
        q, k, v, offset, pos = (t.cuda() for t in (q, k, v, offset, pos))
    scale = shape[-1] ** -0.5
    with torch.no_grad():
        out = sampled_attention(q, k, v, offset, pos, scale, impl=impl)
    want = loop_reference(q.cpu(), k.cpu(), v.cpu(), offset.cpu(), pos.cpu(), scale)
    assert out.shape == want.shape and out.is_contiguous()
    assert (out.cpu() - want).abs().max().item() < 1e-12


@pytest.mark.parametrize("impl", IMPLS)
def test_float32_close_to_the_loop(impl):
    shape = (2, 6, 5, 2, 7)
    q, k, v, offset, pos = make_inputs(*shape, dtype=torch.float32, seed=3, views=False)
    with torch.no_grad():
        out = sampled_attention(q, k, v, offset, pos, 0.37, impl=impl)
    assert out.dtype == torch.float32
    want = loop_reference(q, k, v, offset, pos, 0.37)
    assert (out.double() - want).abs().max().item() < 1e-5


def test_cpu_kernel_on_a_larger_map_equals_the_reference():
    """A DGMN2-like size (d = 64, several rows per thread) against the reference path, float64."""
    q, k, v, offset, pos = make_inputs(1, 23, 31, 2, 64, seed=5)
    with torch.no_grad():
        a = sampled_attention(q, k, v, offset, pos, 0.125, impl="cpu")
        b = sampled_attention_reference(q, k, v, offset, pos, 0.125, aggregate_impl="reference")
    assert (a - b).abs().max().item() < 1e-12


def test_gradients_fall_back_to_the_differentiable_reference():
    q, k, v, offset, pos = (t.clone().requires_grad_() for t in make_inputs(1, 4, 5, 2, 3, seed=9))
    out = sampled_attention(q, k, v, offset, pos, 0.5, impl="cpu")
    assert out.grad_fn is not None
    gout = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v, offset, pos), gout)
    with torch.no_grad():
        assert torch.equal(out, sampled_attention(q, k, v, offset, pos, 0.5, impl="cpu"))  # the fused value, bit for bit
    ref = sampled_attention_reference(q, k, v, offset, pos, 0.5)
    for g, want in zip(grads, torch.autograd.grad(ref, (q, k, v, offset, pos), gout)):
        assert torch.equal(g, want)  # the reference's gradient
    # the fallback is the reference: gradcheck it on a small case (float64), offsets away from integer corners
    g = torch.Generator().manual_seed(1)
    args = [torch.randn(1, 3, 4, 2, 3, generator=g, dtype=torch.float64) for _ in range(3)]
    args += [(torch.rand(1, 3, 4, 2, 18, generator=g, dtype=torch.float64) * 0.8 + 0.1),
             torch.randn(1, 2, 9, 3, 4, generator=g, dtype=torch.float64)]
    args = [a.requires_grad_() for a in args]
    assert torch.autograd.gradcheck(lambda *a: sampled_attention(*a, 0.7, impl="cpu"), args)


def test_refuses_bad_inputs():
    q, k, v, offset, pos = make_inputs(1, 3, 4, 2, 3)
    bad = offset.clone()
    bad[0, 1, 1, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        with torch.no_grad():
            sampled_attention(q, k, v, bad, pos, 1.0, impl="cpu")
    with pytest.raises(ValueError, match="offset"):
        sampled_attention(q, k, v, offset[..., :16], pos, 1.0)
    with pytest.raises(ValueError, match="pos_logits"):
        sampled_attention(q, k, v, offset, pos[:, :, :8], 1.0)
    with pytest.raises(ValueError, match="`k`"):
        sampled_attention(q, k[:, :2], v, offset, pos, 1.0)
    with pytest.raises(ValueError, match="dtype"):
        sampled_attention(q, k.float(), v, offset, pos, 1.0)
    with pytest.raises(ValueError, match="not an implementation"):
        sampled_attention(q, k, v, offset, pos, 1.0, impl="fast")


def test_custom_op_has_a_fake_implementation():
    from torch._subclasses.fake_tensor import FakeTensorMode

    q, k, v, offset, pos = make_inputs(1, 3, 4, 2, 3)
    with FakeTensorMode() as mode:
        fake = [mode.from_tensor(t) for t in (q, k, v, offset, pos)]
        out = torch.ops.dgmn.sampled_attention(*fake, 0.5, "reference")
    assert tuple(out.shape) == (1, 3, 4, 2, 3)


def test_kernel_builds_in_the_background_when_the_app_started_the_other_one(monkeypatch):
    """The app starts ``CPU_KERNEL`` in the background; the attention kernel then builds in the background too,
    and the reference answers (the same numbers) until it is ready."""
    import importlib
    import threading

    sa = importlib.import_module("dgmn.ops.sampled_attention")  # the module (the package's name is the function)
    from dgmn.ops import kernel_build

    release = threading.Event()

    def slow_build(name, folder):
        release.wait(30)
        return sa._load(name, folder)

    monkeypatch.setattr(kernel_build, "CPU_KERNEL", kernel_build.KernelBuild(kernel_build.CPU_KERNEL.name,
                                                                             lambda n, f: kernel_build._load(n, f)))
    kb = kernel_build.KernelBuild(sa.SAMPLED_ATTENTION_KERNEL.name, slow_build)
    monkeypatch.setattr(sa, "SAMPLED_ATTENTION_KERNEL", kb)
    kernel_build.CPU_KERNEL.start()
    q, k, v, offset, pos = make_inputs(1, 4, 5, 2, 3)
    with torch.no_grad():
        out = sampled_attention(q, k, v, offset, pos, 0.5, impl="cpu")  # answered at once, by the reference
    assert kb.status().state == "building"
    release.set()
    assert kb.wait(120).state == "ready"
    with torch.no_grad():
        assert (sampled_attention(q, k, v, offset, pos, 0.5, impl="cpu") - out).abs().max() < 1e-12
    kernel_build.CPU_KERNEL.wait(120)
