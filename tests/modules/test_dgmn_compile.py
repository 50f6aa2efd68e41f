"""torch.compile and torch.export of models with DGMN layers (CPU, Inductor): no graph break, same numbers as eager,
the aggregation op kept as one node. Compiling takes a while on 2 cores (about a minute for this file)."""
import pytest
import torch

import dgmn
from dgmn.models import build_segmenter
from dgmn.ops import use_impl

OP = torch.ops.dgmn.dynamic_aggregate.default
TAPS = torch.ops.dgmn.deform_conv_taps.default


def walked(layer):
    """Non-zero walks, so the compiled graph really samples off the grid (deformable path and offset gradients)."""
    with torch.no_grad():
        for c in layer.walk_convs:
            c.weight.normal_(std=0.05)
            c.bias.uniform_(-1.5, 1.5)
    return layer


def grads(module, x, out):
    g = torch.autograd.grad(out.square().mean(), [x] + list(module.parameters()))
    return dict(zip(["input"] + [n for n, _ in module.named_parameters()], g))


def assert_same(compiled, eager, x):
    """Forward and backward (input and every parameter) of the compiled module match eager in float32."""
    x = x.clone().requires_grad_()
    torch.manual_seed(1)  # the same dropout masks (with Inductor's fallback_random)
    want = eager(x)
    want_g = grads(eager, x, want)
    torch.manual_seed(1)
    got = compiled(x)
    got_g = grads(eager, x, got)  # compiled shares the eager module's parameters
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert want_g.keys() == got_g.keys()
    for name in want_g:
        torch.testing.assert_close(got_g[name], want_g[name], rtol=1e-4, atol=1e-5, msg=name)


def test_compiled_layer_matches_eager_forward_and_backward():
    torch.manual_seed(0)
    layer = walked(dgmn.DGMN(16, dilations=(1, 2)))
    compiled = torch.compile(layer, fullgraph=True)  # fullgraph: any graph break is an error
    assert_same(compiled, layer, torch.randn(2, 16, 12, 10))
    # the compiled layer still refuses NaN (the input check is eager-only; the op refuses the NaN walks it makes)
    bad = torch.randn(2, 16, 12, 10)
    bad[0, 3, 4, 5] = float("nan")
    with pytest.raises(ValueError, match="`offset` contains NaN or infinite values"):
        compiled(bad)


def small_segmenter():
    torch.manual_seed(0)
    model = build_segmenter("small", "dgmn", 8, channels=16, backbone_cfg={"width": 16}, dilations=(1, 3), groups=4,
                            random_walk=True)
    walked(model.context)
    return model


def test_compiled_segmenter_matches_eager_in_a_training_step():
    model = small_segmenter().train()  # batch norm on batch statistics, dropout on
    compiled = torch.compile(model, fullgraph=True)
    with torch._inductor.config.patch(fallback_random=True):  # Inductor draws dropout masks as eager does
        assert_same(compiled, model, torch.randn(2, 3, 64, 80))


def test_export_captures_each_op_call_as_one_node_and_runs_anywhere(tmp_path):
    model = small_segmenter().eval()
    x = torch.randn(1, 3, 64, 80)
    ep = torch.export.export(model, (x,))
    calls = [n for n in ep.graph.nodes if n.op == "call_function"]
    messages = [n for n in calls if n.target == OP]
    taps = [n for n in calls if n.target == TAPS]
    # per rate one node for the message and one for the deformable prediction conv's sampling; nothing decomposed
    assert len(messages) == len(taps) == len(model.context.dilations)
    assert not [n for n in calls if "grid_sampler" in str(n.target)]
    assert all(n.args[-1] is None for n in messages + taps)  # implementation chosen when the program runs
    path = tmp_path / "segmenter.pt2"
    torch.export.save(ep, path)
    loaded = torch.export.load(path).module()
    with torch.no_grad():
        want = model(x)
        torch.testing.assert_close(loaded(x), want, rtol=1e-5, atol=1e-6)
        with use_impl("reference"):  # the same program on the pure-PyTorch implementation
            torch.testing.assert_close(loaded(x), want, rtol=1e-4, atol=1e-5)
