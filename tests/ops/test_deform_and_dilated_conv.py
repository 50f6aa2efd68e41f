import pytest
import torch
import torch.nn.functional as F

from dgmn.ops import deform_conv2d, dilated_conv2d, dynamic_aggregate, sample_nodes
from dgmn.ops.deform_conv import deform_taps

IMPLS = ["reference", "cpu"]


def im2col_deform(x, offset, weight, bias, dilation):
    """Independent deformable conv: sample the K nodes (B, C·K, H, W), then one 1×1 conv."""
    O, C, ks, _ = weight.shape
    B, _, H, W = x.shape
    cols = sample_nodes(x, offset, (dilation,), ks).reshape(B, C * ks * ks, H, W)
    return F.conv2d(cols, weight.reshape(O, C * ks * ks, 1, 1), bias)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("ks, dilation", [(3, 1), (3, 4), (5, 2)])
def test_deform_conv2d_matches_im2col_and_gradcheck(impl, ks, dilation):
    g = torch.Generator().manual_seed(ks * 10 + dilation)
    B, C, H, W, O = 2, 3, 6, 7, 4
    x = torch.randn(B, C, H, W, generator=g, dtype=torch.float64, requires_grad=True)
    off = (torch.randn(B, 2 * ks * ks, H, W, generator=g, dtype=torch.float64) * 2).requires_grad_()
    w = torch.randn(O, C, ks, ks, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(O, generator=g, dtype=torch.float64, requires_grad=True)
    got = deform_conv2d(x, off, w, b, dilation, impl=impl)
    assert torch.allclose(got, im2col_deform(x, off, w, b, dilation), atol=1e-12)
    assert torch.autograd.gradcheck(lambda *t: deform_conv2d(*t, dilation, impl=impl), (x, off, w, b))


def test_deform_conv2d_with_zero_offsets_is_the_dilated_conv():
    x = torch.randn(1, 4, 9, 8, dtype=torch.float64)
    w = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    out = deform_conv2d(x, torch.zeros(1, 18, 9, 8, dtype=torch.float64), w, None, 3)
    assert torch.allclose(out, F.conv2d(x, w, padding=3, dilation=3), atol=1e-12)


@pytest.mark.parametrize("ks, dilation, size", [(3, 1, (7, 9)), (3, 6, (7, 9)), (5, 2, (6, 5)), (3, 20, (5, 4))])
def test_dilated_conv2d_matches_conv2d_and_gradcheck(ks, dilation, size):
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, ks, ks, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    pad = dilation * (ks - 1) // 2
    assert torch.allclose(dilated_conv2d(x, w, b, dilation), F.conv2d(x, w, b, padding=pad, dilation=dilation), atol=1e-12)
    assert torch.autograd.gradcheck(lambda *t: dilated_conv2d(*t, dilation), (x, w, b))


def test_conv_helpers_refuse_bad_weights():
    with pytest.raises(ValueError, match=r"`weight` must have shape \(O, C=3, ks, ks\)"):
        deform_conv2d(torch.zeros(1, 3, 4, 4), torch.zeros(1, 18, 4, 4), torch.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match="odd square kernel"):
        dilated_conv2d(torch.zeros(1, 3, 4, 4), torch.zeros(2, 3, 2, 2))


@pytest.mark.parametrize("case", [(2, 5, 6, 7, 1, 3, False), (1, 3, 5, 4, 2, 5, True), (2, 45, 6, 5, 3, 3, True)],
                         ids=["O5", "k5far", "O45"])
def test_fused_taps_match_the_one_hot_aggregation_and_gradcheck(case):
    """The CPU kernel's summed taps against dynamic_aggregate with one-hot weights and a sum over k (the reference
    path of deform_taps), forward and gradients; and gradcheck of the fused backward."""
    B, O, H, W, d, ks, far = case
    K = ks * ks
    g = torch.Generator().manual_seed(O)
    z = torch.randn(B, K * O, H, W, generator=g, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    off = torch.randn(B, 2 * K, H, W, generator=g, dtype=torch.float64) * 2
    if far:
        off[:, ::3] += 30
    z.requires_grad_()
    off.requires_grad_()
    gout = torch.randn(B, O, H, W, generator=g, dtype=torch.float64)
    onehot = torch.eye(K, dtype=torch.float64).view(1, K * K, 1, 1).expand(B, K * K, H, W)
    want = dynamic_aggregate(z, off, onehot, (d,), ks, impl="reference").view(B, K, O, H, W).sum(1)
    got = deform_taps(z, off, d, ks, impl="cpu")
    assert got.is_contiguous(memory_format=torch.channels_last) and not got._is_view()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    for a, b in zip(torch.autograd.grad(got, (z, off), gout), torch.autograd.grad(want, (z, off), gout)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)
    if B * O * H * W <= 300:
        assert torch.autograd.gradcheck(lambda a, b: deform_taps(a, b, d, ks, impl="cpu"), (z, off))


@pytest.mark.parametrize("impl", IMPLS + [None])
def test_deform_taps_opcheck(impl):
    z = torch.randn(1, 2 * 9, 4, 5).contiguous(memory_format=torch.channels_last)
    off = torch.randn(1, 18, 4, 5) * 1.3 + 0.25
    torch.library.opcheck(torch.ops.dgmn.deform_conv_taps.default, (z.requires_grad_(), off.requires_grad_(), 2, 3, impl))
    torch.library.opcheck(torch.ops.dgmn.deform_conv_taps_backward.default,
                          (torch.randn(1, 2, 4, 5), z.detach(), off.detach(), 2, 3, impl, [True, True]))


def test_dilated_conv2d_keeps_channels_last():
    x = torch.randn(1, 6, 9, 8).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(5, 6, 3, 3), torch.randn(5)
    out = dilated_conv2d(x, w, b, 2)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, F.conv2d(x, w, b, padding=2, dilation=2), rtol=1e-5, atol=1e-5)
