"""DGMN2's attention on the fused sampled-attention op (dgmn.ops.sampled_attention) against its unfused path
(keys by grid_sample, values by dynamic_aggregate): whole models of every head, the fixture logits of DGMN2's
original code, and training (gradients from the differentiable reference, values from the kernel)."""
import pytest
import torch
from safetensors.torch import load_file

import dgmn
from dgmn.convert import convert_dgmn2
from dgmn.models.dgmn2 import DGMN2Attention
from dgmn.ops import use_impl

from .fixtures import HEADS, fixture
from .helpers import small_model


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def run(model, image, fused: bool):
    old = DGMN2Attention.fused
    DGMN2Attention.fused = fused
    try:
        with torch.no_grad():
            return model(image)
    finally:
        DGMN2Attention.fused = old


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("size", [(37, 53), (40, 40)])
def test_model_fused_equals_unfused(head, size):
    model = small_model(head, seed=3)
    image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(4))
    assert rel(run(model, image, True), run(model, image, False)) <= 1e-5


def test_attention_fused_equals_unfused_float64_per_impl():
    torch.manual_seed(0)
    attn = DGMN2Attention(30, 5, (4, 3)).double().eval()
    with torch.no_grad():
        attn.conv_offset.bias.uniform_(-2, 2)
    x = torch.randn(2, 7 * 5, 30, dtype=torch.float64)
    with torch.no_grad():
        want = attn._forward_unfused(x, 7, 5)
        for impl in ("cpu", "reference"):
            with use_impl(impl):
                assert (attn(x, 7, 5) - want).abs().max().item() < 1e-12, impl


def test_gradients_come_from_the_differentiable_path_and_values_from_the_kernel():
    model = small_model("fpn", seed=1).train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    image = torch.randn(1, 3, 37, 41)
    out = model(image)  # grad mode on, parameters require grad: the differentiable path
    out.square().mean().backward()
    attn = next(m for m in model.modules() if isinstance(m, DGMN2Attention))
    assert attn.qkv.weight.grad is not None and attn.conv_offset.weight.grad.abs().sum() > 0
    assert torch.equal(out.detach(), run(model, image, True))  # grad mode does not change the numbers


def test_fixture_logits_hold_on_the_fused_path(tmp_path):
    convert_dgmn2(fixture("fpn.pth"), tmp_path, name="fpn")
    model = dgmn.load_model(tmp_path / "fpn")
    expected = load_file(fixture("fpn.expected.safetensors"))
    for x in ("x0", "x1"):
        logits = run(model, expected[f"{x}.input"], True)
        assert rel(logits, expected[f"{x}.logits"]) < 1e-4, x
