"""Multiply-accumulate counting in the paper's convention (its "FLOPs" column is these MACs)."""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn as nn

from ..ops import use_impl

aten = torch.ops.aten


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of softmax(q kᵀ) v on the CPU kernel (shapes arrive as torch.Size): 2·B·heads·Nq·Nk·(D + Dv)."""
    b, h, nq, d = query_shape
    nk, dv = key_shape[-2], value_shape[-1]
    return 2 * b * h * nq * nk * (d + dv)


def _flop_counter(custom: dict):
    # imported here, when counting: torch.utils.flop_counter imports Triton (0.4 s), which nothing else at start needs
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=False, custom_mapping=custom)


def count_macs(module: nn.Module, input_shape: Sequence[int]) -> int:
    """MACs of one forward pass of ``module`` on an input of ``input_shape``.

    Counts convolutions and matrix products (mm, addmm, bmm, attention), as the paper does; sampling,
    softmax, normalisation and element-wise ops are not counted, and neither is the dynamic aggregation
    op (the benchmark reports its own MACs, C·S·K·H·W·5, separately). The pass runs on a copy of the
    module on PyTorch's "meta" device (shapes only, no arithmetic), so large inputs cost nothing; a
    module that cannot run there is run for real on a zero input.
    """
    custom = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}
    try:
        meta = copy.deepcopy(module).to("meta").eval()
        x = torch.zeros(*input_shape, device="meta")
        with use_impl("reference"), torch.no_grad(), _flop_counter(custom) as counter:
            meta(x)
        return counter.get_total_flops() // 2
    except (NotImplementedError, RuntimeError):
        pass
    p = next(iter(module.parameters()), None)
    x = torch.zeros(*input_shape, device=p.device if p is not None else "cpu", dtype=p.dtype if p is not None else torch.float32)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), _flop_counter(custom) as counter:
            module(x)
    finally:
        module.train(was_training)
    return counter.get_total_flops() // 2
