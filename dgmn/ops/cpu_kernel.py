"""Fused CPU kernel (C++/OpenMP through ``torch.utils.cpp_extension``) with a hand-written backward; the
custom op ``dgmn::dynamic_aggregate`` (and its backward) call :func:`forward_cpu` and :func:`backward_cpu`.

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
from typing import Optional, Sequence

import torch

from .reference import dynamic_aggregate_reference_backward

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
