"""A dilated ks×ks convolution computed as one 1×1 convolution followed by ks² shifted sums.

    out[b, o, y, x] = bias[o] + Σ_{ky,kx} Σ_c weight[o, c, ky, kx] · x[b, c, y + (ky−c0)·d, x + (kx−c0)·d]

with zero padding (x = 0 outside the map), c0 = (ks−1)/2. z = (W reshaped to (K·O, C)) · x gives every
tap's contribution at once (the same C·K·O MACs as the convolution); tap k's map is then added shifted
by its grid offset. For few output channels at large dilations (DGMN's walk predictors: O = 2K) this is
about twice as fast on the CPU as oneDNN's direct dilated convolution, and it gives the same numbers.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def dilated_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, dilation: int = 1) -> torch.Tensor:
    """Same as ``F.conv2d(x, weight, bias, padding=dilation·(ks−1)/2, dilation=dilation)`` for odd ks."""
    O, C, ks, ks2 = (int(v) for v in weight.shape)
    if ks != ks2 or ks % 2 == 0 or x.dim() != 4 or x.shape[1] != C:
        raise ValueError(
            f"dilated_conv2d: need x (B, {C}, H, W) and an odd square kernel (O, C, ks, ks); "
            f"got x {tuple(x.shape)} and weight {tuple(weight.shape)}"
        )
    B, _, H, W = (int(v) for v in x.shape)
    K, c0 = ks * ks, (ks - 1) // 2
    z = F.conv2d(x, weight.permute(2, 3, 0, 1).reshape(K * O, C, 1, 1))  # (B, K·O, H, W), layout [k][o]
    # the sum in z's memory format: adding channels-last slices of z into an NCHW buffer is ~4× slower on the CPU
    fmt = torch.channels_last if z.dim() == 4 and z.stride(1) == 1 and O > 1 else torch.contiguous_format
    base = bias.view(1, O, 1, 1) if bias is not None else z.new_zeros(1, O, 1, 1)
    out = base.expand(B, O, H, W).clone(memory_format=fmt)
    for k in range(K):
        dy, dx = (k // ks - c0) * dilation, (k % ks - c0) * dilation
        y0, y1 = max(0, -dy), min(H, H - dy)  # output rows whose source row y + dy is inside the map
        x0, x1 = max(0, -dx), min(W, W - dx)
        if y0 < y1 and x0 < x1:
            out[:, :, y0:y1, x0:x1] += z[:, k * O : (k + 1) * O, y0 + dy : y1 + dy, x0 + dx : x1 + dx]
    return out
