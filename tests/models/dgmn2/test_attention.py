"""DGMN2's attention: against a literal re-statement of the original (float64, square and non-square maps,
offsets that leave the map), and the inspection internals (positions, weights, the message they make)."""
import pytest
import torch
import torch.nn.functional as F

from dgmn.models.dgmn2 import DGMN2Attention, RelPosEmb

from . import literal
from .helpers import small_model


def attention(dim=12, heads=3, table=(5, 4), seed=0, offset_scale=20.0):
    torch.manual_seed(seed)
    a = DGMN2Attention(dim, heads, table).double()
    with torch.no_grad():
        a.conv_offset.weight.mul_(offset_scale)
        a.conv_offset.bias.uniform_(-2, 2)
    return a.eval()


@pytest.mark.parametrize("H,W,table", [(7, 7, (5, 5)), (6, 9, (4, 7)), (9, 5, (3, 3)), (8, 8, (8, 8)), (1, 4, (2, 2))])
def test_matches_the_original_sequence_of_operations(H, W, table):
    a = attention(table=table)
    x = torch.randn(2, H * W, 12, dtype=torch.float64)
    with torch.no_grad():
        ours, ref = a(x, H, W), literal.attention(a, x, H, W)
    assert (ours - ref).abs().max() < 1e-12 * max(1.0, ref.abs().max().item())


def test_offsets_leave_the_map_and_still_match():
    a = attention(offset_scale=4.0)
    H, W = 5, 6
    x = torch.randn(1, H * W, 12, dtype=torch.float64)
    it = a.internals(x, H, W)
    p = it.positions
    outside = (p[:, :, :, 0] < -1) | (p[:, :, :, 0] > H) | (p[:, :, :, 1] < -1) | (p[:, :, :, 1] > W)
    assert outside.any() and not outside.all()
    assert torch.allclose(a(x, H, W), literal.attention(a, x, H, W), atol=1e-12)


def test_position_term_for_square_maps_reads_the_transposed_query():
    """The original's quirk, kept: for H == W the height term at (y, x) uses q at (x, y) and row H−1−x+k."""
    torch.manual_seed(1)
    pe = RelPosEmb((4, 4), 3).double()
    H = W = 4
    q = torch.randn(1, 3, H, W, dtype=torch.float64)
    got = pe(q)
    tw = RelPosEmb.resize_table(pe.rel_width, W + 8)
    th = RelPosEmb.resize_table(pe.rel_height, H + 8)
    for y in range(H):
        for x in range(W):
            for k in range(9):
                want = q[0, :, y, x] @ tw[W - 1 - x + k] + q[0, :, x, y] @ th[H - 1 - x + k]
                assert torch.isclose(got[0, k, y, x], want, atol=1e-12)


def test_tables_are_resized_linearly_without_aligned_corners():
    t = torch.arange(10, dtype=torch.float64).view(5, 2)  # rows 0..4 of [2i, 2i+1]
    r = RelPosEmb.resize_table(t, 10)  # source row of output i: (i + 0.5)·0.5 − 0.5, clamped to [0, 4]
    src = ((torch.arange(10, dtype=torch.float64) + 0.5) * 0.5 - 0.5).clamp(0, 4)
    assert torch.allclose(r[:, 0], 2 * src) and torch.allclose(RelPosEmb.resize_table(t, 5), t)


def test_internals_describe_what_forward_computes():
    a = attention()
    H, W, B, h, d = 6, 7, 2, 3, 4
    x = torch.randn(B, H * W, 12, dtype=torch.float64)
    it = a.internals(x, H, W)
    assert it.offsets.shape == it.positions.shape == (B, h, 9, 2, H, W)
    assert it.weights.shape == it.content.shape == it.position.shape == (B, h, 9, H, W)
    assert it.values.shape == it.message.shape == (B, h, d, H, W)
    assert torch.equal(it.out, a(x, H, W))
    # the 9 positions per head: the 3×3 grid around the pixel plus the offsets
    ky, kx = torch.meshgrid(torch.arange(3.0), torch.arange(3.0), indexing="ij")
    gy = torch.arange(H, dtype=torch.float64).view(1, H, 1) + (ky.reshape(9, 1, 1) - 1)
    gx = torch.arange(W, dtype=torch.float64).view(1, 1, W) + (kx.reshape(9, 1, 1) - 1)
    assert torch.allclose(it.positions[:, :, :, 0], gy + it.offsets[:, :, :, 0])
    assert torch.allclose(it.positions[:, :, :, 1], gx + it.offsets[:, :, :, 1])
    # the weights: softmax over the 9 samples of content + position, summing to 1 per head and pixel
    assert torch.allclose(it.weights.sum(dim=2), torch.ones(B, h, H, W, dtype=torch.float64))
    assert torch.allclose(it.weights, (it.content + it.position).softmax(dim=2))
    # the weighted sum of the values sampled at the positions (an independent bilinear sampler) is the message,
    # and its projection the attention's output
    vals = it.values.reshape(B * h, d, H, W)
    pos = it.positions.reshape(B * h, 9, 2, H, W)
    grid = torch.stack((pos[:, :, 1] / (W - 1) * 2 - 1, pos[:, :, 0] / (H - 1) * 2 - 1), -1).reshape(B * h, 9 * H, W, 2)
    sampled = F.grid_sample(vals, grid, mode="bilinear", padding_mode="zeros", align_corners=True).view(B * h, d, 9, H, W)
    message = (sampled * it.weights.reshape(B * h, 1, 9, H, W)).sum(2).view(B, h, d, H, W)
    assert torch.allclose(message, it.message, atol=1e-12)
    out = a.proj(message.reshape(B, h * d, H * W).transpose(1, 2))
    assert torch.allclose(out, it.out, atol=1e-12)


def test_whole_model_internals_per_block():
    model = small_model("fpn")
    image = torch.randn(1, 3, 45, 38)
    names = list(model.attention_blocks())
    assert names == ["block1.0", "block2.0", "block2.1", "block3.0", "block4.0"]
    logits, its = model.attention_internals(image, ["block1.0", "block3.0"])
    assert torch.equal(logits, model(image)) and list(its) == ["block1.0", "block3.0"]
    assert its["block1.0"].weights.shape == (1, 1, 9, 12, 10) and its["block3.0"].weights.shape == (1, 5, 9, 3, 3)
    assert not any(m._forward_pre_hooks for m in model.modules())  # nothing left behind
    with pytest.raises(ValueError, match="unknown DGMN2 blocks"):
        model.attention_internals(image, ["block9.0"])
