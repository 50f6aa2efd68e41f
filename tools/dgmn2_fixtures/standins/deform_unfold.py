"""A CPU stand-in for DGMN2's CUDA-only ``DeformUnfold`` (their ``dcn`` extension), and a check of it.

What their op computes (read from ``segmentation/backbones/dcn/src/deform_conv_cuda_kernel.cu``,
``deformable_im2col_gpu_kernel`` + ``deformable_im2col_bilinear``, and ``deform_unfold_forward_cuda`` in
``deform_conv_cuda.cpp``), for ``deformable_groups == 1``:

* input ``(N, C, H, W)``, offset ``(N, 2·kh·kw, Ho, Wo)``; output ``(N, C·kh·kw, Ho·Wo)``, channel ``c·kh·kw + k``
  for tap ``k = i·kw + j``, column ``ho·Wo + wo``;
* tap ``k`` of output pixel ``(ho, wo)`` samples the input at
  ``h = ho·sh − ph + i·dh + offset[2k]`` and ``w = wo·sw − pw + j·dw + offset[2k+1]``
  (offset channel ``2k`` is the y/row offset, ``2k+1`` the x/column offset);
* the sample is 0 unless ``-1 < h < H`` and ``-1 < w < W``; otherwise bilinear interpolation of the four
  neighbours ``(floor(h)|floor(h)+1, floor(w)|floor(w)+1)``, where each neighbour outside the image counts as 0
  (zero padding per corner).

``grid_sample(mode="bilinear", padding_mode="zeros")`` computes exactly that per-corner zero-padded bilinear
interpolation, and it is 0 wherever the kernel's outer range test fails (at ``h <= -1`` or ``h >= H`` every
corner that would get a non-zero weight lies outside the image). Pixel coordinates are normalised with the
``align_corners=False`` convention, ``g = (2·p + 1) / size − 1``, which grid_sample maps back to ``p`` exactly up
to rounding and which, unlike ``align_corners=True``, also works for a size-1 axis.

Their host code (``unfold_shape_check``) refuses inputs smaller than the kernel ("input image is smaller than
kernel"), so DGMN2 cannot run where a stage's map is under 3×3 (images under 65 px with the FPN's stride-32
stage 4, under 17 px with the SETR heads); the stand-in raises the same way.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair


def deform_unfold(input: torch.Tensor, offset: torch.Tensor, kernel_size=3, stride=1, padding=0, dilation=1,
                  deformable_groups: int = 1) -> torch.Tensor:
    """Zero-padded bilinear deformable unfold with ``F.grid_sample``; same layout and values as their CUDA op."""
    if input.dim() != 4:
        raise ValueError(f"Expected 4D tensor as input, got {input.dim()}D tensor instead.")
    if deformable_groups != 1:
        raise NotImplementedError("only deformable_groups=1 (the only setting DGMN2 uses)")
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    n, c, h, w = input.shape
    ho = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    k = kh * kw
    if h < kh or w < kw:  # their unfold_shape_check refuses this too
        raise ValueError("input image is smaller than kernel")
    if tuple(offset.shape) != (n, 2 * k, ho, wo):
        raise ValueError(f"offset must be {(n, 2 * k, ho, wo)}, got {tuple(offset.shape)}")
    dt, dev = input.dtype, input.device
    # base sampling positions of every tap: (k, ho, wo)
    ii = torch.arange(kh, dtype=dt, device=dev).repeat_interleave(kw)  # tap k -> row i
    jj = torch.arange(kw, dtype=dt, device=dev).repeat(kh)  # tap k -> column j
    base_y = (torch.arange(ho, dtype=dt, device=dev) * sh - ph)[None, :, None] + (ii * dh)[:, None, None]
    base_x = (torch.arange(wo, dtype=dt, device=dev) * sw - pw)[None, None, :] + (jj * dw)[:, None, None]
    off = offset.reshape(n, k, 2, ho, wo)
    y = base_y.unsqueeze(0) + off[:, :, 0]  # (n, k, ho, wo)
    x = base_x.unsqueeze(0) + off[:, :, 1]
    gx = (2 * x + 1) / w - 1
    gy = (2 * y + 1) / h - 1
    grid = torch.stack((gx, gy), dim=-1).reshape(n, k, ho * wo, 2)
    out = F.grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (n, c, k, L)
    return out.reshape(n, c * k, ho * wo)


class DeformUnfold(nn.Module):
    """Drop-in for ``dcn.DeformUnfold`` (same constructor, no parameters, forward ``(input, offset)``)."""

    def __init__(self, kernel_size, stride=1, padding=0, dilation=1, deformable_groups=1, bias=False):
        assert not bias
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.deformable_groups = deformable_groups

    def forward(self, input, offset):
        return deform_unfold(input, offset, self.kernel_size, self.stride, self.padding, self.dilation,
                             self.deformable_groups)


def deform_unfold_kernel_transcription(input: torch.Tensor, offset: torch.Tensor, kernel_size=3, stride=1,
                                       padding=0, dilation=1) -> torch.Tensor:
    """Slow, literal Python transcription of their CUDA forward (one loop iteration per CUDA thread and tap).

    Mirrors ``deformable_im2col_gpu_kernel`` / ``deformable_im2col_bilinear`` and the host code's final layout
    (``columns`` is ``(C·K, batch, Ho, Wo)``; the host transposes it to ``(batch, C·K, Ho·Wo)``). Python floats
    are IEEE doubles, so give it float64 tensors to compare at 1e-12.
    """
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    batch, channels, height, width = input.shape
    hc = (height + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wc = (width + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    im = input.tolist()
    of = offset.tolist()
    out = [[[0.0] * (hc * wc) for _ in range(channels * kh * kw)] for _ in range(batch)]

    def bilinear(plane, h, w):
        h_low = math.floor(h)
        w_low = math.floor(w)
        h_high = h_low + 1
        w_high = w_low + 1
        lh = h - h_low
        lw = w - w_low
        hh = 1 - lh
        hw = 1 - lw
        v1 = plane[h_low][w_low] if (h_low >= 0 and w_low >= 0) else 0.0
        v2 = plane[h_low][w_high] if (h_low >= 0 and w_high <= width - 1) else 0.0
        v3 = plane[h_high][w_low] if (h_high <= height - 1 and w_low >= 0) else 0.0
        v4 = plane[h_high][w_high] if (h_high <= height - 1 and w_high <= width - 1) else 0.0
        w1, w2, w3, w4 = hh * hw, hh * lw, lh * hw, lh * lw
        return w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4

    for b in range(batch):
        for c_im in range(channels):
            plane = im[b][c_im]
            for h_col in range(hc):
                for w_col in range(wc):
                    h_in = h_col * sh - ph
                    w_in = w_col * sw - pw
                    for i in range(kh):
                        for j in range(kw):
                            kk = i * kw + j
                            offset_h = of[b][2 * kk][h_col][w_col]
                            offset_w = of[b][2 * kk + 1][h_col][w_col]
                            val = 0.0
                            h_im = h_in + i * dh + offset_h
                            w_im = w_in + j * dw + offset_w
                            if h_im > -1 and w_im > -1 and h_im < height and w_im < width:
                                val = bilinear(plane, h_im, w_im)
                            out[b][c_im * kh * kw + kk][h_col * wc + w_col] = val
    return torch.tensor(out, dtype=torch.float64)


def self_check(verbose: bool = True) -> dict:
    """The stand-in equals ``nn.Unfold(3, padding=1)`` at zero offset and the kernel transcription elsewhere."""
    g = torch.Generator().manual_seed(1234)
    results = {}
    # 1. zero offsets: plain unfold (float32 and float64, odd and size-1 axes)
    for dt, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        worst = 0.0
        for shape in [(2, 5, 7, 9), (1, 3, 3, 6), (3, 4, 6, 3), (1, 2, 4, 4)]:
            x = torch.randn(*shape, generator=g, dtype=torch.float64).to(dt)
            off = torch.zeros(shape[0], 18, shape[2], shape[3], dtype=dt)
            ref = nn.Unfold(3, padding=1)(x)
            got = deform_unfold(x, off, 3, 1, 1, 1)
            worst = max(worst, (ref - got).abs().max().item())
        results[f"zero_offset_vs_nn_unfold_{str(dt)[6:]}_max_abs"] = worst
        assert worst <= tol, (dt, worst)
    # 2. random (partly out-of-range, partly integer, partly exactly on the border) offsets vs the transcription
    worst = 0.0
    for shape, kw in [((2, 3, 5, 6), dict(kernel_size=3, stride=1, padding=1, dilation=1)),
                      ((1, 2, 7, 4), dict(kernel_size=3, stride=1, padding=1, dilation=1)),
                      ((1, 2, 3, 5), dict(kernel_size=3, stride=1, padding=1, dilation=1)),
                      ((2, 2, 6, 7), dict(kernel_size=3, stride=2, padding=2, dilation=2))]:
        n, c, h, w = shape
        k = 9
        ho = (h + 2 * kw["padding"] - (kw["dilation"] * 2 + 1)) // kw["stride"] + 1
        wo = (w + 2 * kw["padding"] - (kw["dilation"] * 2 + 1)) // kw["stride"] + 1
        x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
        off = torch.randn(n, 2 * k, ho, wo, generator=g, dtype=torch.float64) * 1.7
        flat = off.view(-1)
        m = flat.numel()
        flat[: m // 8] = torch.round(flat[: m // 8])  # integer offsets: on-grid taps
        flat[m // 8: m // 6] = flat[m // 8: m // 6] * 4  # far out of range
        # exact borders: taps landing exactly on -1 and on H / W
        off[:, 0] = -1.0 - (torch.arange(ho, dtype=torch.float64)[:, None] * kw["stride"] - kw["padding"])  # tap 0 y = -1
        off[:, 3, 0, :] = float(w) - (torch.arange(wo, dtype=torch.float64) * kw["stride"] - kw["padding"] + kw["dilation"])  # tap 1 x = W
        ref = deform_unfold_kernel_transcription(x, off, **kw)
        got = deform_unfold(x, off, **kw)
        worst = max(worst, (ref - got).abs().max().item())
    results["random_offsets_vs_cuda_transcription_float64_max_abs"] = worst
    assert worst <= 1e-12, worst
    if verbose:
        print("deform-unfold self-check:", results)
    return results


if __name__ == "__main__":
    self_check()
