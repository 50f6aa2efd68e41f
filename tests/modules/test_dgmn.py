import itertools

import pytest
import torch
import torch.nn.functional as F

from dgmn import DGMN, count_macs
from dgmn.ops import node_grid

PAPER = {  # Table 1a at C=512, 97×97 features: (params in M, MACs in G)
    "DA": (dict(dilations=(1,), groups=None, random_walk=False), 0.57, 5.32),
    "DA+DW": (dict(dilations=(1,), groups=4, random_walk=False), 0.73, 6.88),
    "full": (dict(dilations=(1, 6, 12, 24, 36), groups=4, random_walk=True), 3.02, 28.45),
}


@pytest.mark.parametrize("name", list(PAPER))
def test_parameters_and_macs_match_table_1a(name):
    cfg, params_m, macs_g = PAPER[name]
    layer = DGMN(512, **cfg)
    params = sum(p.numel() for p in layer.parameters())
    assert abs(params / 1e6 - params_m) / params_m <= 0.03, params
    macs = count_macs(layer, (1, 512, 97, 97))
    assert abs(macs / 1e9 - macs_g) / macs_g <= 0.05, macs


def uniform_message(layer, h, s):
    """The rate-s message of a fresh layer computed independently: exact integer grid via F.unfold."""
    B, C, H, W = h.shape
    d, ks = layer.dilations[s], layer.kernel_size
    K, G = ks * ks, layer.groups
    pad = d * (ks - 1) // 2
    xs = layer.message_transforms[s](h)
    nodes = F.unfold(xs, ks, dilation=d, padding=pad).view(B, C, K, H, W)
    g = layer.sample_graph(h)[s]
    w = g.weight.view(B, K, G, H, W).transpose(1, 2).repeat_interleave(C // G, dim=1)  # (B, C, K, H, W)
    return (nodes * w).sum(2)


@pytest.mark.parametrize("random_walk", [True, False])
def test_fresh_layer_samples_exactly_the_dilated_uniform_grid(random_walk):
    torch.manual_seed(0)
    layer = DGMN(8, dilations=(1, 2, 3), groups=2, random_walk=random_walk).double()
    h = torch.randn(2, 8, 9, 10, dtype=torch.float64)
    graphs = layer.sample_graph(h)
    for s, g in enumerate(graphs):
        assert torch.count_nonzero(g.offset) == 0
        pos = node_grid(g.offset, (g.dilation,), 3)  # (B, K, H, W, 2)
        ys = torch.arange(9, dtype=torch.float64).view(1, 1, 9, 1)
        xs = torch.arange(10, dtype=torch.float64).view(1, 1, 1, 10)
        ky = torch.tensor([-1, -1, -1, 0, 0, 0, 1, 1, 1], dtype=torch.float64).view(1, 9, 1, 1) * g.dilation
        kx = torch.tensor([-1, 0, 1] * 3, dtype=torch.float64).view(1, 9, 1, 1) * g.dilation
        assert torch.equal(pos[..., 0], (ys + ky).expand(2, 9, 9, 10))
        assert torch.equal(pos[..., 1], (xs + kx).expand(2, 9, 9, 10))
    # and the layer's output is the message built from those exact grid nodes
    total = sum(uniform_message(layer, h, s) for s in range(3))
    want = F.relu(h + layer.alpha * layer.output_conv(total))
    assert torch.allclose(layer(h), want, atol=1e-12)


CONFIGS = [
    dict(dynamic_affinity=da, dynamic_weights=dw, random_walk=rw, dilations=dil, kernel_size=ks, iterations=it)
    for da, dw, rw in itertools.product([True, False], repeat=3)
    for dil, ks, it in [((1,), 3, 1), ((1, 2, 4), 3, 2), ((2, 1), 5, 1)]
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k[:3]}{v}" for k, v in c.items()))
def test_every_configuration_runs_forward_and_backward(cfg):
    torch.manual_seed(1)
    layer = DGMN(8, groups=2, **cfg)
    x = torch.randn(2, 8, 11, 12, requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    if cfg["random_walk"]:  # walks start at zero yet receive a gradient, so they can learn
        assert all(c.weight.grad.abs().sum() > 0 for c in layer.walk_convs)
    if not (cfg["dynamic_affinity"] or cfg["dynamic_weights"]):
        assert layer.filter_affinity_convs is None


def test_layer_gradcheck_in_float64():
    torch.manual_seed(2)
    layer = DGMN(4, dilations=(1, 2), groups=2).double()
    with torch.no_grad():  # non-zero walks, so the deformable path and the offset gradients are exercised
        for c in layer.walk_convs:
            c.weight.normal_(std=0.2)
            c.bias.uniform_(-1.3, 1.3)
    x = torch.randn(1, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: layer(t), (x,))


def test_reference_and_cpu_ops_give_the_same_layer_output(monkeypatch):
    torch.manual_seed(3)
    layer = DGMN(16, dilations=(1, 3), groups=4)
    with torch.no_grad():
        for c in layer.walk_convs:
            c.weight.normal_(std=0.05)
    x = torch.randn(2, 16, 10, 9)
    a = layer(x)
    monkeypatch.setenv("DGMN_OP_IMPL", "reference")
    b = layer(x)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(channels=0), "`channels` must be a positive int"),
        (dict(channels=8, dilations=(1, -2)), "`dilations` must be a non-empty sequence of positive ints"),
        (dict(channels=8, groups=3), "`groups`=3 must divide `channels`=8"),
        (dict(channels=8, kernel_size=4), "`kernel_size` must be a positive odd int"),
        (dict(channels=8, iterations=0), "`iterations` must be a positive int"),
    ],
)
def test_bad_configuration_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DGMN(**kwargs)


def test_wrong_input_shape_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"input must have shape \(B, 8, H, W\), got \(2, 4, 5, 5\)"):
        DGMN(8)(torch.zeros(2, 4, 5, 5))


def test_groups_zero_or_none_means_no_dynamic_weights():
    for g in (0, None):
        layer = DGMN(8, dilations=(1,), groups=g, random_walk=False)
        assert not layer.dynamic_weights and layer.filter_affinity_convs[0].out_channels == 9


def test_nan_input_is_refused():
    x = torch.zeros(1, 8, 5, 5)
    x[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="input contains NaN or infinite values"):
        DGMN(8)(x)
