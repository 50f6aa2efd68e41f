"""dgmn.ops.plain_eager: in plain eager inference the ops call their implementation directly (same answer, no
``torch._dynamo`` import); anything that must see the op (autograd, vmap, fake tensors, dispatch and function modes,
the profiler, the meta device) still gets it through ``torch.ops``."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from dgmn.ops import deform_conv2d, dynamic_aggregate, sampled_attention
from dgmn.ops.plain_eager import is_plain_eager

ROOT = Path(__file__).resolve().parents[2]


def agg_inputs(requires_grad=False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 6, 7, generator=g)
    offset = torch.randn(1, 2 * 9 * 2, 6, 7, generator=g)
    weight = torch.randn(1, 2 * 9 * 2, 6, 7, generator=g)
    return [t.requires_grad_(requires_grad) for t in (x, offset, weight)]


class PassThrough(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


class OpNames(TorchDispatchMode):
    """Records the name of every op that reaches the dispatcher."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def test_plain_eager_only_without_autograd_modes_transforms_or_subclasses():
    x = torch.ones(2, 3)
    w = torch.ones(2, 3, requires_grad=True)
    assert is_plain_eager(x, x)
    assert not is_plain_eager(x, w)  # autograd would record the call
    with torch.no_grad():
        assert is_plain_eager(x, w)
    with torch.inference_mode():
        assert is_plain_eager(x, x)
    with PassThrough():
        assert not is_plain_eager(x)
    with OpNames():
        assert not is_plain_eager(x)
    with torch.profiler.profile():
        assert not is_plain_eager(x)
    assert not is_plain_eager(torch.ones(2, device="meta"))
    assert not is_plain_eager(torch.nn.Parameter(torch.ones(2), requires_grad=False))  # a subclass
    seen = []
    torch.vmap(lambda t: (seen.append(is_plain_eager(t)), t)[1])(x)
    assert seen == [False]


@pytest.mark.parametrize("impl", ["reference", "cpu"])
def test_the_direct_call_gives_the_dispatchers_answer_bit_for_bit(impl):
    x, offset, weight = agg_inputs()
    direct = dynamic_aggregate(x, offset, weight, [1, 2], impl=impl)
    dispatched = torch.ops.dgmn.dynamic_aggregate(x, offset, weight, [1, 2], 3, impl)
    assert torch.equal(direct, dispatched)
    assert direct.is_contiguous(memory_format=torch.channels_last)


def test_the_op_still_reaches_autograd_modes_and_the_profiler():
    x, offset, weight = agg_inputs(requires_grad=True)
    out = dynamic_aggregate(x, offset, weight, [1, 2])
    out.sum().backward()  # recorded by autograd: every input has a gradient
    assert all(t.grad is not None for t in (x, offset, weight))
    with torch.no_grad():
        with OpNames() as mode:
            dynamic_aggregate(x, offset, weight, [1, 2])
            deform_conv2d(x, offset[:, :18], torch.ones(3, 4, 3, 3))
        assert "dgmn.dynamic_aggregate" in mode.names and "dgmn.deform_conv_taps" in mode.names
        with torch.profiler.profile() as prof:
            dynamic_aggregate(x, offset, weight, [1, 2])
    assert any(e.name == "dgmn::dynamic_aggregate" for e in prof.events())


def test_inference_in_a_fresh_process_does_not_import_dynamo():
    """The first click's 2 s: a model's forward under no_grad, with each op (the aggregation, the deformable taps,
    DGMN2's sampled attention) called once, imports no ``torch._dynamo``."""
    code = """
import sys, torch
import dgmn
from dgmn.ops import deform_conv2d, dynamic_aggregate, sampled_attention
with torch.no_grad():
    model = dgmn.load_model("dgmn-full", "cpu")
    model(torch.zeros(1, 3, 32, 32))
    x = torch.randn(1, 4, 5, 5)
    dynamic_aggregate(x, torch.zeros(1, 18, 5, 5), torch.ones(1, 9, 5, 5), [1])
    deform_conv2d(x, torch.zeros(1, 18, 5, 5), torch.ones(2, 4, 3, 3))
    q = torch.randn(1, 5, 5, 2, 4)
    sampled_attention(q, q, q, torch.zeros(1, 5, 5, 2, 18), torch.zeros(1, 2, 9, 5, 5), 0.5)
print("torch._dynamo" in sys.modules)
"""
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_sampled_attention_direct_and_dispatched_agree():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 4, 5, 2, 3, generator=g) for _ in range(3))
    offset = torch.randn(1, 4, 5, 2, 18, generator=g)
    pos = torch.randn(1, 2, 9, 4, 5, generator=g)
    direct = sampled_attention(q, k, v, offset, pos, 0.5, impl="reference")
    dispatched = torch.ops.dgmn.sampled_attention(q, k, v, offset, pos, 0.5, "reference")
    assert torch.equal(direct, dispatched)
