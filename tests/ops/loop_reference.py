"""An independent float64 loop implementation of the op's formula, written from the spec in numpy."""
import math

import numpy as np


def bilinear(img: np.ndarray, py: float, px: float) -> np.ndarray:
    """img: (C, H, W). Σ over the 4 integer neighbours of (1−|py−iy|)(1−|px−ix|)·img[:, iy, ix], 0 outside."""
    C, H, W = img.shape
    out = np.zeros(C)
    y0, x0 = math.floor(py), math.floor(px)
    for iy in (y0, y0 + 1):
        for ix in (x0, x0 + 1):
            if 0 <= iy < H and 0 <= ix < W:
                out += (1 - abs(py - iy)) * (1 - abs(px - ix)) * img[:, iy, ix]
    return out


def dynamic_aggregate_loop(x, offset, weight, dilations, kernel_size=3) -> np.ndarray:
    x, offset, weight = (np.asarray(t, dtype=np.float64) for t in (x, offset, weight))
    B, C, H, W = x.shape
    S, K = len(dilations), kernel_size * kernel_size
    G = weight.shape[1] // (S * K)
    c0 = (kernel_size - 1) / 2
    group = np.arange(C) // (C // G)
    out = np.zeros_like(x)
    for b in range(B):
        for y in range(H):
            for xx in range(W):
                for s, d in enumerate(dilations):
                    for k in range(K):
                        ky, kx = divmod(k, kernel_size)
                        sk = s * K + k
                        py = y + (ky - c0) * d + offset[b, sk * 2, y, xx]
                        px = xx + (kx - c0) * d + offset[b, sk * 2 + 1, y, xx]
                        w = weight[b, sk * G + group, y, xx]
                        out[b, :, y, xx] += w * bilinear(x[b], py, px)
    return out
