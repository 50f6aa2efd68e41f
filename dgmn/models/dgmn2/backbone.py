"""The DGMN2 backbone: four stages, each a convolutional patch embedding followed by DGMN2 blocks.

    stage 1: image (B, 3, H, W) → [Conv3×3/2 → BN → ReLU] to C₁/2, [Conv3×3/1 → BN → ReLU], [Conv3×3/2 → BN → ReLU]
             to C₁: (B, C₁, ⌈H/4⌉, ⌈W/4⌉) (each stride-2 conv: n → ⌊(n − 1)/2⌋ + 1)
    stage s ≥ 2: Conv3×3/stride → BN → ReLU to C_s; stride 2, or 1 for stages 3–4 when ``pyramid`` is False
    then each stage's blocks on the tokens (B, H_s·W_s, C_s)

Convolutions have no bias; BN uses its running statistics in eval (the published SyncBN weights load into
``BatchNorm2d`` under the same names). Returns the four stage outputs (B, C_s, H_s, W_s): with ``pyramid``
(FPN) strides 4/8/16/32, else 4/8/8/8 (SETR heads). Module names are the original's: ``patch_embed1.conv1…norm3``,
``patch_embed{2,3,4}.conv/norm``, ``block{1..4}.{i}``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .block import DGMN2Block
from .config import BackboneConfig


def conv_bn(cin: int, cout: int, stride: int) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)


class StemEmbed(nn.Module):
    """Stage 1's patch embedding: three 3×3 conv-BN-ReLU, strides 2, 1, 2; widths C/2, C/2, C."""

    def __init__(self, in_chans: int, dim: int):
        super().__init__()
        self.conv1, self.norm1 = conv_bn(in_chans, dim // 2, 2)
        self.conv2, self.norm2 = conv_bn(dim // 2, dim // 2, 1)
        self.conv3, self.norm3 = conv_bn(dim // 2, dim, 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.norm1(self.conv1(x)))
        x = self.relu(self.norm2(self.conv2(x)))
        return self.relu(self.norm3(self.conv3(x)))


class PatchEmbed(nn.Module):
    """Stages 2–4: one 3×3 conv-BN-ReLU of the given stride."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv, self.norm = conv_bn(cin, cout, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.norm(self.conv(x)))


class DGMN2Backbone(nn.Module):
    def __init__(self, cfg: BackboneConfig, pyramid: bool, in_chans: int = 3):
        super().__init__()
        self.cfg, self.pyramid = cfg, pyramid
        dims = cfg.embed_dims
        self.patch_embed1 = StemEmbed(in_chans, dims[0])
        self.patch_embed2 = PatchEmbed(dims[0], dims[1], 2)
        self.patch_embed3 = PatchEmbed(dims[1], dims[2], 2 if pyramid else 1)
        self.patch_embed4 = PatchEmbed(dims[2], dims[3], 2 if pyramid else 1)
        for s in range(4):
            setattr(self, f"block{s + 1}", nn.ModuleList(
                DGMN2Block(dims[s], cfg.num_heads[s], cfg.mlp_ratios[s], cfg.table_sizes[s], cfg.qkv_bias, cfg.ln_eps)
                for _ in range(cfg.depths[s])))

    def stages(self):
        """(patch embedding, blocks) of each stage."""
        return [(getattr(self, f"patch_embed{s}"), getattr(self, f"block{s}")) for s in range(1, 5)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for embed, blocks in self.stages():
            x = embed(x)
            B, C, H, W = x.shape
            t = x.flatten(2).transpose(1, 2)  # (B, H·W, C)
            for blk in blocks:
                t = blk(t, H, W)
            x = t.transpose(1, 2).reshape(B, C, H, W)
            outs.append(x)
        return outs
