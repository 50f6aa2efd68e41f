"""mmcv's ``ConvModule`` as the published heads use it:  y = act(norm(conv(x))).

With a norm the conv has no bias (mmcv's ``bias="auto"``); the norm is a ``BatchNorm2d`` named ``bn`` (mmcv's
name for BN/SyncBN); ``act`` is ReLU or nothing. Names ``conv`` / ``bn`` keep mmseg's state-dict keys.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class ConvModule(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int, padding: int = 0, norm: bool = True, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=padding, bias=not norm)
        if norm:
            self.bn = nn.BatchNorm2d(cout)
        self.activate = nn.ReLU() if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        return self.activate(x) if self.activate is not None else x
