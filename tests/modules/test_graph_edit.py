"""Graph edits change exactly the stage they name: each equals the layer with the matching parameters changed."""
import copy

import pytest
import torch

from dgmn import DGMN, NonLocal2d
from dgmn.modules import DropNode, DropRate, EditList, MaskAttention, NoContext, NoWalks, UniformAffinity


def layer(**cfg):
    torch.manual_seed(0)
    m = DGMN(8, **{"dilations": (1, 2), "groups": 2, **cfg}).double().eval()
    with torch.no_grad():
        for c in (m.walk_convs or []):
            c.weight.normal_(std=0.2)
            c.bias.uniform_(-2, 2)
        for c in (m.filter_affinity_convs or []):
            c.weight.normal_(std=0.3)
        m.beta.uniform_(0.5, 1.5)
    return m


def run(m, f, edit=None):
    m.graph_edit = edit
    try:
        with torch.no_grad():
            return m(f)
    finally:
        m.graph_edit = None


F = torch.randn(1, 8, 7, 9, dtype=torch.float64)


def test_drop_rate_is_beta_zero():
    m = layer()
    ref = copy.deepcopy(m)
    with torch.no_grad():
        ref.beta[1] = 0
    assert torch.equal(run(m, F, DropRate(rate=1)), run(ref, F))


def test_no_walks_is_a_zero_walk_conv_and_uniform_affinity_is_zero_logits():
    m = layer()
    ref = copy.deepcopy(m)
    with torch.no_grad():
        ref.walk_convs[0].weight.zero_()
        ref.walk_convs[0].bias.zero_()
    assert torch.allclose(run(m, F, NoWalks(rate=0)), run(ref, F), atol=1e-12)
    ref = copy.deepcopy(m)
    K, G = 9, m.groups
    with torch.no_grad():
        for c in ref.filter_affinity_convs:
            c.weight[K * G:].zero_()
            c.bias[K * G:].zero_()
    assert torch.allclose(run(m, F, UniformAffinity()), run(ref, F), atol=1e-12)


def test_drop_node_zeroes_one_node_only():
    m = layer()
    m.graph_edit = DropNode(rate=1, node=4)
    _, history = m.forward_with_graphs(F)
    m.graph_edit = None
    _, plain = m.forward_with_graphs(F)
    G = m.groups
    w, w0 = history[0][1].weight, plain[0][1].weight
    assert (w[:, 4 * G:5 * G] == 0).all() and torch.equal(w[:, :4 * G], w0[:, :4 * G]) and torch.equal(history[0][0].weight, plain[0][0].weight)


def test_no_context_zeroes_the_messages():
    m = layer()
    expected = torch.relu(F + m.alpha * m.output_conv.bias.view(1, -1, 1, 1))
    assert torch.allclose(run(m, F, NoContext()), expected.detach(), atol=1e-12)
    torch.manual_seed(0)
    nl = NonLocal2d(8).double().eval()
    with torch.no_grad():
        nl.out_bn.weight.fill_(1.0)
        u = nl.pre(F)
        expected = u + nl.out_bn(nl.out(torch.zeros(1, nl.inner, 7, 9, dtype=torch.float64)))
    assert torch.allclose(run(nl, F, NoContext()), expected, atol=1e-12)


def test_where_limits_an_edit_to_some_positions():
    m = layer()
    where = torch.zeros(7, 9, dtype=torch.bool)
    where[3, 4] = where[0, 8] = True
    full, plain, local = run(m, F, NoWalks()), run(m, F), run(m, F, EditList(edits=(NoWalks(where=where), DropRate(rate=0, where=where))))
    both = run(m, F, EditList(edits=(NoWalks(), DropRate(rate=0))))
    assert torch.equal(local[..., ~where], plain[..., ~where]) and torch.allclose(local[..., where], both[..., where], atol=1e-12)
    assert not torch.allclose(full, plain)


def test_mask_attention_against_a_dense_computation():
    torch.manual_seed(1)
    nl = NonLocal2d(8, chunk_size=16).double().eval()
    with torch.no_grad():
        nl.out_bn.weight.fill_(1.0)
    keys = torch.zeros(7, 9, dtype=torch.bool)
    keys[2:5, 3:7] = True
    where = torch.zeros(7, 9, dtype=torch.bool)
    where[0, 0] = where[6, 8] = True
    got = run(nl, F, MaskAttention(keys=keys, where=where))
    with torch.no_grad():
        u = nl.pre(F)
        q, k, v = (c(u).flatten(2)[0].T for c in (nl.theta, nl.phi, nl.g))  # (N, C')
        logits = q @ k.T
        rows = where.flatten()
        logits[rows[:, None] & keys.flatten()[None, :]] = float("-inf")
        y = (torch.softmax(logits, 1) @ v).T.reshape(1, nl.inner, 7, 9)
        expected = u + nl.out_bn(nl.out(y))
    assert torch.allclose(got, expected, atol=1e-10)
    with pytest.raises(ValueError, match="covers every position"):
        run(nl, F, MaskAttention(keys=torch.ones(7, 9, dtype=torch.bool)))
