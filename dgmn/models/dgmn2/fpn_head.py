"""mmseg's ``FPNHead`` (Semantic FPN), as DGMN2 configures it: feature strides 4/8/16/32, C = ``channels``.

Branch i (stride 4·2^i) has max(1, i) ConvModules (3×3, BN, ReLU), each followed by a 2× bilinear upsample
(:class:`Upsample2x`, the head's ``align_corners``) when i > 0::

    o = branch_0(p_0);   o ← o + resize(branch_i(p_i), o's size, bilinear, align_corners),  i = 1, 2, 3
    logits = Conv1×1(o)   (dropout before it is the identity at inference)     → (B, K, H_0, W_0)

Module names keep mmseg's keys: ``scale_heads.{i}.{j}.conv/bn`` (the upsamples take the odd indices j),
``conv_seg``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .conv_module import ConvModule
from .resize import Upsample2x, resize


class FPNHead(nn.Module):
    def __init__(self, in_channels: int, channels: int, num_classes: int, align_corners: bool, levels: int = 4):
        super().__init__()
        self.align_corners = align_corners
        self.scale_heads = nn.ModuleList()
        for i in range(levels):
            layers: list[nn.Module] = []
            for j in range(max(1, i)):
                layers.append(ConvModule(in_channels if j == 0 else channels, channels, 3, padding=1))
                if i > 0:
                    layers.append(Upsample2x(align_corners))
            self.scale_heads.append(nn.Sequential(*layers))
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        out = self.scale_heads[0](feats[0])
        for head, f in zip(list(self.scale_heads)[1:], feats[1:]):
            out = out + resize(head(f), out.shape[2:], self.align_corners)
        return self.conv_seg(out)
