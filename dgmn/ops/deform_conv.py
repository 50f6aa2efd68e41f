"""Deformable convolution built on :func:`dgmn.ops.dynamic_aggregate`: DGMN's node-conditioned prediction conv.

    out[b, o, y, x] = bias[o] + Σ_k Σ_c weight[o, c, ky, kx] · bilinear(x[b, c], py_k, px_k)

with py_k = y + (ky − c0)·dilation + offset[b, 2k, y, x] and px_k likewise (k = ky·ks + kx), i.e. a
kernel_size×kernel_size conv whose taps read the walked nodes instead of the fixed grid.

Shapes: x (B, C, H, W), offset (B, 2·K, H, W), weight (O, C, ks, ks), bias (O,) or None → (B, O, H, W).

It transforms before it samples, which is exact because bilinear sampling is linear in the features:
z_k = W_k·x is a 1×1 conv to K·O channels (the same C·K·O MACs as the 3×3 conv), and tap k of
z_k is sampled by ``dynamic_aggregate`` with one-hot weights (group k ↔ node k), so only K·O channels
are sampled per pixel instead of the C·K an im2col would build.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .dynamic_aggregate import dynamic_aggregate


def deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    dilation: int = 1,
    *,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Deformable conv at ``dilation`` with per-pixel tap offsets (see the module docstring)."""
    if weight.dim() != 4 or weight.shape[2] != weight.shape[3] or weight.shape[1] != x.shape[1]:
        raise ValueError(
            f"deform_conv2d: `weight` must have shape (O, C={x.shape[1]}, ks, ks), got {tuple(weight.shape)}"
        )
    O, C, ks = (int(v) for v in weight.shape[:3])  # plain ints, also while tracing for ONNX
    K = ks * ks
    B, _, H, W = (int(v) for v in x.shape)
    z = F.conv2d(x, weight.permute(2, 3, 0, 1).reshape(K * O, C, 1, 1))  # (B, K·O, H, W), layout [k][o]
    onehot = torch.eye(K, dtype=x.dtype, device=x.device).view(1, K * K, 1, 1).expand(B, K * K, H, W)
    taps = dynamic_aggregate(z, offset, onehot, (dilation,), ks, impl=impl)  # (B, K·O, H, W): tap k of z_k
    # Σ_k, with O innermost (channels-last order): much faster than reducing a strided (B, K, O, H, W) view.
    out = taps.permute(0, 2, 3, 1).reshape(B, H, W, K, O).sum(dim=3)
    if bias is not None:
        out = out + bias
    return out.permute(0, 3, 1, 2)
