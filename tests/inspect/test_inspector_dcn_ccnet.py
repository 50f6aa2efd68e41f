"""The inspector on the deformable convolution (DCNv2) and criss-cross attention (CCNet) context modules (issue 15):
DCN's reported points rebuild the layer's output at the pixel (an independent bilinear loop, float64); CCNet's
reported attention is a dense N×N masked computation's row (built here from the layer's weights, float64); both
entries have the JSON form of a DGMN rate and of a Non-local entry, with image coordinates from the one mapping."""
import numpy as np
import pytest
import torch

from dgmn.inspect import Inspector
from dgmn.inspect.records import GraphNode, NonLocalQuery
from dgmn.models import build_segmenter
from dgmn.modules import CrissCross2d, DeformableContext

from ..ops.loop_reference import bilinear


def deformable_layer(seed=0, dilation=2, channels=6):
    torch.manual_seed(seed)
    layer = DeformableContext(channels, dilation=dilation).double().eval()
    with torch.no_grad():
        layer.offset_mask.weight.normal_(std=0.3)  # offsets of a few pixels (some taps leave the map), masks in (0, 1)
        layer.offset_mask.bias.uniform_(-2, 2)
        layer.bn.running_mean.uniform_(-0.5, 0.5)
        layer.bn.running_var.uniform_(0.5, 2.0)
        layer.bn.weight.uniform_(0.5, 1.5)
        layer.bn.bias.uniform_(-0.2, 0.2)
    return layer


def rebuild(layer, f, q):
    """h[:, y, x] = ReLU(f[:, y, x] + BN(Σ_k m_k · W_k · bilinear(f, sampled_k))) from the reported points only."""
    y, x = q["feature_pixel"]
    W = layer.conv.weight.detach().numpy()  # (O, C, ks, ks)
    ks = layer.kernel_size
    img = f[0].numpy()
    D = np.zeros(W.shape[0])
    for n in q["nodes"]:
        ky, kx = divmod(n["node"], ks)
        D += n["mask"] * (W[:, :, ky, kx] @ bilinear(img, *n["sampled"]))
    bn = layer.bn
    D = (D - bn.running_mean.numpy()) / np.sqrt(bn.running_var.numpy() + bn.eps) * bn.weight.detach().numpy() + bn.bias.detach().numpy()
    return np.maximum(img[:, y, x] + D, 0)


def test_reported_points_rebuild_the_layer_output_at_the_pixel():
    layer = deformable_layer()
    f = torch.randn(1, 6, 9, 11, dtype=torch.float64)
    ins = Inspector(layer)
    with torch.no_grad():
        h = ins.run(f)[0].numpy()
    outside = 0
    for (y, x) in [(0, 0), (4, 5), (8, 10), (2, 9)]:
        q = ins.query(y, x)["DeformableContext"].to_json()
        assert q["type"] == "dcn" and q["feature_pixel"] == [y, x] and q["dilations"] == [2] and len(q["nodes"]) == 9
        assert np.allclose(rebuild(layer, f, q), h[:, y, x], atol=1e-6, rtol=0)
        masks = np.array([n["mask"] for n in q["nodes"]])
        for k, n in enumerate(q["nodes"]):
            ky, kx = divmod(k, 3)
            assert n["node"] == k and n["rate"] == 0 and n["uniform"] == [y + (ky - 1) * 2, x + (kx - 1) * 2]
            assert n["walk"] == n["offset"] and np.allclose(np.add(n["uniform"], n["offset"]), n["sampled"], atol=1e-12)
            assert n["weight"] == [n["mask"]] and 0 < n["mask"] < 1 and n["affinity"] is None and n["filters"] is None
            assert n["share"] == pytest.approx(abs(n["mask"]) / np.abs(masks).sum(), abs=1e-12)
            py, px = n["sampled"]
            assert n["inside"] == (-1 < py < 9 and -1 < px < 11)
            outside += not n["inside"]
        assert sum(n["share"] for n in q["nodes"]) == pytest.approx(1, abs=1e-12)
    assert outside > 0  # the border pixels' taps leave the map: the rebuild covered zeros outside too
    ins.close()


def test_points_sit_on_the_grid_for_a_fresh_layer_and_follow_edits():
    from dgmn.modules import DropNode, NoWalks

    layer = DeformableContext(4, dilation=3).eval()
    ins = Inspector(layer)
    ins.run(torch.randn(1, 4, 10, 10))
    q = ins.query(5, 5)["DeformableContext"]
    assert all(n.offset == [0.0, 0.0] and n.sampled == n.uniform and n.mask == 0.5 for n in q.nodes)
    edited = deformable_layer()
    edited.graph_edit = DropNode(rate=0, node=4)
    ins = Inspector(edited)
    ins.run(torch.randn(1, 6, 7, 7, dtype=torch.float64))
    q = ins.query(3, 3)["DeformableContext"]
    assert q.nodes[4].mask == 0 and q.nodes[4].share == 0 and all(n.mask > 0 for n in q.nodes if n.node != 4)
    edited.graph_edit = NoWalks()
    ins.run(torch.randn(1, 6, 7, 7, dtype=torch.float64))
    assert all(n.sampled == n.uniform for n in ins.query(3, 3)["DeformableContext"].nodes)


def test_dcn_in_a_segmenter_reports_image_coordinates_and_diagnostics():
    torch.manual_seed(0)
    m = build_segmenter("small", "dcn", 8, channels=16, backbone_cfg={"width": 16}, dilation=2).eval()
    with torch.no_grad():
        m.context.offset_mask.bias[:18].uniform_(-3, 3)
    ins = Inspector(m)
    ins.run(torch.randn(3, 64, 96))
    q = ins.query(37, 70)["context"]
    assert q.feature_size == [8, 12] and q.feature_pixel == [round((37 + 0.5) / 8 - 0.5), round((70 + 0.5) / 8 - 0.5)]
    for n in q.nodes:  # feature position (fy, fx) ↔ image pixel ((fy + ½)·8 − ½, (fx + ½)·8 − ½) at stride 8
        assert np.allclose(n.sampled_image, [(n.sampled[0] + 0.5) * 8 - 0.5, (n.sampled[1] + 0.5) * 8 - 0.5])
        assert np.allclose(n.uniform_image, [(n.uniform[0] + 0.5) * 8 - 0.5, (n.uniform[1] + 0.5) * 8 - 0.5])
    d = ins.diagnostics("context")
    assert len(d["rates"]) == 1 and d["rates"][0]["dilation"] == 2 and d["rates"][0]["walk_length_max"] > 0
    # the JSON of one DGMN rate: every GraphNode key, in order, then the DCN's own
    keys = list(q.to_json()["nodes"][0])
    graph_keys = [k for k in GraphNode(0, 1, 0, [0, 0], [0, 0], [0, 0], [0, 0], True, None, None, [1.0]).to_json()]
    assert keys == graph_keys + ["offset", "mask"]
    assert list(q.to_json()) == ["type", "feature_size", "feature_pixel", "dilations", "nodes"]


# --- criss-cross attention --------------------------------------------------------------------------------
def dense_passes(m, f):
    """Every pass's N×N attention (the cross of each query, p itself once) from q, k, v of the layer's convs, and
    the output, computed densely in float64 (a check of the layer, independent of its row/column bookkeeping)."""
    h = m.pre(f)
    _, _, H, W = h.shape
    ys, xs = np.divmod(np.arange(H * W), W)
    cross = torch.from_numpy((ys[:, None] == ys[None, :]) | (xs[:, None] == xs[None, :]))
    passes = []
    for _ in range(m.recurrence):
        q, k, v = (c(h)[0].flatten(1) for c in (m.query_conv, m.key_conv, m.value_conv))
        logits = (q.T @ k).masked_fill(~cross, float("-inf"))
        A = torch.softmax(logits, dim=1)
        passes.append(A)
        h = h + m.gamma * (v @ A.T).view(1, -1, H, W)
    return passes, h


def test_reported_attention_is_the_dense_two_pass_composition():
    torch.manual_seed(1)
    m = CrissCross2d(16, recurrence=2).double().eval()
    with torch.no_grad():
        m.gamma.fill_(0.8)
        for c in (m.query_conv, m.key_conv):
            c.weight.normal_(std=0.5)
    f = torch.randn(1, 16, 5, 7, dtype=torch.float64)
    ins = Inspector(m)
    with torch.no_grad():
        out = ins.run(f)
        passes, want = dense_passes(m, f)
    assert torch.allclose(out, want, atol=1e-10)  # the dense computation is the layer's
    E = passes[1] @ passes[0]  # (N, N): the effective attention, query rows
    for (y, x) in [(0, 0), (2, 3), (4, 6)]:
        q = ins.query(y, x)["CrissCross2d"]
        p = y * 7 + x
        assert q.type == "ccnet" and q.feature_pixel == [y, x] and q.recurrence == 2
        # the records hold float32 maps, as Non-local's
        assert np.allclose(q.attention, E[p].view(5, 7).numpy(), atol=1e-6, rtol=0)
        assert np.allclose(q.cross, passes[0][p].view(5, 7).numpy(), atol=1e-6, rtol=0)
        assert (np.asarray(q.cross)[np.arange(5) != y][:, np.arange(7) != x] == 0).all()  # pass 1: row and column only
        assert np.asarray(q.attention).sum() == pytest.approx(1, abs=1e-6) and (np.asarray(q.attention) > 0).all()
        best = int(E[p].argmax())
        assert q.top[0].feature == [best // 7, best % 7] and q.top[0].weight == pytest.approx(float(E[p].max()), abs=1e-6)
        assert [t.weight for t in q.top] == sorted((t.weight for t in q.top), reverse=True) and len(q.top) == 10
        e = E[p].numpy()
        assert q.entropy == pytest.approx(float(-(e * np.log(e)).sum() / np.log(35)), abs=1e-6)


def test_ccnet_entry_has_the_form_of_a_non_local_entry_plus_the_cross():
    torch.manual_seed(0)
    m = build_segmenter("small", "ccnet", 8, channels=16, backbone_cfg={"width": 16}).eval()
    ins = Inspector(m)
    ins.run(torch.randn(3, 64, 80))
    q = ins.query(30, 40)["context"]
    j = q.to_json()
    nonlocal_keys = ["type", "feature_size", "feature_pixel", "attention", "top", "entropy"]
    assert list(j) == nonlocal_keys + ["recurrence", "cross"]
    assert [f for f in NonLocalQuery.__dataclass_fields__ if f != "type"] == nonlocal_keys[1:]
    assert np.array(j["attention"]).shape == (8, 10) == np.array(j["cross"]).shape
    assert list(j["top"][0]) == ["feature", "image", "weight"]
    fy, fx = j["top"][0]["feature"]
    assert np.allclose(j["top"][0]["image"], [(fy + 0.5) * 8 - 0.5, (fx + 0.5) * 8 - 0.5])
    assert abs(np.sum(j["cross"]) - 1) < 1e-5 and abs(np.sum(j["attention"]) - 1) < 1e-5
    with pytest.raises(ValueError, match="not a DGMN or deformable-convolution layer"):
        ins.diagnostics("context")
