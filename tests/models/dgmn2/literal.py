"""An independent, literal re-statement of DGMN2's attention in the original's own sequence of tensor operations
(the deformable unfold as the CUDA kernel's corner-by-corner bilinear, written out with ``gather``; matmuls over
(…, 1, d) × (…, d, 9), the pad-and-reshape "relative to absolute" trick, the height term resized from (W, H) to
(H, W)), for testing our port without the fixtures. It reuses only the parameters of our :class:`DGMN2Attention`."""
import torch
import torch.nn.functional as F


def bilinear(x, py, px):
    """x (B, C, H, W) read at positions py, px (B, K, H, W): Σ over the 4 corners of (1−|py−iy|)(1−|px−ix|)·x[iy, ix],
    a corner outside the map reading 0 (the original CUDA kernel's rule). Returns (B, C, K, H, W)."""
    B, C, H, W = x.shape
    flat = x.reshape(B, C, H * W)
    out = 0
    y0, x0 = py.floor(), px.floor()
    for iy in (y0, y0 + 1):
        for ix in (x0, x0 + 1):
            w = (1 - (py - iy).abs()) * (1 - (px - ix).abs())
            inside = (iy >= 0) & (iy <= H - 1) & (ix >= 0) & (ix <= W - 1)
            idx = (iy.clamp(0, H - 1) * W + ix.clamp(0, W - 1)).long().reshape(B, 1, -1).expand(B, C, -1)
            v = flat.gather(2, idx).view(B, C, *py.shape[1:])
            out = out + v * (w * inside).unsqueeze(1)
    return out


def deform_unfold(x, offset):
    """(B, C, H, W), offsets (B, 18, H, W) [k][dy, dx] → (B, C·9, H·W), channel c·9 + k; zero-padded bilinear."""
    B, C, H, W = x.shape
    ys = torch.arange(H, dtype=x.dtype).view(1, 1, H, 1)
    xs = torch.arange(W, dtype=x.dtype).view(1, 1, 1, W)
    taps = torch.tensor([(i - 1, j - 1) for i in range(3) for j in range(3)], dtype=x.dtype)
    py = ys + taps[:, 0].view(1, 9, 1, 1) + offset[:, 0::2]
    px = xs + taps[:, 1].view(1, 9, 1, 1) + offset[:, 1::2]
    return bilinear(x, py, px).reshape(B, C * 9, H * W)


def rel_to_abs(x, n):
    b, h, l, c = x.shape
    x = torch.cat((x, x.new_zeros(b, h, l, 1)), dim=3).reshape(b, h, l * (c + 1))
    x = torch.cat((x, x.new_zeros(b, h, n - 1)), dim=2).reshape(b, h, l + 1, n + l - 1)
    return x[:, :, :l, l - 1:]


def rel_logits_1d(q, rel_k, n):
    logits = torch.matmul(q, rel_k.transpose(0, 1))
    b, h, x, y, r = logits.shape
    return rel_to_abs(logits.reshape(b, h * x, y, r), n)


def pos_logits(pos_emb, q, H, W):
    rw = F.interpolate(pos_emb.rel_width[None, None], size=(W + 8, pos_emb.rel_width.shape[1]), mode="bilinear")[0, 0]
    rh = F.interpolate(pos_emb.rel_height[None, None], size=(H + 8, pos_emb.rel_height.shape[1]), mode="bilinear")[0, 0]
    lw = rel_logits_1d(q, rw, 9)
    lh = rel_logits_1d(q.transpose(2, 3), rh, 9)
    lh = F.interpolate(lh.permute(0, 3, 1, 2), size=lw.shape[1:3], mode="bilinear").permute(0, 2, 3, 1)
    return lw + lh


def attention(attn, x, H, W):
    """The original's DGMN2Attention.forward with our module's parameters."""
    B, N, C = x.shape
    nh, hd = attn.num_heads, attn.head_dim
    q, k, v = attn.qkv(x).reshape(B, N, 3, nh, hd).permute(2, 0, 3, 1, 4).unbind(0)
    offset = attn.conv_offset(x.reshape(B, N, nh, hd)).permute(0, 2, 3, 1).reshape(B * nh, 18, H, W)
    k = k.transpose(2, 3).reshape(B * nh, hd, H, W)
    v = v.transpose(2, 3).reshape(B * nh, hd, H, W)
    k = deform_unfold(k, offset).transpose(1, 2).reshape(B, nh, N, hd, 9)
    v = deform_unfold(v, offset).reshape(B, nh, hd, 9, N).permute(0, 1, 4, 3, 2)
    a = torch.matmul(q.unsqueeze(3), k) * attn.scale
    a = a + pos_logits(attn.pos_emb, q.reshape(B * nh, 1, H, W, hd), H, W).reshape(B, nh, N, 1, 9)
    a = a.softmax(dim=-1)
    out = torch.matmul(a, v).transpose(1, 2).reshape(B, N, C)
    return attn.proj(out)
