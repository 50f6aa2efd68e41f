"""dynamic_aggregate as a PyTorch custom op: registration (opcheck), the reference's written-out backward,
memory formats, the implementation chosen at run time, and what TorchScript tracing (the ONNX export) records."""
import importlib

import pytest
import torch

from dgmn.ops import dynamic_aggregate, dynamic_aggregate_reference, use_impl

from .test_dynamic_aggregate import IMPLS, device_for, make_inputs

da = importlib.import_module("dgmn.ops.dynamic_aggregate")  # the module (dgmn.ops.dynamic_aggregate is the function)
OP = torch.ops.dgmn.dynamic_aggregate.default
BACKWARD_OP = torch.ops.dgmn.dynamic_aggregate_backward.default


def fractional(off):
    """Offsets with fractional parts away from integers (the bilinear kernel has kinks at integers)."""
    with torch.no_grad():
        return off.round() + 0.25 + 0.5 * torch.rand_like(off)


# channels-last inputs for every implementation but the Triton interpreter's (slow; covered there by nchw)
OPCHECK_CASES = [(impl, layout) for impl in IMPLS + [None] for layout in ("nchw", "channels_last")
                 if not (impl == "triton" and layout == "channels_last" and device_for(impl) == "cpu")]


@pytest.mark.parametrize("impl, layout", OPCHECK_CASES)
def test_opcheck(impl, layout):
    """Schema, autograd registration, fake (meta) implementation and AOT dispatch, as torch.library checks them."""
    dev = device_for(impl or "cpu")
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x, off, w = (t.to(dev).contiguous(memory_format=fmt) for t in make_inputs(1, 4, 4, 5, (1, 2), 2, 3, torch.float32))
    off = fractional(off)
    for grads in ((True, True, True), (False, True, False)):
        args = [t.clone().requires_grad_(g) for t, g in zip((x, off, w), grads)]
        torch.library.opcheck(OP, (*args, [1, 2], 3, impl))
    go = torch.randn(1, 4, 4, 5, device=dev)
    torch.library.opcheck(BACKWARD_OP, (go, x, off, w, [1, 2], 3, impl, [True, False, True]))


@pytest.mark.parametrize(
    "case", [(2, 8, 5, 6, (1, 2), 2, 3, False), (3, 4, 6, 6, (2, 1), 4, 5, True), (1, 3, 1, 5, (1,), 1, 3, False)],
    ids=["B2C8S2G2", "B3C4S2G4k5far", "side-of-one"],
)
def test_reference_backward_equals_autograd_through_the_reference(case):
    """The op's reference backward is written out with ATen ops; autograd through the plain reference is the check."""
    B, C, H, W, dil, G, ks, far = case
    x, off, w = (t.requires_grad_() for t in make_inputs(B, C, H, W, dil, G, ks, torch.float64, seed=11, far=far))
    g = torch.randn(B, C, H, W, dtype=torch.float64)
    want = torch.autograd.grad((dynamic_aggregate_reference(x, off, w, dil, ks) * g).sum(), (x, off, w))
    got = torch.autograd.grad((dynamic_aggregate(x, off, w, dil, ks, impl="reference") * g).sum(), (x, off, w))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_output_and_x_gradient_are_channels_last_and_offset_gradients_keep_their_layout(impl):
    dev = device_for(impl)
    x, off, w = (t.to(dev) for t in make_inputs(2, 8, 5, 6, (1,), 2, 3, torch.float32))
    cl = torch.channels_last
    for fmt in (torch.contiguous_format, cl):
        xx, oo, ww = (t.contiguous(memory_format=fmt).requires_grad_() for t in (x, off, w))
        out = dynamic_aggregate(xx, oo, ww, (1,), impl=impl)
        assert out.is_contiguous(memory_format=cl)
        gx, goff, gw = torch.autograd.grad(out.sum(), (xx, oo, ww))  # as the op returns them (no .grad copy)
        assert gx.is_contiguous(memory_format=cl)
        assert goff.is_contiguous(memory_format=fmt) and gw.is_contiguous(memory_format=fmt)


def test_the_implementation_is_chosen_when_the_op_runs(monkeypatch):
    """impl=None reaches the op, which reads DGMN_OP_IMPL at run time, so a compiled graph follows it."""
    ran = []
    forward = da._forward
    monkeypatch.setattr(da, "_forward", lambda impl, *a: ran.append(impl) or forward(impl, *a))
    monkeypatch.delenv("DGMN_OP_IMPL", raising=False)
    f = torch.compile(lambda x, o, w: dynamic_aggregate(x, o, w, (1,)) * 2, fullgraph=True, backend="aot_eager")
    x, off, w = make_inputs(1, 4, 4, 4, (1,), 1, 3, torch.float32)
    a = f(x, off, w)
    with use_impl("reference"):
        b = f(x, off, w)
    assert ran == ["cpu", "reference"]
    torch.testing.assert_close(a, b)


def test_compiled_op_still_refuses_nan_offsets():
    f = torch.compile(lambda x, o, w: dynamic_aggregate(x, o, w, (1,)) + 1, fullgraph=True)
    x, off, w = make_inputs(1, 4, 4, 4, (1,), 1, 3, torch.float32)
    f(x, off, w)
    off[0, 3, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="`offset` contains NaN or infinite values"):
        f(x, off, w)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:.*is deprecated:DeprecationWarning")
def test_torchscript_tracing_records_the_reference_as_aten_ops_only_for_the_reference():
    """What the ONNX export relies on: under use_impl("reference") the trace holds grid_sampler, not the custom op."""
    x, off, w = make_inputs(1, 4, 5, 6, (1,), 2, 3, torch.float32)
    fn = lambda a, b, c: dynamic_aggregate(a, b, c, (1,))  # noqa: E731
    with use_impl("reference"), torch.no_grad():
        graph = str(torch.jit.trace(fn, (x, off, w), check_trace=False).graph)
    assert "grid_sampler" in graph and "dgmn::dynamic_aggregate" not in graph
    with torch.no_grad():
        traced = torch.jit.trace(fn, (x, off, w), check_trace=False)
    assert "dgmn::dynamic_aggregate" in str(traced.graph)
    torch.testing.assert_close(traced(x, off, w), dynamic_aggregate(x, off, w, (1,)))


def test_backward_is_once_differentiable():
    x, off, w = (t.requires_grad_() for t in make_inputs(1, 4, 4, 4, (1,), 1, 3, torch.float64))
    (gx,) = torch.autograd.grad(dynamic_aggregate(x, off, w, (1,)).sum(), (x,), create_graph=True)
    with pytest.raises(RuntimeError, match="dynamic_aggregate_backward"):
        torch.autograd.grad(gx.sum(), (x,))
