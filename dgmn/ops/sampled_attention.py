"""DGMN2's sampled attention as one op: per pixel and head, 9 bilinearly sampled keys and values, one softmax.

    sampled_attention(q, k, v, offset, pos_logits, scale, *, impl=None) -> Tensor

Shapes (h heads of d channels, map H × W, sample k = ky·3 + kx, ky, kx ∈ {0, 1, 2}):

* ``q``, ``k``, ``v``:  (B, H, W, h, d)  any strides (views into one ``(B, H·W, 3·h·d)`` qkv tensor are read in
  place by the fused kernels as long as the d channels are contiguous)
* ``offset``:          (B, H, W, h, 18)  walk of every sample in pixels, layout [k][dy, dx] (DGMN2's ``conv_offset``)
* ``pos_logits``:      (B, h, 9, H, W)   the relative-position term (added unscaled)
* ``scale``:           float, multiplies the content term (DGMN2: d^−½)
* returns              (B, H, W, h, d)   contiguous, so ``.view(B, H·W, h·d)`` is the projection's input::

    p_k(y, x)   = (y + ky − 1 + offset[b,y,x,n,2k], x + kx − 1 + offset[b,y,x,n,2k+1])
    l_k         = scale · Σ_c q[b,y,x,n,c] · bilinear(k[b,:,:,n,c], p_k) + pos_logits[b,n,k,y,x]
    a           = softmax_k(l)                                         (over the 9 samples)
    out[b,y,x,n,c] = Σ_k a_k · bilinear(v[b,:,:,n,c], p_k)

    bilinear(img, py, px) = Σ_{iy∈{⌊py⌋,⌊py⌋+1}, ix∈{⌊px⌋,⌊px⌋+1}} (1−|py−iy|)(1−|px−ix|)·img[iy,ix]

with img = 0 outside [0, H−1]×[0, W−1], corner by corner — the same sampling as
:func:`dgmn.ops.dynamic_aggregate` (dilation 1, 3×3) and DGMN2's CUDA ``DeformUnfold`` (padding 1). A sample whose
every corner is outside contributes 0 to the content term (its logit is its position term alone) and 0 to the
values; it still takes part in the softmax, as in the original.

Implementations (``impl``, else ``DGMN_OP_IMPL``, else by device, as :func:`dgmn.ops.dynamic_aggregate`):

* ``"cpu"``: fused C++/OpenMP forward (``csrc/sampled_attention.cpp``): per pixel and head, the 9 positions,
  4 corners each, the 9 key dot products, the softmax and the weighted sum of the values in one pass — no
  (B, h, 9, d, H, W) intermediate. Built once per machine like the dynamic-aggregation kernel
  (:data:`SAMPLED_ATTENTION_KERNEL`, a :class:`dgmn.ops.kernel_build.KernelBuild` with its own content-hashed name;
  ``.start()`` builds it in the background while the reference answers, and it starts so by itself once the
  dynamic-aggregation kernel was started in the background, as the app does at launch; see :func:`kernel`).
* ``"triton"``: the same forward for CUDA tensors (:mod:`dgmn.ops.sampled_attention_triton`).
* ``"reference"``: pure PyTorch (the port's unfused path: keys sampled with ``F.grid_sample``, values aggregated
  with ``dynamic_aggregate``); differentiable.

**Forward only.** The fused implementations have no backward: when autograd would need a gradient (grad mode on
and any input requires grad) the op falls back to the differentiable reference path for the gradient (its value
aggregation still uses ``dynamic_aggregate``'s fused kernels and backward) and runs the fused forward beside it
for the value, returned as ``fused + (ref − ref.detach())``: bit for bit the fused kernel's output, so a model
gives the same numbers with and without grad mode, and exactly the reference's gradient (the extra fused forward
is a few % of a training step). With ``impl="reference"`` (or ``DGMN_OP_IMPL=reference``) and under TorchScript
tracing only the reference runs. Inference (``torch.no_grad()``/``inference_mode``, as the app and the converter
run) takes the fused path alone. Offsets must be
finite (``ValueError`` otherwise, as ``dynamic_aggregate``). The attention weights are not returned; the
inspector (:meth:`dgmn.models.dgmn2.DGMN2Attention.internals`) stays on the reference path.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from . import kernel_build
from .dynamic_aggregate import all_finite, default_impl, dynamic_aggregate, resolve_impl
from .plain_eager import is_plain_eager
from .reference import sample_nodes

NUM_SAMPLES = 9
SOURCE = Path(__file__).with_name("csrc") / "sampled_attention.cpp"


# ---- the CPU kernel's build ------------------------------------------------------------------------------------
def _load(name: str, folder: Path):
    """Compile (or load from ``folder``) the kernel (:func:`dgmn.ops.kernel_build.build_source`: copies of the project
    share one cached build; a build killed half-way does not block the next)."""
    return kernel_build.build_source(SOURCE, name, folder)


def extension_name() -> str:
    """``dgmn_sampled_attention_cpu_<hash>``: the hash of the source and the flags (as the other kernel's)."""
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(kernel_build._flags()).encode()).hexdigest()[:10]
    return f"dgmn_sampled_attention_cpu_{digest}"


SAMPLED_ATTENTION_KERNEL = kernel_build.KernelBuild(
    extension_name(), _load, what="the fused sampled-attention CPU kernel",
    fallback="DGMN2's attention falls back to the slower pure-PyTorch path (the same numbers)")


# ---- checks ----------------------------------------------------------------------------------------------------
def check_inputs(q, k, v, offset, pos_logits) -> None:
    """Validate shapes, dtypes and devices; raises ``ValueError`` naming the argument at fault."""
    for name, t in (("q", q), ("k", k), ("v", v), ("offset", offset), ("pos_logits", pos_logits)):
        if not isinstance(t, torch.Tensor) or t.dim() != 5:
            raise ValueError(f"sampled_attention: `{name}` must be a 5-D tensor, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
        if t.device != q.device or t.dtype != q.dtype:
            raise ValueError(f"sampled_attention: `{name}` is {t.dtype} on {t.device} but `q` is {q.dtype} on "
                             f"{q.device}; use one dtype and device")
    B, H, W, h, d = q.shape
    if min(q.shape) < 1:
        raise ValueError(f"sampled_attention: `q` must have non-empty dimensions, got {tuple(q.shape)}")
    for name, t in (("k", k), ("v", v)):
        if t.shape != q.shape:
            raise ValueError(f"sampled_attention: `{name}` must have q's shape (B, H, W, h, d) = {tuple(q.shape)}, "
                             f"got {tuple(t.shape)}")
    if tuple(offset.shape) != (B, H, W, h, 2 * NUM_SAMPLES):
        raise ValueError(f"sampled_attention: `offset` must be (B, H, W, h, 18) = {(B, H, W, h, 18)}, got {tuple(offset.shape)}")
    if tuple(pos_logits.shape) != (B, h, NUM_SAMPLES, H, W):
        raise ValueError(f"sampled_attention: `pos_logits` must be (B, h, 9, H, W) = {(B, h, 9, H, W)}, "
                         f"got {tuple(pos_logits.shape)}")
    allowed = (torch.float32, torch.float64) + ((torch.float16, torch.bfloat16) if q.is_cuda else ())
    if q.dtype not in allowed:
        raise ValueError(f"sampled_attention: dtype {q.dtype} is not supported on {q.device.type}")


def _refuse_non_finite(offset: Tensor) -> None:
    if offset.device.type != "meta" and offset.numel() and not all_finite(offset):
        raise ValueError("sampled_attention: `offset` contains NaN or infinite values; sampling positions must be finite")


# ---- implementations -------------------------------------------------------------------------------------------
def sampled_attention_reference(q: Tensor, k: Tensor, v: Tensor, offset: Tensor, pos_logits: Tensor, scale: float,
                                aggregate_impl: Optional[str] = None) -> Tensor:
    """Pure PyTorch, differentiable: the keys sampled with ``F.grid_sample`` (:func:`sample_nodes`), the values
    summed with :func:`dynamic_aggregate` (``aggregate_impl``: its implementation; None = its default).
    Returns (B, H, W, h, d) contiguous."""
    B, H, W, h, d = q.shape
    heads = lambda t: t.permute(0, 3, 4, 1, 2).reshape(B * h, t.shape[-1], H, W)  # (B·h, ch, H, W)
    off = heads(offset)
    keys = sample_nodes(heads(k), off, (1,), 3)  # (B·h, d, 9, H, W)
    qh = heads(q).unsqueeze(2)
    # Σ_c q_c · key_c channel by channel (a broadcast product over (B·h, d, 9, H, W) is 4× slower on a CPU)
    content = torch.zeros_like(keys[:, 0])
    for c in range(d):
        content.addcmul_(keys[:, c], qh[:, c])
    weights = (content * scale + pos_logits.reshape(B * h, NUM_SAMPLES, H, W)).softmax(dim=1)
    vh = v.permute(0, 3, 1, 2, 4).reshape(B * h, H, W, d).permute(0, 3, 1, 2)  # channels-last, as the op likes
    msg = dynamic_aggregate(vh, off, weights, (1,), 3, impl=aggregate_impl)  # (B·h, d, H, W)
    return msg.reshape(B, h, d, H, W).permute(0, 3, 4, 1, 2).contiguous()


def kernel():
    """The C++ module, or None while the reference must answer. Follows the dynamic-aggregation kernel's mode:
    once :data:`dgmn.ops.kernel_build.CPU_KERNEL` was started in the background (the app does it at launch), this
    kernel is built in the background too (the reference answers meanwhile); otherwise in the foreground, with one
    line on stderr, on first use."""
    kb = SAMPLED_ATTENTION_KERNEL
    if kb.status().state == "not built" and kernel_build.CPU_KERNEL.started_in_background:
        kb.start()
    return kb.get()


def _cpu_forward(q, k, v, offset, pos_logits, scale) -> Optional[Tensor]:
    ext = kernel()
    if ext is None:
        return None
    last = lambda t: t if t.stride(-1) == 1 else t.contiguous()
    return ext.forward(last(q), last(k), last(v), offset, pos_logits, float(scale))


def _sampled_attention_impl(q: Tensor, k: Tensor, v: Tensor, offset: Tensor, pos_logits: Tensor, scale: float,
                            impl: Optional[str]) -> Tensor:
    impl = resolve_impl(impl, q.device, "sampled_attention")
    _refuse_non_finite(offset)
    out = None
    if impl == "cpu":
        out = _cpu_forward(q, k, v, offset, pos_logits, scale)
    elif impl == "triton":
        from .sampled_attention_triton import forward_triton

        out = forward_triton(q, k, v, offset, pos_logits, scale)
    if out is None:  # the reference (also while the CPU kernel is unavailable or still building)
        out = sampled_attention_reference(q, k, v, offset, pos_logits, scale,
                                          aggregate_impl="reference" if impl == "reference" else None)
    return out


_sampled_attention_op = torch.library.custom_op("dgmn::sampled_attention", _sampled_attention_impl, mutates_args=())


@_sampled_attention_op.register_fake
def _sampled_attention_fake(q, k, v, offset, pos_logits, scale, impl):
    return torch.empty(q.shape, dtype=q.dtype, device=q.device)


def needs_grad(*tensors: Tensor) -> bool:
    """Whether autograd would record an op on ``tensors`` now."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def sampled_attention(q: Tensor, k: Tensor, v: Tensor, offset: Tensor, pos_logits: Tensor, scale: float, *,
                      impl: Optional[str] = None) -> Tensor:
    """(B, H, W, h, d) attention output; see the module docstring for the math, shapes and implementations."""
    check_inputs(q, k, v, offset, pos_logits)
    if impl is not None:
        impl = resolve_impl(impl, q.device, "sampled_attention")
    if needs_grad(q, k, v, offset, pos_logits) or torch.jit.is_tracing():
        _refuse_non_finite(offset)  # autograd (or TorchScript tracing) needs the differentiable reference path
        ref = sampled_attention_reference(q, k, v, offset, pos_logits, scale,
                                          aggregate_impl="reference" if impl == "reference" else None)
        if torch.jit.is_tracing() or (impl or default_impl(q.device)) == "reference":
            return ref
        with torch.no_grad():  # the value of the fused kernel, bit for bit (fast + 0), the gradient of the reference
            fast = torch.ops.dgmn.sampled_attention(q, k, v, offset, pos_logits, float(scale), impl)
        return fast + (ref - ref.detach())
    if is_plain_eager(q, k, v, offset, pos_logits):  # the same call without the dispatcher's cost (see plain_eager)
        return _sampled_attention_impl(q, k, v, offset, pos_logits, float(scale), impl)
    return torch.ops.dgmn.sampled_attention(q, k, v, offset, pos_logits, float(scale), impl)
