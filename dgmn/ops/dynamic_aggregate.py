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

The op is a PyTorch custom operator, ``torch.ops.dgmn.dynamic_aggregate`` (``torch.library.custom_op``) with
a fake (meta) implementation and a registered backward, ``torch.ops.dgmn.dynamic_aggregate_backward``, so
``torch.compile(..., fullgraph=True)`` keeps it as one opaque call (no graph break) and ``torch.export`` captures
it as one node. Both carry the implementation as an argument; ``None`` (the default) chooses it when the op
runs, from the tensors' device and ``DGMN_OP_IMPL``, so an exported or compiled graph follows the device it runs
on. Its output is channels-last in every implementation. The offsets' finiteness is checked inside the op (an
opaque kernel may branch on data; a traced graph may not), so a compiled model refuses NaN offsets too. The
backward is once-differentiable, for every implementation. Under TorchScript tracing (the ONNX export) the
reference is recorded as its ATen ops (``GridSample`` in ONNX) instead of the custom op.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import torch

from torch import Tensor

from .plain_eager import is_plain_eager
from .reference import dynamic_aggregate_reference, dynamic_aggregate_reference_backward

IMPLS = ("reference", "cpu", "triton")


def check_inputs(x, offset, weight, dilations, kernel_size, *, check_finite: bool = True) -> tuple[int, int, int]:
    """Validate the op's arguments; returns (S, K, G). Raises ``ValueError`` naming the argument at fault.

    ``check_finite=False`` leaves out the one check that reads the data (the offsets' finiteness), which
    :func:`dynamic_aggregate` runs inside the op instead."""
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
    if check_finite:
        refuse_non_finite(offset)
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


def refuse_non_finite(offset: torch.Tensor) -> None:
    """Raise ``ValueError`` if the offsets hold NaN or ±inf (meta tensors, which hold no data, pass)."""
    if offset.device.type != "meta" and offset.numel() and not all_finite(offset):
        raise ValueError("dynamic_aggregate: `offset` contains NaN or infinite values; sampling positions must be finite "
                         "(check the walk predictor's input and learning rate)")


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


def resolve_impl(impl: Optional[str], device: torch.device, op: str = "dynamic_aggregate") -> str:
    """The implementation to run on ``device``: ``impl``, or :func:`default_impl` when it is None.
    Raises ``ValueError`` for an unknown name or one that cannot run on ``device`` (the message names ``op``)."""
    impl = (impl or default_impl(device)).lower()
    if impl not in IMPLS:
        raise ValueError(f"{op}: impl={impl!r} is not an implementation; use one of {', '.join(IMPLS)}")
    if impl == "cpu" and device.type not in ("cpu", "meta"):
        raise ValueError(f"{op}: impl='cpu' needs CPU tensors, got {device}; use impl='triton' or 'reference'")
    if impl == "triton" and device.type not in ("cuda", "meta") and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(
            f"{op}: impl='triton' needs CUDA tensors (or TRITON_INTERPRET=1 for CPU testing), got {device}"
        )
    return impl


# ---- the custom operator -------------------------------------------------------------------------------------
# Memory formats are fixed so that the fake implementations can state them: the output and x's gradient are
# channels-last in every implementation; offset's and weight's gradients are channels-last where the input is
# (and not also contiguous), else contiguous.

def _grad_format(t: torch.Tensor) -> torch.memory_format:
    if t.is_contiguous():
        return torch.contiguous_format
    return torch.channels_last if t.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def _forward(impl: str, x: Tensor, offset: Tensor, weight: Tensor, dilations: list[int], kernel_size: int) -> Tensor:
    if impl == "cpu":
        from .cpu_kernel import forward_cpu

        out = forward_cpu(x, offset, weight, dilations, kernel_size)
    elif impl == "triton":
        from .triton_kernel import forward_triton

        out = forward_triton(x, offset, weight, dilations, kernel_size)
    else:
        out = None
    if out is None:  # the reference (also where no C++ compiler built the CPU kernel)
        out = dynamic_aggregate_reference(x, offset, weight, dilations, kernel_size).clone(memory_format=torch.channels_last)
    return out


def _backward(impl, grad_out, x, offset, weight, dilations, kernel_size, needs):
    if impl == "cpu":
        from .cpu_kernel import backward_cpu

        return backward_cpu(grad_out, x, offset, weight, dilations, kernel_size, needs)
    if impl == "triton":
        from .triton_kernel import backward_triton

        return backward_triton(grad_out, x, offset, weight, dilations, kernel_size, needs)
    return dynamic_aggregate_reference_backward(grad_out, x, offset, weight, dilations, kernel_size, needs)


def _dynamic_aggregate_impl(
    x: Tensor, offset: Tensor, weight: Tensor, dilations: list[int], kernel_size: int, impl: Optional[str]
) -> Tensor:
    impl = resolve_impl(impl, x.device)
    refuse_non_finite(offset)
    return _forward(impl, x, offset, weight, dilations, kernel_size)


_dynamic_aggregate_op = torch.library.custom_op("dgmn::dynamic_aggregate", _dynamic_aggregate_impl, mutates_args=())


@_dynamic_aggregate_op.register_fake
def _dynamic_aggregate_fake(x, offset, weight, dilations, kernel_size, impl):
    return torch.empty_like(x, memory_format=torch.channels_last)


@torch.library.custom_op("dgmn::dynamic_aggregate_backward", mutates_args=())
def _dynamic_aggregate_backward_op(
    grad_out: Tensor, x: Tensor, offset: Tensor, weight: Tensor, dilations: list[int], kernel_size: int,
    impl: Optional[str], needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor]:
    """(grad_x, grad_offset, grad_weight); a gradient that ``needs`` does not ask for is an empty tensor."""
    impl = resolve_impl(impl, x.device)
    grads = _backward(impl, grad_out, x, offset, weight, dilations, kernel_size, needs)
    fmts = (torch.channels_last, _grad_format(offset), _grad_format(weight))
    return tuple(
        g.contiguous(memory_format=f) if need else t.new_empty(0)
        for g, t, f, need in zip(grads, (x, offset, weight), fmts, needs)
    )


@_dynamic_aggregate_backward_op.register_fake
def _dynamic_aggregate_backward_fake(grad_out, x, offset, weight, dilations, kernel_size, impl, needs):
    fmts = (torch.channels_last, _grad_format(offset), _grad_format(weight))
    return tuple(
        torch.empty_like(t, memory_format=f) if need else t.new_empty(0)
        for t, f, need in zip((x, offset, weight), fmts, needs)
    )


def _setup_context(ctx, inputs, output):
    x, offset, weight, dilations, kernel_size, impl = inputs
    ctx.save_for_backward(x, offset, weight)
    ctx.args = (dilations, kernel_size, impl)


def _backward_formula(ctx, grad_out):
    x, offset, weight = ctx.saved_tensors
    needs = [bool(n) for n in ctx.needs_input_grad[:3]]
    if not any(needs):
        return None, None, None, None, None, None
    grads = torch.ops.dgmn.dynamic_aggregate_backward(grad_out, x, offset, weight, *ctx.args, needs)
    return tuple(g if need else None for g, need in zip(grads, needs)) + (None, None, None)


_dynamic_aggregate_op.register_autograd(_backward_formula, setup_context=_setup_context)


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
    check_inputs(x, offset, weight, dilations, kernel_size, check_finite=False)
    dilations = [int(d) for d in dilations]
    if impl is not None:
        impl = resolve_impl(impl, x.device)  # a bad name or device fails here, also while compiling
    if torch.jit.is_tracing() and (impl or default_impl(x.device)) == "reference":
        refuse_non_finite(offset)  # TorchScript tracing (ONNX export): record the reference's ATen ops
        return dynamic_aggregate_reference(x, offset, weight, dilations, kernel_size)
    if is_plain_eager(x, offset, weight):  # the same call without the dispatcher's cost (see plain_eager)
        return _dynamic_aggregate_impl(x, offset, weight, dilations, kernel_size, impl)
    return torch.ops.dgmn.dynamic_aggregate(x, offset, weight, dilations, kernel_size, impl)
