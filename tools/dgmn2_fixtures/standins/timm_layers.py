"""Stand-ins for the three things DGMN2's code takes from ``timm.models.layers`` (timm 0.4.5).

* ``trunc_normal_(tensor, mean=0., std=1., a=-2., b=2.)``: in-place truncated normal init. ``torch.nn.init``'s
  function has the same signature and semantics (fill with N(mean, std²) truncated to [a, b]). It only sets
  initial values, which the fixture driver overwrites with seeded noise anyway, so no output depends on it.
* ``DropPath(drop_prob)``: stochastic depth — identity in eval mode (the only mode the fixtures use); in train mode
  it zeroes whole samples with probability ``drop_prob`` and rescales the rest by ``1 / (1 - drop_prob)``.
  DGMN2 builds ``nn.Identity`` instead whenever the rate is 0, which it is in every segmentation config.
* ``to_2tuple(x)``: ``(x, x)`` unless ``x`` is already an iterable.
"""
from __future__ import annotations

import collections.abc

import torch
import torch.nn as nn


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    return nn.init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)


def to_2tuple(x):
    if isinstance(x, collections.abc.Iterable) and not isinstance(x, str):
        return tuple(x)
    return (x, x)


class DropPath(nn.Module):
    def __init__(self, drop_prob=None):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        p = self.drop_prob or 0.0
        if p == 0.0 or not self.training:
            return x
        keep = 1.0 - p
        mask = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device) < keep
        return x * mask.to(x.dtype) / keep
