"""When a custom op may skip ``torch.ops`` and call its implementation directly.

Our ops are ``torch.library.custom_op``s so that autograd, ``torch.compile``, ``torch.export``, fake tensors, vmap,
dispatch modes and the profiler all see one opaque op. In plain eager inference none of them is involved, and the
dispatcher only adds cost: in PyTorch 2.13 a custom op's first call imports ``torch._dynamo`` (its implementation
runs under ``torch._disable_dynamo``), about 2 s on 2 CPU cores, which a user pays on the first click of the app or
the first call of a command-line tool. :func:`is_plain_eager` says when calling the implementation directly gives
the same result, computed the same way, as the dispatcher would.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack


def is_plain_eager(*tensors: Tensor) -> bool:
    """True when nothing but the op itself would see a call on ``tensors`` now: autograd records nothing (grad
    mode off, or no input requires grad), nothing compiles, exports or traces (``torch.compile``, TorchScript),
    no functorch transform (vmap, grad) and no Python dispatch or function mode (FakeTensorMode, a profiler,
    ``TorchFunctionMode``) is active, and every input is a plain CPU or CUDA ``torch.Tensor`` (not a subclass,
    not meta)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    if torch._C._autograd._profiler_enabled() or torch._C._is_torch_function_mode_enabled():
        return False
    if _get_current_dispatch_mode_stack() or torch._C._functorch.maybe_current_level() is not None:
        return False
    return all(type(t) is Tensor and t.device.type in ("cpu", "cuda") for t in tensors)
