"""How an mmseg 0.x DGMN2 checkpoint's state dict maps onto :class:`DGMN2Segmenter`'s.

The map is the identity: our modules carry the original's names (``backbone.patch_embed1.conv1.weight``,
``backbone.block3.1.attn.pos_emb.rel_width``, ``neck.lateral_convs.0.conv.bias``,
``decode_head.scale_heads.2.2.bn.running_var``, ``decode_head.mlahead.head4.3.weight``, …; BN's
``num_batches_tracked`` included). What is dropped:

* ``auxiliary_head.*`` — a training-only head (no published DGMN2 config has one, mmseg may still save one);
* a leading ``module.`` on every key (a checkpoint saved from a ``DistributedDataParallel`` wrapper).

:func:`map_keys` returns (our state dict, the dropped keys).
"""
from __future__ import annotations

from typing import Mapping

import torch

TRAINING_ONLY = ("auxiliary_head.",)
WRAPPER_PREFIX = "module."


def map_keys(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    keys = list(state)
    strip = bool(keys) and all(k.startswith(WRAPPER_PREFIX) for k in keys)
    out, dropped = {}, []
    for k, v in state.items():
        name = k[len(WRAPPER_PREFIX):] if strip else k
        if name.startswith(TRAINING_ONLY):
            dropped.append(k)
        else:
            out[name] = v
    return out, dropped
