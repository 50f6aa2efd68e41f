"""DGMN2's SETR-MLA head (their ``VIT_MLAHead``) on the four stage outputs p₂..p₅ (strides 4, 8, 8, 8).

Each level has two ConvModules 3×3 (no bias, BN, ReLU) to C = ``mla_channels`` (128), then a bilinear resize,
``align_corners=True`` always, to a *square*: p₂'s and p₃'s branches to 4·w(p₃), p₄'s to 4·w(p₄), p₅'s to
4·w(p₅) (w = width; all 388 for a 769 crop)::

    f = concat(resize(head2(p₂)), resize(head3(p₃)), resize(head4(p₄)), resize(head5(p₅)))   (B, 4C, S, S)
    logits = resize(Conv1×1(f), img_size × img_size)     bilinear, the head's ``align_corners``

Module names keep the original's keys: ``mlahead.head{2..5}.{0,1,3,4}`` (conv, BN, -, conv, BN), ``conv_seg``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .resize import resize


def _branch(cin: int, c: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                         nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())


class MLABranches(nn.Module):
    def __init__(self, in_channels: list[int], channels: int):
        super().__init__()
        for i, c in enumerate(in_channels):
            setattr(self, f"head{i + 2}", _branch(c, channels))

    def forward(self, p2, p3, p4, p5) -> torch.Tensor:
        outs = [resize(self.head2(p2), 4 * p3.shape[-1], True), resize(self.head3(p3), 4 * p3.shape[-1], True),
                resize(self.head4(p4), 4 * p4.shape[-1], True), resize(self.head5(p5), 4 * p5.shape[-1], True)]
        return torch.cat(outs, dim=1)


class SETRMLAHead(nn.Module):
    def __init__(self, in_channels: list[int], channels: int, num_classes: int, img_size: int, align_corners: bool):
        super().__init__()
        self.img_size, self.align_corners = img_size, align_corners
        self.conv_seg = nn.Conv2d(4 * channels, num_classes, 1)
        self.mlahead = MLABranches(in_channels, channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return resize(self.conv_seg(self.mlahead(*feats)), self.img_size, self.align_corners)
