"""Triton GPU kernel of :func:`dgmn.ops.dynamic_aggregate` (forward and backward).

Layout: ``x`` is read channels-last, (B, H, W, C), so the channel block of one sampled corner is one
contiguous load; ``offset`` and ``weight`` are read as (B, channels, H, W), contiguous along a block of
pixels. One program handles BLOCK_P pixels × BLOCK_C channels of one image, and BLOCK_C divides C/G,
so a program's channels all belong to one group g and its weights are one vector per node.

Backward: grad_x is scattered with ``tl.atomic_add``; grad_offset and grad_weight are sums over the
channels of a group, reduced per program and added atomically across channel blocks. Accumulation is
in float32 for float16/bfloat16 and in the input dtype otherwise.

Block sizes, warps and options of every launch come from :func:`forward_launch` / :func:`backward_launch`,
which :mod:`dgmn.ops.triton_aot` also uses to compile the kernels ahead of time for sm_80 and sm_90.

Tested on the CPU with ``TRITON_INTERPRET=1`` (which must be set before triton is imported); every
load and store is masked, since the interpreter does not catch out-of-bounds accesses.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import triton
import triton.language as tl


@triton.jit
def _corner(x_ptr, b, HW, W, H, C, cs, cmask, pmask, iy, ix):
    """Element index, validity and (BLOCK_P, BLOCK_C) channel block of corner (iy, ix); zero outside the map."""
    valid = pmask & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
    row = (b * HW + iy.to(tl.int64) * W + ix) * C
    idx = row[:, None] + cs[None, :]
    return idx, valid, tl.load(x_ptr + idx, mask=valid[:, None] & cmask[None, :], other=0.0)


@triton.jit
def _position(off_ptr, b, sk, SK2, HW, pix, pmask, base, H):
    """Absolute sampled coordinate (clamped to [-2, H+1], where every corner is already outside)."""
    o = tl.load(off_ptr + (b * SK2 + sk) * HW + pix, mask=pmask, other=0.0)
    p = base + o
    return tl.minimum(tl.maximum(p, -2.0), H + 1.0)


@triton.jit
def _node(off_ptr, w_ptr, b, s, k, d, S, K, KS, G, g, HW, H, W, pix, pmask, yy, xx, ACC: tl.constexpr):
    """Node (s, k) of a block of pixels: bilinear fractions (ly, lx), top-left corner (y0, x0), weight wv."""
    sk = s * K + k
    c0 = (KS - 1) / 2.0
    py = _position(off_ptr, b, sk * 2, S * K * 2, HW, pix, pmask, yy + ((k // KS) - c0) * d, H).to(ACC)
    px = _position(off_ptr, b, sk * 2 + 1, S * K * 2, HW, pix, pmask, xx + ((k % KS) - c0) * d, W).to(ACC)
    wv = tl.load(w_ptr + (b * S * K * G + sk * G + g) * HW + pix, mask=pmask, other=0.0).to(ACC)
    fy = tl.floor(py)
    fx = tl.floor(px)
    return py - fy, px - fx, fy.to(tl.int32), fx.to(tl.int32), wv


@triton.jit
def _block(W, HW, C, ACC: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's image b, pixels (with mask and y, x) and channels (with mask)."""
    pid_p = tl.program_id(0)
    pid_c = tl.program_id(1)
    nblk = tl.cdiv(HW, BLOCK_P)
    b = (pid_p // nblk).to(tl.int64)
    pix = (pid_p % nblk) * BLOCK_P + tl.arange(0, BLOCK_P)
    cs = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    return b, pix, pix < HW, (pix // W).to(ACC), (pix % W).to(ACC), cs, cs < C


@triton.jit
def _fwd_kernel(x_ptr, off_ptr, w_ptr, out_ptr, dil_ptr, H, W, C, Cg, G, S, KS, HW,
                ACC: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    b, pix, pmask, yy, xx, cs, cmask = _block(W, HW, C, ACC, BLOCK_P, BLOCK_C)
    g = (tl.program_id(1) * BLOCK_C) // Cg
    K = KS * KS
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=ACC)
    for s in range(S):
        d = tl.load(dil_ptr + s).to(ACC)
        for k in range(K):
            ly, lx, y0, x0, wv = _node(off_ptr, w_ptr, b, s, k, d, S, K, KS, G, g, HW, H, W, pix, pmask, yy, xx, ACC)
            _, _, v00 = _corner(x_ptr, b, HW, W, H, C, cs, cmask, pmask, y0, x0)
            _, _, v01 = _corner(x_ptr, b, HW, W, H, C, cs, cmask, pmask, y0, x0 + 1)
            _, _, v10 = _corner(x_ptr, b, HW, W, H, C, cs, cmask, pmask, y0 + 1, x0)
            _, _, v11 = _corner(x_ptr, b, HW, W, H, C, cs, cmask, pmask, y0 + 1, x0 + 1)
            samp = ((1 - ly) * (1 - lx))[:, None] * v00.to(ACC) + ((1 - ly) * lx)[:, None] * v01.to(ACC) \
                + (ly * (1 - lx))[:, None] * v10.to(ACC) + (ly * lx)[:, None] * v11.to(ACC)
            acc += wv[:, None] * samp
    optr = out_ptr + (b * HW + pix.to(tl.int64))[:, None] * C + cs[None, :]
    tl.store(optr, acc.to(out_ptr.dtype.element_ty), mask=pmask[:, None] & cmask[None, :])


@triton.jit
def _bwd_kernel(x_ptr, off_ptr, w_ptr, gout_ptr, gx_ptr, goff_ptr, gw_ptr, dil_ptr, H, W, C, Cg, G, S, KS, HW,
                NEED_GX: tl.constexpr, ACC: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    b, pix, pmask, yy, xx, cs, cmask = _block(W, HW, C, ACC, BLOCK_P, BLOCK_C)
    m2 = pmask[:, None] & cmask[None, :]
    g = (tl.program_id(1) * BLOCK_C) // Cg
    K = KS * KS
    go = tl.load(gout_ptr + (b * HW + pix.to(tl.int64))[:, None] * C + cs[None, :], mask=m2, other=0.0).to(ACC)
    for s in range(S):
        d = tl.load(dil_ptr + s).to(ACC)
        for k in range(K):
            sk = s * K + k
            ly, lx, y0, x0, wv = _node(off_ptr, w_ptr, b, s, k, d, S, K, KS, G, g, HW, H, W, pix, pmask, yy, xx, ACC)
            p00, m00, v00 = _corner(x_ptr, b, HW, W, H, C, cs, cmask, pmask, y0, x0)
            p01, m01, v01 = _corner(x_ptr, b, HW, W, H, C, cs, cmask, pmask, y0, x0 + 1)
            p10, m10, v10 = _corner(x_ptr, b, HW, W, H, C, cs, cmask, pmask, y0 + 1, x0)
            p11, m11, v11 = _corner(x_ptr, b, HW, W, H, C, cs, cmask, pmask, y0 + 1, x0 + 1)
            v00 = v00.to(ACC)
            v01 = v01.to(ACC)
            v10 = v10.to(ACC)
            v11 = v11.to(ACC)
            samp = ((1 - ly) * (1 - lx))[:, None] * v00 + ((1 - ly) * lx)[:, None] * v01 \
                + (ly * (1 - lx))[:, None] * v10 + (ly * lx)[:, None] * v11
            dsy = (1 - lx)[:, None] * (v10 - v00) + lx[:, None] * (v11 - v01)
            dsx = (1 - ly)[:, None] * (v01 - v00) + ly[:, None] * (v11 - v10)
            gw = tl.sum(go * samp, axis=1)
            gpy = wv * tl.sum(go * dsy, axis=1)
            gpx = wv * tl.sum(go * dsx, axis=1)
            tl.atomic_add(gw_ptr + (b * S * K * G + sk * G + g) * HW + pix, gw, mask=pmask)
            tl.atomic_add(goff_ptr + (b * S * K * 2 + sk * 2) * HW + pix, gpy, mask=pmask)
            tl.atomic_add(goff_ptr + (b * S * K * 2 + sk * 2 + 1) * HW + pix, gpx, mask=pmask)
            if NEED_GX:
                gwo = wv[:, None] * go
                tl.atomic_add(gx_ptr + p00, ((1 - ly) * (1 - lx))[:, None] * gwo, mask=m00[:, None] & cmask[None, :])
                tl.atomic_add(gx_ptr + p01, ((1 - ly) * lx)[:, None] * gwo, mask=m01[:, None] & cmask[None, :])
                tl.atomic_add(gx_ptr + p10, (ly * (1 - lx))[:, None] * gwo, mask=m10[:, None] & cmask[None, :])
                tl.atomic_add(gx_ptr + p11, (ly * lx)[:, None] * gwo, mask=m11[:, None] & cmask[None, :])


# Elements (BLOCK_P × BLOCK_C) one program holds, per kernel. Chosen with the ahead-of-time sm_80/sm_90 compile
# (``python -m dgmn.bench op --gpu-compile``, 4 warps): at 4096 the backward spilled (sm_80: ~7 KB of spill
# stores per thread) and the forward sat at the 255-register limit; at 2048 / 1024 neither spills in any dtype.
FWD_ELEMENTS = 2048
BWD_ELEMENTS = 1024
NUM_WARPS = 4


class Launch(NamedTuple):
    """One kernel launch exactly as the launcher makes it; the ahead-of-time compile reads the same object."""

    kernel: str  # name of the @triton.jit function in this module
    grid: tuple[int, int]
    args: tuple[tuple[str, object], ...]  # the kernel's runtime arguments, (name, value), in order
    constexprs: dict  # ACC, BLOCK_P, BLOCK_C (and NEED_GX)
    options: dict  # num_warps, enable_fp_fusion


def block_sizes(HW: int, Cg: int, elements: int) -> tuple[int, int]:
    """BLOCK_C: the largest power of two ≤ 64 dividing C/G (one group per program); BLOCK_P fills ``elements``
    (between 16 and 256 pixels, at most the map's pixel count rounded up to a power of two)."""
    block_c = 1
    while block_c < 64 and Cg % (block_c * 2) == 0:
        block_c *= 2
    block_p = max(16, min(256, elements // block_c))
    block_p = min(block_p, triton.next_power_of_2(HW))
    return block_p, block_c


def _acc_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _sizes(xs: torch.Tensor, weight: torch.Tensor, S: int, ks: int) -> tuple[int, int, int, int, int]:
    B, H, W, C = xs.shape
    return B, H, W, C, weight.shape[1] // (S * ks * ks)


def forward_launch(xs, offset, weight, out, dil, ks: int) -> Launch:
    """The forward launch for channels-last x (B, H, W, C), contiguous offset/weight, NHWC out, dilations ``dil``."""
    S = dil.numel()
    B, H, W, C, G = _sizes(xs, weight, S, ks)
    bp, bc = block_sizes(H * W, C // G, FWD_ELEMENTS)
    args = (("x_ptr", xs), ("off_ptr", offset), ("w_ptr", weight), ("out_ptr", out), ("dil_ptr", dil), ("H", H),
            ("W", W), ("C", C), ("Cg", C // G), ("G", G), ("S", S), ("KS", ks), ("HW", H * W))
    return Launch("_fwd_kernel", (B * triton.cdiv(H * W, bp), triton.cdiv(C, bc)), args,
                  dict(ACC=_acc_dtype(xs.dtype), BLOCK_P=bp, BLOCK_C=bc), dict(num_warps=NUM_WARPS, enable_fp_fusion=True))


def backward_launch(xs, offset, weight, go, gx, goff, gw, dil, ks: int, need_gx: bool) -> Launch:
    """The backward launch; gx, goff, gw are zeroed accumulators (float32 for half inputs; gx (1,) if not needed)."""
    S = dil.numel()
    B, H, W, C, G = _sizes(xs, weight, S, ks)
    bp, bc = block_sizes(H * W, C // G, BWD_ELEMENTS)
    args = (("x_ptr", xs), ("off_ptr", offset), ("w_ptr", weight), ("gout_ptr", go), ("gx_ptr", gx), ("goff_ptr", goff),
            ("gw_ptr", gw), ("dil_ptr", dil), ("H", H), ("W", W), ("C", C), ("Cg", C // G), ("G", G), ("S", S),
            ("KS", ks), ("HW", H * W))
    return Launch("_bwd_kernel", (B * triton.cdiv(H * W, bp), triton.cdiv(C, bc)), args,
                  dict(NEED_GX=bool(need_gx), ACC=_acc_dtype(xs.dtype), BLOCK_P=bp, BLOCK_C=bc),
                  dict(num_warps=NUM_WARPS, enable_fp_fusion=True))


def run(launch: Launch) -> None:
    kernel = globals()[launch.kernel]
    kernel[launch.grid](*(v for _, v in launch.args), **launch.constexprs, **launch.options)


def forward_triton(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, dilations: Sequence[int],
                   kernel_size: int = 3) -> torch.Tensor:
    """The Triton forward (inputs already validated): (B, C, H, W) in channels-last memory format."""
    xs = x.permute(0, 2, 3, 1).contiguous()
    dil = torch.tensor(list(dilations), dtype=torch.int32, device=x.device)
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    run(forward_launch(xs, offset.contiguous(), weight.contiguous(), out.permute(0, 2, 3, 1), dil, kernel_size))
    return out  # written as (B, H, W, C): channels-last, and not a view


def backward_triton(grad_out: torch.Tensor, x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                    dilations: Sequence[int], kernel_size: int, needs: Sequence[bool]):
    """The Triton backward: (grad_x, grad_offset, grad_weight), None where ``needs`` does not ask for one."""
    xs = x.permute(0, 2, 3, 1).contiguous()
    offset, weight = offset.contiguous(), weight.contiguous()
    dil = torch.tensor(list(dilations), dtype=torch.int32, device=x.device)
    acc = torch.float64 if xs.dtype == torch.float64 else torch.float32
    go = grad_out.permute(0, 2, 3, 1).contiguous()
    need_gx = bool(needs[0])
    gx = torch.zeros(xs.shape if need_gx else (1,), dtype=acc, device=xs.device)
    goff = torch.zeros(offset.shape, dtype=acc, device=xs.device)
    gw = torch.zeros(weight.shape, dtype=acc, device=xs.device)
    run(backward_launch(xs, offset, weight, go, gx, goff, gw, dil, kernel_size, need_gx))
    dt = xs.dtype
    return (gx.to(dt).permute(0, 3, 1, 2) if need_gx else None, goff.to(dt) if needs[1] else None,
            gw.to(dt) if needs[2] else None)
