"""What a model's context module costs as images grow: MACs against the input size, counted on the meta device
(shapes only, no arithmetic), and the size from which DGMN is cheaper than Non-local.

For a segmenter with output stride 8, an S×S input gives the context module an (S/8)×(S/8)×C feature map.
"""
from __future__ import annotations

import torch.nn as nn

from ..modules import count_macs

SIZES = (128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
STRIDE = 8


def context_module(model: nn.Module) -> tuple[nn.Module, int] | None:
    """(the context module, its channels) of a Dilated-FCN segmenter; None for a model without one
    (``context`` is the identity) or an architecture without a ``context`` attribute."""
    ctx = getattr(model, "context", None)
    if ctx is None or isinstance(ctx, nn.Identity):
        return None
    channels = getattr(ctx, "channels", None) or getattr(getattr(model, "config", None), "channels", None)
    return (ctx, int(channels)) if channels else None


def macs_by_size(model: nn.Module, sizes=SIZES) -> dict[int, int] | None:
    """{input side S: MACs of the context module on a (1, C, S/8, S/8) map}, or None without one."""
    found = context_module(model)
    if found is None:
        return None
    ctx, channels = found
    return {s: count_macs(ctx, (1, channels, s // STRIDE, s // STRIDE)) for s in sizes}


def crossover(dgmn: dict[int, int], nonlocal_: dict[int, int]) -> int | None:
    """The smallest listed size from which DGMN's MACs stay below Non-local's (None if they never do)."""
    sizes = sorted(set(dgmn) & set(nonlocal_))
    for i, s in enumerate(sizes):
        if all(dgmn[t] < nonlocal_[t] for t in sizes[i:]):
            return s
    return None
