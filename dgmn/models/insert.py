"""Insert DGMN layers into a ResNet stage (the paper's "C5" / "C4, C5" setting for detection backbones)."""
from __future__ import annotations

import torch.nn as nn

from ..modules import DGMN


def insert_dgmn(resnet: nn.Module, stage: str = "layer4", **cfg) -> nn.Module:
    """Insert a DGMN layer after every 3×3 conv of ``resnet.<stage>`` (in place; returns ``resnet``).

    Each block's BatchNorm that follows a 3×3 conv (``bn2`` in a Bottleneck, ``bn1`` and ``bn2`` in a
    BasicBlock) becomes ``nn.Sequential(bn, DGMN(channels, **cfg))``, so the state-dict names of the
    original weights change from ``...bn2.weight`` to ``...bn2.0.weight`` and the new layer's parameters
    appear under ``...bn2.1``. Works for any module whose stage holds blocks with ``convN``/``bnN`` pairs.
    """
    blocks = getattr(resnet, stage, None)
    if not isinstance(blocks, nn.Module):
        raise ValueError(f"insert_dgmn: the model has no stage {stage!r} (expected e.g. 'layer3' or 'layer4')")
    inserted = 0
    for block in blocks.children():
        for i in (1, 2, 3):
            conv, bn = getattr(block, f"conv{i}", None), getattr(block, f"bn{i}", None)
            if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and isinstance(bn, nn.BatchNorm2d):
                setattr(block, f"bn{i}", nn.Sequential(bn, DGMN(conv.out_channels, **cfg)))
                inserted += 1
    if inserted == 0:
        raise ValueError(f"insert_dgmn: found no 3×3 conv followed by a BatchNorm in {stage!r}")
    return resnet
