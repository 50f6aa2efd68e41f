"""Summary statistics of one rate's dynamic graph (a :class:`dgmn.modules.dgmn.RateGraph`), over positions.

For walks Δ (B, 2K, h, w), node positions p_k = grid_k + Δ_k (feature pixels) and affinities A (B, K, h, w):

    walk_length        mean over b, k, positions of ‖Δ_k‖ (finite walks only)
    outside_fraction   share of nodes with p_k outside (−1, h) × (−1, w) (they read zeros)
    collapsed_fraction share of positions whose K nodes all lie within 0.5 px of their mean
    affinity_entropy   mean over positions of −Σ_k A_k log A_k / log K  (1 = uniform; 1 without dynamic affinity)
"""
from __future__ import annotations

import math

import torch

from ..ops import node_grid


def node_positions(offset: torch.Tensor, dilation: int, kernel_size: int) -> torch.Tensor:
    """(B, K, h, w, 2) sampled positions (y, x) of one rate's nodes."""
    return node_grid(offset, (dilation,), kernel_size)


def outside_mask(pos: torch.Tensor, size) -> torch.Tensor:
    """(…) bool: positions (…, 2) outside (−1, h) × (−1, w)."""
    h, w = size
    return ~((pos[..., 0] > -1) & (pos[..., 0] < h) & (pos[..., 1] > -1) & (pos[..., 1] < w))


def collapsed_mask(pos: torch.Tensor) -> torch.Tensor:
    """(B, h, w) bool: all K nodes within 0.5 px of their mean."""
    return (pos - pos.mean(1, keepdim=True)).norm(dim=-1).amax(1) < 0.5


def rate_statistics(offset: torch.Tensor, affinity: torch.Tensor | None, dilation: int, kernel_size: int) -> dict:
    """The four statistics of the module docstring for one rate (floats)."""
    K = kernel_size * kernel_size
    offset = offset.detach().float()
    B, _, h, w = offset.shape
    length = offset.view(B, K, 2, h, w).norm(dim=2)
    finite = torch.isfinite(length)
    pos = node_positions(offset, dilation, kernel_size)
    if affinity is None or K == 1:
        entropy = 1.0
    else:
        a = affinity.detach().float().clamp_min(1e-12)
        entropy = float((-(a * a.log()).sum(1) / math.log(K)).mean())
    return {
        "walk_length": float(length[finite].mean()) if finite.any() else math.nan,
        "outside_fraction": float(outside_mask(pos, (h, w)).float().mean()),
        "collapsed_fraction": float(collapsed_mask(pos).float().mean()) if K > 1 else 0.0,
        "affinity_entropy": entropy,
    }
