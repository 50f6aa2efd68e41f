"""The dynamic message-passing op of DGMN: sample S·K nodes per pixel and sum them with dynamic weights.

Public contract (other tools call it; do not change the signature or the semantics)::

    dynamic_aggregate(x, offset, weight, dilations, kernel_size=3, *, impl=None) -> Tensor

Shapes, with S = len(dilations), K = kernel_size², c0 = (kernel_size − 1)/2, k = ky·kernel_size + kx:

* ``x``:      (B, C, H, W)  features (any memory format; channels-last is fastest on the CPU)
* ``offset``: (B, S·K·2, H, W)  walk of every node in pixels, layout [s][k][dy, dx]
* ``weight``: (B, S·K·G, H, W)  dynamic weight of every node and channel group, layout [s][k][g];
  G must divide C and channel c belongs to group g(c) = c // (C/G)
* returns (B, C, H, W)::

    out[b,c,y,x] = Σ_s Σ_k weight[b,(s·K+k)·G+g(c),y,x]
                   · bilinear(x[b,c], y + (ky−c0)·d_s + offset[b,(s·K+k)·2,y,x],
                                      x + (kx−c0)·d_s + offset[b,(s·K+k)·2+1,y,x])

    bilinear(img, py, px) = Σ_{iy∈{⌊py⌋,⌊py⌋+1}, ix∈{⌊px⌋,⌊px⌋+1}} (1−|py−iy|)(1−|px−ix|)·img[iy,ix]

with img = 0 outside [0, H−1]×[0, W−1], corner by corner (as torchvision's ``deform_conv2d``).
Differentiable w.r.t. ``x``, ``offset`` and ``weight``.

Implementations, chosen by device unless ``impl=`` or the ``DGMN_OP_IMPL`` environment variable says
otherwise: ``"cpu"`` (fused C++/OpenMP kernel, for CPU tensors), ``"triton"`` (for CUDA tensors) and
``"reference"`` (pure PyTorch, any device).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import torch

from .reference import dynamic_aggregate_reference

IMPLS = ("reference", "cpu", "triton")


def check_inputs(x, offset, weight, dilations, kernel_size) -> tuple[int, int, int]:
    """Validate the op's arguments; returns (S, K, G). Raises ``ValueError`` naming the argument at fault."""
    for name, t in (("x", x), ("offset", offset), ("weight", weight)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"dynamic_aggregate: `{name}` must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"dynamic_aggregate: `{name}` must be 4-D (B, channels, H, W), got shape {tuple(t.shape)}"
            )
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
        raise ValueError(f"dynamic_aggregate: `kernel_size` must be a positive int, got {kernel_size!r}")
    try:
        dil = list(dilations)
    except TypeError:
        raise ValueError(f"dynamic_aggregate: `dilations` must be a sequence of positive ints, got {dilations!r}") from None
    if not dil or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dil):
        raise ValueError(f"dynamic_aggregate: `dilations` must be a non-empty sequence of positive ints, got {dilations!r}")
    B, C, H, W = x.shape
    S, K = len(dil), kernel_size * kernel_size
    if H < 1 or W < 1 or C < 1 or B < 1:
        raise ValueError(f"dynamic_aggregate: `x` must have non-empty dimensions, got shape {tuple(x.shape)}")
    want_off = (B, S * K * 2, H, W)
    if tuple(offset.shape) != want_off:
        raise ValueError(
            f"dynamic_aggregate: `offset` must have shape (B, S·K·2, H, W) = {want_off} for x of shape "
            f"{tuple(x.shape)}, S={S} dilations and kernel_size={kernel_size}; got {tuple(offset.shape)}"
        )
    if weight.shape[0] != B or tuple(weight.shape[2:]) != (H, W) or weight.shape[1] % (S * K) != 0 or weight.shape[1] == 0:
        raise ValueError(
            f"dynamic_aggregate: `weight` must have shape (B, S·K·G, H, W) = ({B}, {S * K}·G, {H}, {W}) for x of shape "
            f"{tuple(x.shape)}, S={S} dilations and kernel_size={kernel_size}; got {tuple(weight.shape)}"
        )
    G = weight.shape[1] // (S * K)
    if C % G != 0:
        raise ValueError(
            f"dynamic_aggregate: `weight` implies G={G} channel groups, which does not divide C={C}; "
            f"use a G that divides C (weight.shape[1] = S·K·G = {S * K}·G)"
        )
    for name, t in (("offset", offset), ("weight", weight)):
        if t.device != x.device:
            raise ValueError(f"dynamic_aggregate: `{name}` is on {t.device} but `x` is on {x.device}; move them to one device")
        if t.dtype != x.dtype:
            raise ValueError(f"dynamic_aggregate: `{name}` has dtype {t.dtype} but `x` has {x.dtype}; use one dtype")
    if offset.device.type != "meta" and offset.numel() and not all_finite(offset):
        raise ValueError("dynamic_aggregate: `offset` contains NaN or infinite values; sampling positions must be finite "
                         "(check the walk predictor's input and learning rate)")
    allowed = (torch.float32, torch.float64) + ((torch.float16, torch.bfloat16) if x.is_cuda else ())
    if x.dtype not in allowed:
        raise ValueError(
            f"dynamic_aggregate: dtype {x.dtype} is not supported on {x.device.type}; use one of "
            + ", ".join(str(d) for d in allowed)
        )
    return S, K, G


def all_finite(t: torch.Tensor) -> bool:
    """Whether every element of ``t`` is finite. Exact, and cheap in the common case: a NaN or ±inf
    element makes the sum NaN or ±inf, so a finite sum proves all elements finite without building the
    element-wise mask; only a non-finite sum (which can also come from overflow) checks element by element."""
    with torch.no_grad():
        return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def default_impl(device: torch.device) -> str:
    """The implementation used for tensors on ``device``: ``DGMN_OP_IMPL`` if set, else cpu/triton/reference."""
    env = os.environ.get("DGMN_OP_IMPL", "").strip().lower()
    if env:
        if env not in IMPLS:
            raise ValueError(f"DGMN_OP_IMPL={env!r} is not an implementation; use one of {', '.join(IMPLS)}")
        return env
    if device.type == "cpu":
        return "cpu"
    if device.type == "cuda":
        return "triton"
    return "reference"


@contextmanager
def use_impl(impl: str) -> Iterator[None]:
    """Within the block, ``dynamic_aggregate`` uses ``impl`` by default (it sets ``DGMN_OP_IMPL``)."""
    if impl not in IMPLS:
        raise ValueError(f"use_impl: {impl!r} is not an implementation; use one of {', '.join(IMPLS)}")
    old = os.environ.get("DGMN_OP_IMPL")
    os.environ["DGMN_OP_IMPL"] = impl
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("DGMN_OP_IMPL", None)
        else:
            os.environ["DGMN_OP_IMPL"] = old


def dynamic_aggregate(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    dilations: Sequence[int],
    kernel_size: int = 3,
    *,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Sum S·K bilinearly sampled nodes per pixel with per-group dynamic weights (see the module docstring)."""
    check_inputs(x, offset, weight, dilations, kernel_size)
    dilations = tuple(int(d) for d in dilations)
    impl = (impl or default_impl(x.device)).lower()
    if impl == "reference":
        return dynamic_aggregate_reference(x, offset, weight, dilations, kernel_size)
    if impl == "cpu":
        if x.device.type != "cpu":
            raise ValueError(f"dynamic_aggregate: impl='cpu' needs CPU tensors, got {x.device}; use impl='triton' or 'reference'")
        from .cpu_kernel import dynamic_aggregate_cpu

        return dynamic_aggregate_cpu(x, offset, weight, dilations, kernel_size)
    if impl == "triton":
        if x.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(
                f"dynamic_aggregate: impl='triton' needs CUDA tensors (or TRITON_INTERPRET=1 for CPU testing), got {x.device}"
            )
        from .triton_kernel import dynamic_aggregate_triton

        return dynamic_aggregate_triton(x, offset, weight, dilations, kernel_size)
    raise ValueError(f"dynamic_aggregate: impl={impl!r} is not an implementation; use one of {', '.join(IMPLS)}")
