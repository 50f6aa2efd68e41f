"""Triton forward of :func:`dgmn.ops.sampled_attention` (CUDA tensors; tested on the CPU under ``TRITON_INTERPRET=1``).

One program handles BLOCK_P pixels of one (image, head) with all d channels (BLOCK_D ≥ d, masked). For each of the
9 samples it computes the position, its 4 corners (each masked to the map, so a corner outside reads 0), the key
dot products and the bilinear value, and folds them into an online softmax (running max m, denominator l and the
weighted value sum), so the 9 logits never leave registers::

    m' = max(m, l_k),  l ← l·e^{m−m'} + e^{l_k−m'},  acc ← acc·e^{m−m'} + e^{l_k−m'}·bilinear(v, p_k),  out = acc / l

Positions are clamped to [−2, size + 1] first (every corner of such a position is outside, as before the clamp),
which keeps huge finite offsets from overflowing the integer corner index. Accumulation is in float32 for
float16/bfloat16/float32 and in float64 for float64. Forward only (see :mod:`dgmn.ops.sampled_attention`).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _sampled_attention_fwd(
    q_ptr, k_ptr, v_ptr, off_ptr, pos_ptr, out_ptr, H, W, NH, D, scale,
    qs0, qs1, qs2, qs3, ks0, ks1, ks2, ks3, vs0, vs1, vs2, vs3,
    os0, os1, os2, os3, os4, ps0, ps1, ps2, ps3, ps4,
    ACC: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    bn = tl.program_id(1)
    b = (bn // NH).to(tl.int64)
    n = (bn % NH).to(tl.int64)
    pix = pid.to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = pix < H * W
    y = pix // W
    x = pix % W
    cs = tl.arange(0, BLOCK_D)
    cmask = cs < D
    qmask = pmask[:, None] & cmask[None, :]
    qv = tl.load(q_ptr + (b * qs0 + n * qs3 + y * qs1 + x * qs2)[:, None] + cs[None, :], mask=qmask, other=0.0).to(ACC)
    kb = k_ptr + b * ks0 + n * ks3
    vb = v_ptr + b * vs0 + n * vs3
    ob = off_ptr + b * os0 + n * os3 + y * os1 + x * os2
    pb = pos_ptr + b * ps0 + n * ps1 + y * ps3 + x * ps4
    m = tl.full([BLOCK_P], float("-inf"), ACC)
    den = tl.zeros([BLOCK_P], ACC)
    acc = tl.zeros([BLOCK_P, BLOCK_D], ACC)
    for s in tl.static_range(9):
        dy = tl.load(ob + (2 * s) * os4, mask=pmask, other=0.0).to(ACC)
        dx = tl.load(ob + (2 * s + 1) * os4, mask=pmask, other=0.0).to(ACC)
        py = tl.minimum(tl.maximum(y.to(ACC) + (s // 3 - 1) + dy, -2.0), H + 1.0)
        px = tl.minimum(tl.maximum(x.to(ACC) + (s % 3 - 1) + dx, -2.0), W + 1.0)
        fy = tl.floor(py)
        fx = tl.floor(px)
        ly = py - fy
        lx = px - fx
        y0 = fy.to(tl.int64)
        x0 = fx.to(tl.int64)
        content = tl.zeros([BLOCK_P], ACC)
        vsum = tl.zeros([BLOCK_P, BLOCK_D], ACC)
        for a in tl.static_range(2):
            for c in tl.static_range(2):
                iy = y0 + a
                ix = x0 + c
                wy = ly if a == 1 else 1.0 - ly
                wx = lx if c == 1 else 1.0 - lx
                w = wy * wx
                valid = pmask & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
                lmask = valid[:, None] & cmask[None, :]
                kk = tl.load(kb + (iy * ks1 + ix * ks2)[:, None] + cs[None, :], mask=lmask, other=0.0).to(ACC)
                vv = tl.load(vb + (iy * vs1 + ix * vs2)[:, None] + cs[None, :], mask=lmask, other=0.0).to(ACC)
                content += w * tl.sum(kk * qv, axis=1)
                vsum += w[:, None] * vv
        logit = scale * content + tl.load(pb + s * ps2, mask=pmask, other=0.0).to(ACC)
        m_new = tl.maximum(m, logit)
        alpha = tl.exp(m - m_new)
        p = tl.exp(logit - m_new)
        den = den * alpha + p
        acc = acc * alpha[:, None] + p[:, None] * vsum
        m = m_new
    out = acc / den[:, None]
    dst = out_ptr + (((b * H + y) * W + x) * NH + n) * D
    tl.store(dst[:, None] + cs[None, :], out.to(out_ptr.dtype.element_ty), mask=qmask)


def forward_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offset: torch.Tensor, pos: torch.Tensor,
                   scale: float, block_p: int = 64) -> torch.Tensor:
    """(B, H, W, h, d) contiguous output; inputs as :func:`dgmn.ops.sampled_attention` (validated)."""
    last = lambda t: t if t.stride(-1) == 1 else t.contiguous()
    q, k, v = last(q), last(k), last(v)
    B, H, W, NH, D = q.shape
    out = torch.empty((B, H, W, NH, D), dtype=q.dtype, device=q.device)
    acc = tl.float64 if q.dtype == torch.float64 else tl.float32
    block_d = triton.next_power_of_2(D)
    grid = (triton.cdiv(H * W, block_p), B * NH)
    _sampled_attention_fwd[grid](
        q, k, v, offset, pos, out, H, W, NH, D, float(scale),
        *q.stride()[:4], *k.stride()[:4], *v.stride()[:4], *offset.stride(), *pos.stride(),
        ACC=acc, BLOCK_P=block_p, BLOCK_D=block_d,
    )
    return out
