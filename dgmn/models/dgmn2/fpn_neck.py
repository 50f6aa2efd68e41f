"""mmseg's FPN neck as DGMN2's Semantic-FPN configs use it (no norm, no activation, no extra levels).

For backbone levels i = 0..3 (fine to coarse), C' = ``out_channels``::

    l_i = Conv1×1_i(f_i)  (with bias)                          lateral_convs.{i}.conv
    l_i ← l_i + nearest(l_{i+1}, to l_i's size),  i = 2, 1, 0  (top-down; l_{i+1} already updated)
    p_i = Conv3×3_i(l_i)  (with bias, padding 1)               fpn_convs.{i}.conv

returns [p_0, p_1, p_2, p_3], each (B, C', H_i, W_i).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .conv_module import ConvModule
from .resize import resize


class FPN(nn.Module):
    def __init__(self, in_channels: list[int], out_channels: int):
        super().__init__()
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1, norm=False, act=False) for c in in_channels)
        self.fpn_convs = nn.ModuleList(ConvModule(out_channels, out_channels, 3, padding=1, norm=False, act=False)
                                       for _ in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        lat = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + resize(lat[i], lat[i - 1].shape[2:], None, mode="nearest")
        return [conv(x) for conv, x in zip(self.fpn_convs, lat)]
