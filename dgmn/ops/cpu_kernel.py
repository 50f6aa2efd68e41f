"""Fused CPU kernel (C++/OpenMP through ``torch.utils.cpp_extension``) with a hand-written backward; the
custom op ``dgmn::dynamic_aggregate`` (and its backward) call :func:`forward_cpu` and :func:`backward_cpu`.

The kernel is built once per machine and cached (:mod:`dgmn.ops.kernel_build`: in the foreground with one line on
stderr, or in the background while the reference answers). Features are processed channels-last, (B, H, W, C):
pass ``x`` in ``torch.channels_last`` memory format to avoid a copy; offsets and weights are read in
place in either memory format. While the kernel is not available (no C++ compiler, a failed build — warned once —,
or a background build still running) every function here returns None or runs the reference.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from . import kernel_build
from .reference import dynamic_aggregate_reference_backward


def load_extension():
    """The C++ module, or None while the reference must answer (see :mod:`dgmn.ops.kernel_build`)."""
    return kernel_build.CPU_KERNEL.get()


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, H, W, C) contiguous; free when ``t`` is already channels-last."""
    return t.permute(0, 2, 3, 1).contiguous()


def _planes(t: torch.Tensor) -> torch.Tensor:
    """(B, ch, H, W) whose H, W flatten to one pixel index (NCHW, channels-last, or broadcast with stride 0,
    like the expanded one-hot weights of ``deform_conv2d``): read in place, else copied."""
    if t.shape[2] == 1 or t.stride(2) == t.shape[3] * t.stride(3):
        return t
    return t.contiguous()


def forward_cpu(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, dilations: Sequence[int],
                kernel_size: int = 3) -> Optional[torch.Tensor]:
    """The fused forward (inputs already validated): (B, C, H, W) in channels-last memory format; None without a
    C++ compiler (the caller runs the reference)."""
    ext = load_extension()
    if ext is None:
        return None
    return ext.forward(_nhwc(x), _planes(offset), _planes(weight), list(dilations), kernel_size)


def backward_cpu(grad_out: torch.Tensor, x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                 dilations: Sequence[int], kernel_size: int, needs: Sequence[bool]):
    """The fused backward: (grad_x, grad_offset, grad_weight); a gradient ``needs`` does not ask for is None.
    grad_x is channels-last; grad_offset and grad_weight take the layout of their inputs."""
    ext = load_extension()
    if ext is None:
        return dynamic_aggregate_reference_backward(grad_out, x, offset, weight, dilations, kernel_size, needs)
    gx, goff, gw = ext.backward(_nhwc(grad_out), _nhwc(x), _planes(offset), _planes(weight), list(dilations),
                                kernel_size, bool(needs[0]), bool(needs[2]))
    return (gx if needs[0] else None), (goff if needs[1] else None), (gw if needs[2] else None)


def taps_forward_cpu(z: torch.Tensor, offset: torch.Tensor, dilation: int, kernel_size: int) -> Optional[torch.Tensor]:
    """The deformable conv's taps summed (see :func:`dgmn.ops.deform_conv.deform_taps`); None without the kernel."""
    ext = load_extension()
    return None if ext is None else ext.taps_forward(_nhwc(z), _planes(offset), int(dilation), kernel_size)


def taps_backward_cpu(grad_out, z, offset, dilation: int, kernel_size: int, need_gz: bool):
    """(grad_z or None, grad_offset) of :func:`taps_forward_cpu`; None without the kernel."""
    ext = load_extension()
    if ext is None:
        return None
    gz, goff = ext.taps_backward(_nhwc(grad_out), _nhwc(z), _planes(offset), int(dilation), kernel_size, bool(need_gz))
    return (gz if need_gz else None), goff
