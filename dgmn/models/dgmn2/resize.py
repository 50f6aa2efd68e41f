"""Resizing as mmseg does it, in one place.

``resize(x, size, align_corners)``: ``F.interpolate(x, size, mode="bilinear", align_corners)``; an ``int`` size
means a *square* output (size × size) — the SETR heads rely on that. :class:`Upsample2x` is mmseg's
``Upsample(scale_factor=2)``: the output size is computed first, (⌊2H⌋, ⌊2W⌋), and then resized to, so the
interpolation uses the size ratio, as mmseg's does.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def resize(x: torch.Tensor, size, align_corners: bool, mode: str = "bilinear") -> torch.Tensor:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)


class Upsample2x(nn.Module):
    """(B, C, H, W) → (B, C, 2H, 2W), bilinear with the given ``align_corners``."""

    def __init__(self, align_corners: bool):
        super().__init__()
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize(x, (2 * x.shape[-2], 2 * x.shape[-1]), self.align_corners)
