"""Pure-PyTorch reference of the dynamic aggregation op: the spec in executable form.

It materialises every sampled node, ``(B, C, S·K, H, W)``, so it is simple and slow;
the fused CPU kernel and the Triton kernel are checked against it.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F


def node_grid(offset: torch.Tensor, dilations: Sequence[int], kernel_size: int) -> torch.Tensor:
    """Absolute sampling positions of every node, in pixels.

    offset: (B, S·K·2, H, W), layout [s][k][dy, dx].
    Returns (B, S·K, H, W, 2) with [..., 0] = y + (ky − c0)·d_s + dy and [..., 1] = x + (kx − c0)·d_s + dx,
    where k = ky·kernel_size + kx and c0 = (kernel_size − 1) / 2.
    """
    B, _, H, W = offset.shape
    S, K = len(dilations), kernel_size * kernel_size
    c0 = (kernel_size - 1) / 2
    dev, dt = offset.device, offset.dtype
    taps = torch.arange(kernel_size, device=dev, dtype=dt) - c0
    ky = taps.repeat_interleave(kernel_size)  # (K,)
    kx = taps.repeat(kernel_size)  # (K,)
    d = torch.as_tensor(list(dilations), device=dev, dtype=dt)  # (S,)
    base_y = (d[:, None] * ky[None]).reshape(S * K, 1, 1) + torch.arange(H, device=dev, dtype=dt).view(1, H, 1)
    base_x = (d[:, None] * kx[None]).reshape(S * K, 1, 1) + torch.arange(W, device=dev, dtype=dt).view(1, 1, W)
    off = offset.view(B, S * K, 2, H, W)
    py = base_y.expand(S * K, H, W) + off[:, :, 0]
    px = base_x.expand(S * K, H, W) + off[:, :, 1]
    return torch.stack((py, px), dim=-1)


def sampling_grid(offset: torch.Tensor, dilations: Sequence[int], kernel_size: int, H: int, W: int) -> torch.Tensor:
    """``F.grid_sample``'s grid (``align_corners=False``) for every node: (B, S·K·H, W, 2), [..., 0] = x, [..., 1] = y."""
    B = offset.shape[0]
    SK = len(dilations) * kernel_size * kernel_size
    pos = node_grid(offset, dilations, kernel_size)  # (B, SK, H, W, 2)
    # a position beyond one pixel outside the map samples only zeros; clamping it there changes neither the
    # value nor the (zero) gradient, and keeps huge finite offsets from overflowing to inf/NaN below
    gy = (2 * pos[..., 0].clamp(-2, H + 1) + 1) / H - 1
    gx = (2 * pos[..., 1].clamp(-2, W + 1) + 1) / W - 1
    return torch.stack((gx, gy), dim=-1).reshape(B, SK * H, W, 2)


def sample_nodes(x: torch.Tensor, offset: torch.Tensor, dilations: Sequence[int], kernel_size: int = 3) -> torch.Tensor:
    """Bilinearly sample every node of every rate: (B, C, H, W) → (B, C, S·K, H, W).

    nodes[b, c, s·K + k, y, x] = bilinear(x[b, c], py, px) at the positions of :func:`node_grid`,
    with zeros outside [0, H−1]×[0, W−1], per corner. Implemented with ``F.grid_sample``
    (``align_corners=False``, so maps with a side of 1 pixel are handled too).
    """
    B, C, H, W = x.shape
    SK = len(dilations) * kernel_size * kernel_size
    grid = sampling_grid(offset, dilations, kernel_size, H, W)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.view(B, C, SK, H, W)


def dynamic_aggregate_reference(
    x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, dilations: Sequence[int], kernel_size: int = 3
) -> torch.Tensor:
    """out[b, c] = Σ_{s,k} weight[b, (s·K+k)·G + g(c)] · nodes[b, c, s·K+k]; see :func:`dgmn.ops.dynamic_aggregate`."""
    B, C, H, W = x.shape
    SK = len(dilations) * kernel_size * kernel_size
    G = weight.shape[1] // SK
    nodes = sample_nodes(x, offset, dilations, kernel_size).view(B, G, C // G, SK, H, W)
    w = weight.view(B, SK, G, H, W).transpose(1, 2).unsqueeze(2)  # (B, G, 1, SK, H, W)
    return (nodes * w).sum(dim=3).view(B, C, H, W)


def dynamic_aggregate_reference_backward(
    grad_out: torch.Tensor, x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, dilations: Sequence[int],
    kernel_size: int, needs: Sequence[bool],
) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Gradients of :func:`dynamic_aggregate_reference` w.r.t. (x, offset, weight), each only if ``needs`` says so.

    The chain rule of the reference written out with ATen ops (no autograd graph is needed, so it runs inside
    the custom op's backward): with nodes = grid_sample(x, grid) and out = Σ_sk w·nodes,
    ∂/∂w = Σ_{c ∈ group} grad_out·nodes, ∂/∂nodes = grad_out·w, whose ``grid_sampler_2d_backward`` gives ∂/∂x
    and ∂/∂grid; the grid is (2·clamp(p, −2, size+1) + 1)/size − 1 of the position p = base + offset, so
    ∂/∂offset = ∂/∂grid · 2/size where p lies within the clamp (inclusive, as autograd's clamp) and 0 elsewhere.
    """
    B, C, H, W = x.shape
    SK = len(dilations) * kernel_size * kernel_size
    G = weight.shape[1] // SK
    grid = sampling_grid(offset, dilations, kernel_size, H, W)
    go = grad_out.reshape(B, G, C // G, 1, H, W)
    gx = goff = gw = None
    if needs[2]:
        nodes = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        gw = (go * nodes.view(B, G, C // G, SK, H, W)).sum(dim=2).transpose(1, 2).reshape(B, SK * G, H, W)
    if needs[0] or needs[1]:
        w = weight.view(B, SK, G, H, W).transpose(1, 2).unsqueeze(2)  # (B, G, 1, SK, H, W)
        g_nodes = (go * w).reshape(B, C, SK * H, W)
        gx, ggrid = torch.ops.aten.grid_sampler_2d_backward(g_nodes, x, grid, 0, 0, False, [bool(needs[0]), bool(needs[1])])
        if needs[1]:
            pos = node_grid(offset, dilations, kernel_size)  # (B, SK, H, W, 2)
            ggrid = ggrid.view(B, SK, H, W, 2)
            gpy = ggrid[..., 1] * (2.0 / H) * ((pos[..., 0] >= -2) & (pos[..., 0] <= H + 1))
            gpx = ggrid[..., 0] * (2.0 / W) * ((pos[..., 1] >= -2) & (pos[..., 1] <= W + 1))
            goff = torch.stack((gpy, gpx), dim=2).reshape(B, SK * 2, H, W)
    return (gx if needs[0] else None), goff, gw
