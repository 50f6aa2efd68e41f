"""DGMN2's SETR "up" heads (their ``VisionTransformerUpHead``), on the last stage's output (B, C₄, h, w), stride 8.

SETR-Naive (``num_conv=2`` in their configs)::

    logits = resize(Conv1×1(f), img_size × img_size)                 conv_seg; a square of ``img_size`` (769)

SETR-PUP (``num_conv=4``), C = ``channels`` (256), s = the current *width*; every resize is to a square::

    f ← ReLU(BN(Conv3×3(f))) then resize to (2s, 2s)                three times: conv_{0,1,2} + syncbn_fc_{0,1,2}
    logits = resize(Conv1×1(f), (2s, 2s))                           conv_seg (so 97 → 194 → 388 → 776 → 1552)

Both resizes are bilinear with the head's ``align_corners``; the segmenter then resizes the logits to the
input. The convs have biases; the BNs use running statistics.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .resize import resize


class SETRNaiveHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, img_size: int, align_corners: bool):
        super().__init__()
        self.img_size, self.align_corners = img_size, align_corners
        self.conv_seg = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return resize(self.conv_seg(feats[-1]), self.img_size, self.align_corners)


class SETRPUPHead(nn.Module):
    def __init__(self, in_channels: int, channels: int, num_classes: int, align_corners: bool):
        super().__init__()
        self.align_corners = align_corners
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        for i in range(3):
            setattr(self, f"conv_{i}", nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1))
            setattr(self, f"syncbn_fc_{i}", nn.BatchNorm2d(channels))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for i in range(3):
            x = F.relu(getattr(self, f"syncbn_fc_{i}")(getattr(self, f"conv_{i}")(x)))
            x = resize(x, 2 * x.shape[-1], self.align_corners)
        x = self.conv_seg(x)
        return resize(x, 2 * x.shape[-1], self.align_corners)
