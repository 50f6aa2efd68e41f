"""DeformableContext (DCNv2 as a context module) against an independent grid_sample deformable convolution."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from dgmn import count_macs
from dgmn.modules import DeformableContext, DropNode, DropRate, NoContext, NoWalks
from dgmn.ops import use_impl


def trained_like(C=6, dilation=2, seed=0):
    """A layer whose offsets reach beyond the map and whose masks differ per tap (a fresh one has Δ = 0, m = ½)."""
    torch.manual_seed(seed)
    layer = DeformableContext(C, dilation=dilation).double().eval()
    with torch.no_grad():
        layer.offset_mask.weight.normal_(std=0.3)
        layer.offset_mask.bias.uniform_(-2.5, 2.5)
        layer.bn.running_mean.normal_()
        layer.bn.running_var.uniform_(0.5, 2)
        layer.bn.weight.normal_()
        layer.bn.bias.normal_()
    return layer


def grid_sample_dcn(f, offset, mask, weight, dilation):
    """Independent modulated deformable conv: per tap, F.grid_sample (align_corners=True, zero padding) at
    p_k = (y + (ky−1)·d + Δy, x + (kx−1)·d + Δx), times m_k, then the tap's C×O matrix. f (B, C, H, W)."""
    B, C, H, W = f.shape
    ys = torch.arange(H, dtype=f.dtype).view(1, H, 1)
    xs = torch.arange(W, dtype=f.dtype).view(1, 1, W)
    out = 0
    for k in range(9):
        ky, kx = divmod(k, 3)
        py = ys + (ky - 1) * dilation + offset[:, 2 * k]
        px = xs + (kx - 1) * dilation + offset[:, 2 * k + 1]
        grid = torch.stack((2 * px / (W - 1) - 1, 2 * py / (H - 1) - 1), dim=-1)  # (B, H, W, 2): x, y in [−1, 1]
        taps = F.grid_sample(f, grid, mode="bilinear", padding_mode="zeros", align_corners=True)  # (B, C, H, W)
        out = out + torch.einsum("oc,bchw->bohw", weight[:, :, ky, kx], taps * mask[:, k: k + 1])
    return out


def reference(layer, f, offset=None, mask=None):
    """The whole layer, h = ReLU(f + BN(DCN(f))), with the offset/mask prediction written out (eval-mode BN)."""
    pred = F.conv2d(f, layer.offset_mask.weight, layer.offset_mask.bias, padding=layer.dilation, dilation=layer.dilation)
    offset = pred[:, :18] if offset is None else offset
    mask = torch.sigmoid(pred[:, 18:]) if mask is None else mask
    d = grid_sample_dcn(f, offset, mask, layer.conv.weight, layer.dilation)
    bn = layer.bn
    return torch.relu(f + F.batch_norm(d, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)), offset, mask


@pytest.mark.parametrize("impl", ["reference", "cpu"])
@pytest.mark.parametrize("dilation", [1, 3])
def test_matches_an_independent_grid_sample_dcn(impl, dilation):
    layer = trained_like(dilation=dilation)
    f = torch.randn(2, 6, 7, 8, dtype=torch.float64)
    want, offset, mask = reference(layer, f)
    assert offset.abs().max() > 3 and (mask.max() - mask.min()) > 0.5  # walks leave the map, masks differ
    with use_impl(impl), torch.no_grad():
        got, graph = layer.forward_with_graph(f)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(graph.offset, offset, rtol=0, atol=1e-12)
    torch.testing.assert_close(graph.mask, mask, rtol=0, atol=1e-12)


def test_a_fresh_layer_is_half_the_dilated_conv():
    torch.manual_seed(1)
    layer = DeformableContext(5, dilation=2).double().eval()
    f = torch.randn(1, 5, 6, 7, dtype=torch.float64)
    _, graph = layer.forward_with_graph(f)
    assert torch.equal(graph.offset, torch.zeros_like(graph.offset)) and torch.equal(graph.mask, torch.full_like(graph.mask, 0.5))
    want = 0.5 * F.conv2d(f, layer.conv.weight, padding=2, dilation=2)
    torch.testing.assert_close(layer.deform(f, graph), want, rtol=0, atol=1e-12)


def test_gradcheck_of_the_module():
    layer = trained_like(C=2, dilation=1, seed=3)
    # the input (through the sampling and the offset/mask conv), the taps' weights, the offsets and masks (through the
    # offset/mask conv's bias: every tap's Δy, Δx and mask logit) and the BN; the conv weights behind it are PyTorch's
    names = ["conv.weight", "offset_mask.bias", "bn.weight"]
    params = {n: p.detach().clone().requires_grad_() for n, p in layer.named_parameters()}
    f = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)

    def run(f, *ps):
        return functional_call(layer, {**params, **dict(zip(names, ps))}, (f,))

    assert torch.autograd.gradcheck(run, (f, *(params[n] for n in names)))


def test_pixel_points_rebuild_the_output_at_the_pixel():
    layer = trained_like(C=4, dilation=2, seed=5)
    f = torch.randn(2, 4, 6, 7, dtype=torch.float64)
    with torch.no_grad():
        h, graph = layer.forward_with_graph(f)
    B, C, H, W = f.shape
    for y, x in [(0, 0), (3, 4), (5, 6), (2, 0)]:
        pts = layer.pixel_points(graph, y, x)
        assert pts.pixel == (y, x) and pts.dilation == 2 and pts.uniform.shape == (9, 2) and pts.sampled.shape == (B, 9, 2)
        grid = torch.tensor([[y + (k // 3 - 1) * 2, x + (k % 3 - 1) * 2] for k in range(9)], dtype=torch.float64)
        assert torch.equal(pts.uniform, grid)
        torch.testing.assert_close(pts.sampled, pts.uniform + pts.offset, rtol=0, atol=1e-12)
        torch.testing.assert_close(pts.share.sum(1), torch.ones(B, dtype=torch.float64))
        for b in range(B):
            d = torch.zeros(C, dtype=torch.float64)
            for k in range(9):
                py, px = (float(v) for v in pts.sampled[b, k])
                val = torch.zeros(C, dtype=torch.float64)
                for iy in (int(torch.floor(torch.tensor(py))), int(torch.floor(torch.tensor(py))) + 1):
                    for ix in (int(torch.floor(torch.tensor(px))), int(torch.floor(torch.tensor(px))) + 1):
                        if 0 <= iy < H and 0 <= ix < W:
                            val += (1 - abs(py - iy)) * (1 - abs(px - ix)) * f[b, :, iy, ix]
                inside = bool(-1 < py < H and -1 < px < W)
                assert bool(pts.inside[b, k]) == inside and (inside or val.abs().max() == 0)
                d += pts.mask[b, k] * (layer.conv.weight[:, :, k // 3, k % 3] @ val)
            bn = layer.bn
            want = torch.relu(f[b, :, y, x] + (d - bn.running_mean) / (bn.running_var + bn.eps).sqrt() * bn.weight + bn.bias)
            torch.testing.assert_close(h[b, :, y, x], want.detach(), rtol=0, atol=1e-6)
    assert (~layer.pixel_points(graph, 0, 0).inside).any()  # the corner's walks leave the map
    q = layer.query(f, 3, 4)
    torch.testing.assert_close(q.sampled, layer.pixel_points(graph, 3, 4).sampled)


def run_edit(layer, f, edit):
    layer.graph_edit = edit
    try:
        with torch.no_grad():
            return layer.forward_with_graph(f)
    finally:
        layer.graph_edit = None


def test_graph_edits_apply_where_the_layer_samples():
    layer = trained_like(C=4, dilation=1, seed=7)
    f = torch.randn(1, 4, 5, 6, dtype=torch.float64)
    plain, offset, mask = reference(layer, f)
    # no offsets: the layer with the offset half of its offset/mask conv zeroed
    got, graph = run_edit(layer, f, NoWalks())
    assert torch.equal(graph.offset, torch.zeros_like(offset))
    torch.testing.assert_close(got, reference(layer, f, offset=torch.zeros_like(offset))[0], rtol=0, atol=1e-12)
    # drop tap 4 (the centre): its mask is 0, the others unchanged
    got, graph = run_edit(layer, f, DropNode(rate=0, node=4))
    dropped = mask.clone()
    dropped[:, 4] = 0
    assert (graph.mask[:, 4] == 0).all()
    torch.testing.assert_close(graph.mask, dropped, rtol=0, atol=1e-12)
    torch.testing.assert_close(got, reference(layer, f, mask=dropped)[0], rtol=0, atol=1e-12)
    # every tap dropped, or no context: D = 0
    bn = layer.bn
    empty = torch.relu(f + (bn.bias - bn.running_mean * bn.weight / (bn.running_var + bn.eps).sqrt()).view(1, -1, 1, 1))
    for edit in (DropRate(rate=0), NoContext()):
        torch.testing.assert_close(run_edit(layer, f, edit)[0], empty, rtol=0, atol=1e-12)
    # limited to some positions: elsewhere the unedited layer's numbers
    where = torch.zeros(5, 6, dtype=torch.bool)
    where[2, 3] = True
    got, graph = run_edit(layer, f, NoWalks(where=where))
    assert (graph.offset[..., where] == 0).all()
    torch.testing.assert_close(graph.offset[..., ~where], offset[..., ~where], rtol=0, atol=1e-12)
    torch.testing.assert_close(got[..., ~where], plain[..., ~where], rtol=0, atol=1e-12)


def test_graph_hook_sees_every_forward_and_can_be_removed():
    layer = trained_like(C=3)
    seen = []
    handle = layer.register_graph_hook(lambda m, f, g: seen.append((f.shape, g.offset.shape, g.mask.shape)))
    with torch.no_grad():
        layer(torch.randn(2, 3, 4, 5, dtype=torch.float64))
    handle.remove()
    with torch.no_grad():
        layer(torch.randn(2, 3, 4, 5, dtype=torch.float64))
    assert seen == [((2, 3, 4, 5), (2, 18, 4, 5), (2, 9, 4, 5))]


def test_training_step_runs_and_moves_the_offsets():
    torch.manual_seed(0)
    layer = DeformableContext(8)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    f = torch.randn(2, 8, 6, 6)
    layer(f).square().mean().backward()
    assert layer.offset_mask.weight.grad.abs().sum() > 0
    opt.step()
    assert layer.sample_graph(f).offset.abs().max() > 0


def test_macs_and_parameters():
    C, H, W = 16, 9, 11
    layer = DeformableContext(C, dilation=3)
    assert count_macs(layer, (2, C, H, W)) == 2 * H * W * (9 * C * C + 9 * C * 27)
    assert layer.sampling_macs(H, W, batch=2) == 2 * C * 9 * H * W * 5
    params = sum(p.numel() for p in DeformableContext(512).parameters())
    assert params == 512 * 512 * 9 + (512 * 9 + 1) * 27 + 2 * 512


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`dilation` must be a positive int"):
        DeformableContext(8, dilation=0)
    with pytest.raises(ValueError, match="`kernel_size` must be a positive odd int"):
        DeformableContext(8, kernel_size=2)
    with pytest.raises(ValueError, match=r"input must have shape \(B, 8, H, W\)"):
        DeformableContext(8)(torch.zeros(1, 3, 4, 4))
    layer = DeformableContext(4)
    graph = layer.sample_graph(torch.zeros(1, 4, 3, 5))
    with pytest.raises(ValueError, match="inside the 3×5 feature map"):
        layer.pixel_points(graph, 3, 0)
