"""Fused CPU kernel (C++/OpenMP through ``torch.utils.cpp_extension``) with a hand-written backward.

Compiled on first use (about 15–30 s) and cached by PyTorch in ``$TORCH_EXTENSIONS_DIR``
(default ``~/.cache/torch_extensions``). Features are processed channels-last, (B, H, W, C):
pass ``x`` in ``torch.channels_last`` memory format to avoid a copy; offsets and weights are read in
place in either memory format. Where no C++ compiler is
available the op falls back to the reference implementation with one warning.
"""
from __future__ import annotations

import os
import shutil
import threading
import warnings
from pathlib import Path
from typing import Sequence

import torch

from .reference import dynamic_aggregate_reference

_SOURCE = Path(__file__).with_name("csrc") / "dynamic_aggregate.cpp"
_lock = threading.Lock()
_module = None
_failure: str | None = None


def load_extension():
    """Compile (once per process; cached on disk across processes) and return the C++ module, or None."""
    global _module, _failure
    if _module is not None or _failure is not None:
        return _module
    with _lock:
        if _module is not None or _failure is not None:
            return _module
        cxx = os.environ.get("CXX", "c++")
        if shutil.which(cxx) is None:
            _failure = f"no C++ compiler ({cxx!r}) on PATH"
        else:
            try:
                from torch.utils.cpp_extension import load

                flags = ["-O3", "-fopenmp"]
                if os.environ.get("DGMN_PORTABLE_BUILD", "") != "1":
                    flags.append("-march=native")
                _module = load(
                    name="dgmn_dynamic_aggregate_cpu" + ("_portable" if "-march=native" not in flags else ""),
                    sources=[str(_SOURCE)],
                    extra_cflags=flags,
                    extra_ldflags=["-fopenmp"],
                    verbose=False,
                )
            except Exception as exc:  # compiler present but the build failed
                _failure = f"building the C++ kernel failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}"
        if _failure is not None:
            warnings.warn(
                f"dgmn: the fused CPU kernel is unavailable ({_failure}); dynamic_aggregate falls back to the "
                "slower pure-PyTorch reference. Install a C++ compiler (e.g. `apt-get install g++`) to enable it.",
                RuntimeWarning,
                stacklevel=3,
            )
    return _module


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, H, W, C) contiguous; free when ``t`` is already channels-last."""
    return t.permute(0, 2, 3, 1).contiguous()


def _planes(t: torch.Tensor) -> torch.Tensor:
    """(B, ch, H, W) whose H, W flatten to one pixel index (NCHW, channels-last, or broadcast with stride 0,
    like the expanded one-hot weights of ``deform_conv2d``): read in place, else copied."""
    if t.shape[2] == 1 or t.stride(2) == t.shape[3] * t.stride(3):
        return t
    return t.contiguous()


class _DynamicAggregateCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, offset, weight, dilations, kernel_size):
        ext = load_extension()
        xs, os_, ws = _nhwc(x), _planes(offset), _planes(weight)
        out = ext.forward(xs, os_, ws, list(dilations), kernel_size)
        ctx.save_for_backward(xs, os_, ws)
        ctx.dilations, ctx.kernel_size = list(dilations), kernel_size
        return out.permute(0, 3, 1, 2)  # (B, C, H, W) view with channels-last strides

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        xs, os_, ws = ctx.saved_tensors
        ext = load_extension()
        gx, goff, gw = ext.backward(_nhwc(grad_out), xs, os_, ws, ctx.dilations, ctx.kernel_size,
                                     ctx.needs_input_grad[0], ctx.needs_input_grad[2])
        gx = gx.permute(0, 3, 1, 2) if ctx.needs_input_grad[0] else None
        goff = goff if ctx.needs_input_grad[1] else None
        gw = gw if ctx.needs_input_grad[2] else None
        return gx, goff, gw, None, None


def dynamic_aggregate_cpu(
    x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, dilations: Sequence[int], kernel_size: int = 3
) -> torch.Tensor:
    """Fused CPU implementation of :func:`dgmn.ops.dynamic_aggregate` (inputs already validated)."""
    if load_extension() is None:
        return dynamic_aggregate_reference(x, offset, weight, dilations, kernel_size)
    return _DynamicAggregateCPU.apply(x, offset, weight, tuple(dilations), kernel_size)
