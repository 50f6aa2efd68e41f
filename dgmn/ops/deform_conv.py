"""Deformable convolution built on :func:`dgmn.ops.dynamic_aggregate`: DGMN's node-conditioned prediction conv.

    out[b, o, y, x] = bias[o] + Σ_k Σ_c weight[o, c, ky, kx] · bilinear(x[b, c], py_k, px_k)

with py_k = y + (ky − c0)·dilation + offset[b, 2k, y, x] and px_k likewise (k = ky·ks + kx), i.e. a
kernel_size×kernel_size conv whose taps read the walked nodes instead of the fixed grid.

Shapes: x (B, C, H, W), offset (B, 2·K, H, W), weight (O, C, ks, ks), bias (O,) or None → (B, O, H, W).

It transforms before it samples, which is exact because bilinear sampling is linear in the features:
z_k = W_k·x is a 1×1 conv to K·O channels (the same C·K·O MACs as the 3×3 conv), and tap k of
z_k is sampled by ``dynamic_aggregate`` with one-hot weights (group k ↔ node k), so only K·O channels
are sampled per pixel instead of the C·K an im2col would build. The K taps are summed as they are sampled
(:func:`deform_taps`, the custom op ``torch.ops.dgmn.deform_conv_taps``; on the CPU a fused kernel that never
writes the K·O per-tap channels; elsewhere ``dynamic_aggregate`` with one-hot weights and a sum over k).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .dynamic_aggregate import _backward, _forward, _grad_format, check_inputs, refuse_non_finite, resolve_impl
from .plain_eager import is_plain_eager
from .reference import dynamic_aggregate_reference


def _onehot(z: Tensor, K: int) -> Tensor:
    """Weights (B, K·K, H, W) of dynamic_aggregate that give node k to group k alone (a broadcast, no memory)."""
    B, _, H, W = z.shape
    return torch.eye(K, dtype=z.dtype, device=z.device).view(1, K * K, 1, 1).expand(B, K * K, H, W)


def _taps_forward(z, offset, dilation, kernel_size, impl):
    if impl == "cpu":
        from .cpu_kernel import taps_forward_cpu

        out = taps_forward_cpu(z, offset, dilation, kernel_size)
        if out is not None:
            return out
        impl = "reference"  # no C++ compiler (cpu_kernel warned once)
    B, KO, H, W = z.shape
    K = kernel_size * kernel_size
    taps = _forward(impl, z, offset, _onehot(z, K), [dilation], kernel_size)  # (B, K·O, H, W): tap k of z_k
    out = torch.empty((B, KO // K, H, W), dtype=z.dtype, device=z.device, memory_format=torch.channels_last)
    # Σ_k with O innermost (channels-last order): much faster than reducing a strided (B, K, O, H, W) view
    torch.sum(taps.permute(0, 2, 3, 1).reshape(B, H, W, K, KO // K), dim=3, out=out.permute(0, 2, 3, 1))
    return out


def _taps_backward(grad_out, z, offset, dilation, kernel_size, impl, needs):
    if impl == "cpu":
        from .cpu_kernel import taps_backward_cpu

        grads = taps_backward_cpu(grad_out, z, offset, dilation, kernel_size, needs[0])
        if grads is not None:
            return grads
        impl = "reference"
    B, KO, H, W = z.shape
    K = kernel_size * kernel_size
    g = grad_out.permute(0, 2, 3, 1).unsqueeze(3).expand(B, H, W, K, KO // K).reshape(B, H, W, KO).permute(0, 3, 1, 2)
    gz, goff, _ = _backward(impl, g, z, offset, _onehot(z, K), [dilation], kernel_size, [needs[0], needs[1], False])
    return gz, goff


def _deform_conv_taps_impl(z: Tensor, offset: Tensor, dilation: int, kernel_size: int, impl: Optional[str]) -> Tensor:
    impl = resolve_impl(impl, z.device)
    refuse_non_finite(offset)
    return _taps_forward(z, offset, dilation, kernel_size, impl)


_deform_conv_taps_op = torch.library.custom_op("dgmn::deform_conv_taps", _deform_conv_taps_impl, mutates_args=())


@_deform_conv_taps_op.register_fake
def _deform_conv_taps_fake(z, offset, dilation, kernel_size, impl):
    B, KO, H, W = z.shape
    return z.new_empty((B, KO // (kernel_size * kernel_size), H, W)).contiguous(memory_format=torch.channels_last)


@torch.library.custom_op("dgmn::deform_conv_taps_backward", mutates_args=())
def _deform_conv_taps_backward_op(grad_out: Tensor, z: Tensor, offset: Tensor, dilation: int, kernel_size: int,
                                  impl: Optional[str], needs: list[bool]) -> tuple[Tensor, Tensor]:
    """(grad_z, grad_offset); a gradient that ``needs`` does not ask for is an empty tensor."""
    impl = resolve_impl(impl, z.device)
    grads = _taps_backward(grad_out, z, offset, dilation, kernel_size, impl, needs)
    fmts = (torch.channels_last, _grad_format(offset))
    return tuple(g.contiguous(memory_format=f) if need else t.new_empty(0)
                 for g, t, f, need in zip(grads, (z, offset), fmts, needs))


@_deform_conv_taps_backward_op.register_fake
def _deform_conv_taps_backward_fake(grad_out, z, offset, dilation, kernel_size, impl, needs):
    fmts = (torch.channels_last, _grad_format(offset))
    return tuple(torch.empty_like(t, memory_format=f) if need else t.new_empty(0)
                 for t, f, need in zip((z, offset), fmts, needs))


def _taps_setup_context(ctx, inputs, output):
    z, offset, dilation, kernel_size, impl = inputs
    ctx.save_for_backward(z, offset)
    ctx.args = (dilation, kernel_size, impl)


def _taps_backward_formula(ctx, grad_out):
    z, offset = ctx.saved_tensors
    needs = [bool(n) for n in ctx.needs_input_grad[:2]]
    if not any(needs):
        return None, None, None, None, None
    gz, goff = torch.ops.dgmn.deform_conv_taps_backward(grad_out, z, offset, *ctx.args, needs)
    return (gz if needs[0] else None), (goff if needs[1] else None), None, None, None


_deform_conv_taps_op.register_autograd(_taps_backward_formula, setup_context=_taps_setup_context)


def deform_taps(z: Tensor, offset: Tensor, dilation: int = 1, kernel_size: int = 3, *, impl: Optional[str] = None) -> Tensor:
    """out[b, o] = Σ_k bilinear(z[b, k·O + o], p_k): z (B, K·O, H, W) holds one map per tap, layout [k][o]; p_k is
    node k's position at ``dilation`` moved by ``offset`` (B, 2K, H, W), as in :func:`dgmn.ops.dynamic_aggregate`.
    Returns (B, O, H, W), channels-last."""
    K = kernel_size * kernel_size
    check_inputs(z, offset, _onehot(z, K), (dilation,), kernel_size, check_finite=False)
    if z.shape[1] % K:
        raise ValueError(f"deform_taps: `z` must have K·O channels (K = {K}), got {z.shape[1]}")
    if impl is not None:
        impl = resolve_impl(impl, z.device)
    if torch.jit.is_tracing() and (impl or resolve_impl(None, z.device)) == "reference":
        refuse_non_finite(offset)  # TorchScript tracing (ONNX export): the reference's ATen ops
        B, KO, H, W = z.shape
        taps = dynamic_aggregate_reference(z, offset, _onehot(z, K), (int(dilation),), kernel_size)
        return taps.view(B, K, KO // K, H, W).sum(1)
    if is_plain_eager(z, offset):  # the same call without the dispatcher's cost (see plain_eager)
        return _deform_conv_taps_impl(z, offset, int(dilation), kernel_size, impl)
    return torch.ops.dgmn.deform_conv_taps(z, offset, int(dilation), kernel_size, impl)


def deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    dilation: int = 1,
    *,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Deformable conv at ``dilation`` with per-pixel tap offsets (see the module docstring)."""
    if weight.dim() != 4 or weight.shape[2] != weight.shape[3] or weight.shape[1] != x.shape[1]:
        raise ValueError(
            f"deform_conv2d: `weight` must have shape (O, C={x.shape[1]}, ks, ks), got {tuple(weight.shape)}"
        )
    O, C, ks = (int(v) for v in weight.shape[:3])  # plain ints, also while tracing for ONNX
    K = ks * ks
    z = F.conv2d(x, weight.permute(2, 3, 0, 1).reshape(K * O, C, 1, 1))  # (B, K·O, H, W), layout [k][o]
    out = deform_taps(z, offset, dilation, ks, impl=impl)
    if bias is not None:
        out = out + bias.view(1, O, 1, 1)
    return out
