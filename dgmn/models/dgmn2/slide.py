"""Sliding-window inference, mmseg's ``EncoderDecoder.slide_inference``: overlapping crops, averaged logits.

For an image (B, 3, H, W), crop (h_c, w_c) and stride (h_s, w_s)::

    rows = max(H − h_c + h_s − 1, 0) // h_s + 1,   cols likewise
    crop (r, c): y₁ = r·h_s, y₂ = min(y₁ + h_c, H), y₁ ← max(y₂ − h_c, 0)   (x likewise; the last crop is moved
                 back inside the image, a crop larger than the image is the whole image)
    logits = Σ_crops pad(model(image[..., y₁:y₂, x₁:x₂])) / count,   count = how many crops cover each pixel

Returns (B, num_classes, H, W) averaged logits (mmseg applies the softmax after this). The published DGMN2
models used crop 769, stride 513.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn


def _pair(v, name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in t):
        raise ValueError(f"slide_inference: {name} must be a positive int or two, got {v!r}")
    return t


def window_starts(size: int, crop: int, stride: int) -> list[tuple[int, int]]:
    """[(start, end)] of the windows along one axis of ``size`` pixels."""
    n = max(size - crop + stride - 1, 0) // stride + 1
    out = []
    for i in range(n):
        end = min(i * stride + crop, size)
        out.append((max(end - crop, 0), end))
    return out


@torch.no_grad()
def slide_inference(model: nn.Module, image: torch.Tensor, crop=769, stride=513, num_classes: Optional[int] = None,
                    progress: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """Averaged logits (B, K, H, W) of ``model`` over sliding crops of ``image`` (B, 3, H, W); ``num_classes``
    defaults to ``model.num_classes``; ``progress(done, total)`` is called after each crop."""
    (hc, wc), (hs, ws) = _pair(crop, "crop"), _pair(stride, "stride")
    if image.dim() != 4:
        raise ValueError(f"slide_inference: expected an image batch (B, 3, H, W), got {tuple(image.shape)}")
    K = num_classes if num_classes is not None else model.num_classes
    B, _, H, W = image.shape
    windows = [(y, x) for y in window_starts(H, hc, hs) for x in window_starts(W, wc, ws)]
    logits = image.new_zeros((B, K, H, W))
    count = image.new_zeros((1, 1, H, W))
    for n, ((y1, y2), (x1, x2)) in enumerate(windows, 1):
        out = model(image[:, :, y1:y2, x1:x2])
        if tuple(out.shape) != (B, K, y2 - y1, x2 - x1):
            raise ValueError(f"slide_inference: the model returned {tuple(out.shape)} for a crop of {(B, 3, y2 - y1, x2 - x1)}; "
                             f"expected {(B, K, y2 - y1, x2 - x1)} (num_classes={K})")
        logits[:, :, y1:y2, x1:x2] += out
        count[:, :, y1:y2, x1:x2] += 1
        if progress is not None:
            progress(n, len(windows))
    return logits / count
