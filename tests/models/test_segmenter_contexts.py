"""The Dilated FCN with the DCNv2 and CCNet context modules: building, configs, forward/backward, MACs."""
from pathlib import Path

import pytest
import torch
import yaml

from dgmn import count_macs
from dgmn.models import CONTEXTS, SegmenterConfig, build_segmenter
from dgmn.modules import CrissCross2d, DeformableContext

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("context, cfg, cls", [
    ("dcn", {}, DeformableContext), ("dcn", {"dilation": 3}, DeformableContext),
    ("ccnet", {}, CrissCross2d), ("ccnet", {"recurrence": 1}, CrissCross2d),
])
@pytest.mark.parametrize("size", [(128, 128), (72, 100)])
def test_segmenter_with_dcn_and_ccnet_runs_forward_and_backward(context, cfg, cls, size):
    assert context in CONTEXTS
    torch.manual_seed(0)
    m = build_segmenter("small", context, 8, channels=32, backbone_cfg={"width": 16}, **cfg)
    assert isinstance(m.context, cls)
    x = torch.randn(2, 3, *size, requires_grad=True)
    y = m(x)
    assert y.shape == (2, 8, *size)
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    grads = {n: p.grad for n, p in m.context.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    if context == "dcn":  # offsets and masks learn from the first step (zero-initialised conv, non-zero gradient)
        assert grads["offset_mask.weight"].abs().sum() > 0 and m.context.dilation == cfg.get("dilation", 1)
    else:  # γ = 0 at the start: the attention path learns through γ first
        assert grads["gamma"].abs() > 0 and m.context.recurrence == cfg.get("recurrence", 2)


@pytest.mark.parametrize("name, context, cfg", [("fcn-dcn", "dcn", {"dilation": 1}), ("fcn-ccnet", "ccnet", {"recurrence": 2})])
def test_configs_differ_from_fcn_nonlocal_only_in_name_and_context(name, context, cfg):
    new = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    base = yaml.safe_load((ROOT / "configs" / "fcn-nonlocal.yaml").read_text())
    assert new["name"] == name and new["model"]["context"] == context and new["model"]["context_cfg"] == cfg
    model = base["model"]
    assert {k: v for k, v in new["model"].items() if k not in ("context", "context_cfg")} == \
        {k: v for k, v in model.items() if k not in ("context", "context_cfg")}  # same backbone and channels
    for key in ("data", "eval", "train"):  # data, held-out split, steps, batch, optimiser, seed: the same
        assert new[key] == base[key], key
    assert set(new) == set(base)
    arch = {**model, "context": context, "context_cfg": cfg}
    m = build_segmenter(SegmenterConfig.from_model_section(arch, 8))
    assert m.config.to_architecture()["context_cfg"] == cfg


def test_macs_at_128x128():
    """The rows the model cards report: whole model at a 128×128 input, and the context module at 64×16×16."""
    C, h, w = 64, 16, 16
    N = h * w
    dcn = build_segmenter("small", "dcn", 8, channels=C, backbone_cfg={"width": 64})
    ccnet = build_segmenter("small", "ccnet", 8, channels=C, backbone_cfg={"width": 64})
    fcn = build_segmenter("small", "none", 8, channels=C, backbone_cfg={"width": 64})
    base = count_macs(fcn, (1, 3, 128, 128))
    dcn_ctx = N * (9 * C * C + 27 * 9 * C)
    ccnet_ctx = N * 9 * C * C + 2 * (N * (2 * C * (C // 8) + C * C) + N * (h + w) * (C // 8 + C))
    assert count_macs(dcn.context, (1, C, h, w)) == dcn_ctx
    assert count_macs(ccnet.context, (1, C, h, w)) == ccnet_ctx
    assert count_macs(dcn, (1, 3, 128, 128)) == base + dcn_ctx
    assert count_macs(ccnet, (1, 3, 128, 128)) == base + ccnet_ctx
