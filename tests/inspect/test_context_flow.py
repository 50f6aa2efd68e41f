"""The context flow against a slow, independent computation of issue 11's definition (plain loops over
positions and nodes, from the raw records), for a DGMN model and a Non-local model on a generated scene."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dgmn import DGMN
from dgmn.data import ContextScenes, to_tensor
from dgmn.inspect import Inspector
from dgmn.inspect import context_flow as cf
from dgmn.inspect.context_flow import class_heat, context_flow, context_layers
from dgmn.inspect.coordinates import feature_to_image, nearest_index
from dgmn.models import build_segmenter

CLASSES = list(ContextScenes.classes)
C = len(CLASSES)
SIZE = (96, 128)  # not square: a swapped axis shows
TOL = 1e-6  # issue 11 asks for 1e-4; DGMN is computed in float64, Non-local's attention in float32


def small_model(context, seed=0, **cfg):
    torch.manual_seed(seed)
    m = build_segmenter("small", context, C, channels=16, backbone_cfg={"width": 16}, **cfg)
    if context == "dgmn":  # non-trivial walks (some nodes fall outside) and signed, uneven node weights
        with torch.no_grad():
            for c in m.context.walk_convs:
                c.weight.normal_(std=0.05)
                c.bias.uniform_(-1.5, 1.5)
            for c in m.context.filter_affinity_convs:
                c.weight.normal_(std=0.2)
                c.bias.uniform_(-1, 1)
    return m.eval()


@pytest.fixture(scope="module")
def scenes():
    ds = ContextScenes(seed=5, length=2, size=SIZE)
    return [ds.scene(i) for i in range(2)]


@pytest.fixture(scope="module", params=["dgmn", "nonlocal"])
def model(request):
    cfg = {"dilations": [1, 3], "groups": 4, "random_walk": True} if request.param == "dgmn" else {}
    return small_model(request.param, **cfg)


# --- the slow definition ---------------------------------------------------------------------------------
def label_at(L, fy, fx, feature_size):
    """L at the image pixel nearest to feature position (fy, fx)."""
    Y, X = feature_to_image(fy, fx, feature_size, L.shape)
    y, x = nearest_index(Y, X, L.shape)
    return int(L[y, x])


def column(label):
    return C + 1 if label == 255 else label


def slow_nodes(rec, L, iy, ix):
    """[(source column, share)] of every node of every rate at feature position (iy, ix), last iteration."""
    h, w = rec.feature_size
    ks = rec.kernel_size
    K, c0 = ks * ks, (ks - 1) / 2
    nodes = []
    for g in rec.iterations[-1]:
        G = g.weight.shape[0] // K
        for k in range(K):
            ky, kx = divmod(k, ks)
            py = iy + (ky - c0) * g.dilation + float(g.offset[2 * k, iy, ix])
            px = ix + (kx - c0) * g.dilation + float(g.offset[2 * k + 1, iy, ix])
            mag = sum(abs(float(g.weight[k * G + j, iy, ix])) for j in range(G))
            inside = -1 < py < h and -1 < px < w
            nodes.append((column(label_at(L, py, px, (h, w))) if inside else C, mag, py, px, inside))
    total = sum(n[1] for n in nodes)
    return [(col, mag / total, py, px, inside) for col, mag, py, px, inside in nodes]


def slow_attention(rec, iy, ix):
    """softmax_j(θ_pᵀ φ_j) of position (iy, ix) as a flat list, by loops over j and channels."""
    h, w = rec.feature_size
    theta, phi = rec.theta.tolist(), rec.phi.tolist()
    logits = [sum(theta[c][iy][ix] * phi[c][jy][jx] for c in range(len(theta))) for jy in range(h) for jx in range(w)]
    top = max(logits)
    e = [math.exp(v - top) for v in logits]
    return [v / sum(e) for v in e]


def slow_flow(rec, L):
    """(sums (C, C+2), counts (C,), outside nodes seen) of one image by the definition."""
    h, w = rec.feature_size
    sums, counts, n_outside = np.zeros((C, C + 2)), np.zeros(C, np.int64), 0
    for iy in range(h):
        for ix in range(w):
            t = label_at(L, iy, ix, (h, w))
            if t == 255:
                continue
            counts[t] += 1
            if hasattr(rec, "iterations"):
                for col, share, *_, inside in slow_nodes(rec, L, iy, ix):
                    sums[t, col] += share
                    n_outside += not inside
            else:
                for j, share in enumerate(slow_attention(rec, iy, ix)):
                    sums[t, column(label_at(L, j // w, j % w, (h, w)))] += share
    return sums, counts, n_outside


def run(model, scene):
    ins = Inspector(model)
    ins.run(to_tensor(scene.image))
    ins.close()
    return ins


# --- tests -----------------------------------------------------------------------------------------------
def test_flow_matches_the_slow_definition_and_rows_sum_to_one(model, scenes):
    ins = run(model, scenes[0])
    L = scenes[0].label
    flow = context_flow(ins, L, labels_from="truth", classes=CLASSES)
    rec = ins.records[flow.layer]
    sums, counts, n_outside = slow_flow(rec, L)
    if isinstance(model.context, DGMN):
        assert n_outside > 0  # the walks reach past the border: "outside" is exercised
    assert flow.counts.tolist() == counts.tolist() and counts.sum() == np.prod(rec.feature_size)
    present = counts > 0
    want = sums[present] / counts[present, None]
    got = flow.matrix[torch.from_numpy(present)].numpy()
    assert flow.sources == CLASSES + ["outside"]
    assert np.abs(got - want[:, : C + 1]).max() < TOL
    assert np.allclose(got.sum(1), 1, atol=TOL)
    assert torch.isnan(flow.matrix[torch.from_numpy(~present)]).all()
    j = flow.to_json()
    assert set(j) == {"layer", "labels", "matrix", "positions"} and j["labels"] == "truth" and j["layer"] == "context"
    assert set(j["matrix"]) == {c for c, n in zip(CLASSES, counts) if n} and j["positions"] == dict(zip(CLASSES, counts.tolist()))
    for a, c in enumerate(CLASSES):
        if counts[a]:
            assert j["matrix"][c] == pytest.approx(dict(zip(CLASSES + ["outside"], sums[a, : C + 1] / counts[a])), abs=TOL)


def test_flow_over_images_is_the_mean_over_all_positions(model, scenes):
    flows, slow = [], []
    for sc in scenes:
        ins = run(model, sc)
        flows.append(context_flow(ins, sc.label, labels_from="truth", classes=CLASSES))
        slow.append(slow_flow(ins.records[flows[-1].layer], sc.label))
    total = flows[0] + flows[1]
    sums, counts = slow[0][0] + slow[1][0], slow[0][1] + slow[1][1]
    assert total.images == 2 and total.counts.tolist() == counts.tolist()
    assert np.abs((total.sums.numpy() - sums) / np.maximum(counts, 1)[:, None]).max() < TOL  # every matrix entry
    present = counts > 0
    assert np.allclose(total.matrix.numpy()[present].sum(1), 1, atol=TOL)
    with pytest.raises(ValueError, match="same layer, labels"):
        total + context_flow(run(model, scenes[0]), scenes[0].label, labels_from="prediction", classes=CLASSES)


def test_ignored_targets_are_skipped_and_ignored_sources_get_their_own_column(model, scenes):
    sc = scenes[0]
    ins = run(model, sc)
    L = sc.label.copy()
    L[:, : SIZE[1] // 3] = 255
    flow = context_flow(ins, L, labels_from="truth", classes=CLASSES)
    sums, counts, _ = slow_flow(ins.records[flow.layer], L)
    assert flow.counts.tolist() == counts.tolist() and counts.sum() < np.prod(ins.records[flow.layer].feature_size)
    assert flow.sources == CLASSES + ["outside", "ignore"]
    assert np.abs((flow.sums.numpy() - sums) / np.maximum(counts, 1)[:, None]).max() < TOL
    present = counts > 0
    assert np.allclose(flow.matrix.numpy()[present].sum(1), 1, atol=TOL)
    assert set(next(iter(flow.to_json()["matrix"].values()))) == set(CLASSES + ["outside", "ignore"])


def test_prediction_labels_are_said(model, scenes):
    ins = run(model, scenes[0])
    pred = model(to_tensor(scenes[0].image)[None]).argmax(1)[0]
    flow = context_flow(ins, pred, labels_from="prediction", classes=CLASSES)
    assert flow.to_json()["labels"] == "prediction" and int(flow.counts.sum()) == np.prod(ins.records[flow.layer].feature_size)


def test_flow_of_chosen_targets_only(model, scenes):
    ins = run(model, scenes[0])
    full = context_flow(ins, scenes[0].label, labels_from="truth", classes=CLASSES)
    some = context_flow(ins, scenes[0].label, labels_from="truth", classes=CLASSES, targets=["grass", 0])
    for a in range(C):
        if a in (0, 2):
            assert some.positions(a) == full.positions(a) > 0 and some.row(a) == pytest.approx(full.row(a), abs=TOL)
        else:
            assert some.positions(a) == 0
    with pytest.raises(ValueError, match="unknown class 'lake'"):
        context_flow(ins, scenes[0].label, labels_from="truth", classes=CLASSES, targets=["lake"])


def test_nonlocal_chunks_give_the_same_flow(scenes, monkeypatch):
    model = small_model("nonlocal")
    ins = run(model, scenes[0])
    whole = context_flow(ins, scenes[0].label, labels_from="truth", classes=CLASSES)
    monkeypatch.setattr(cf, "CHUNK_ELEMENTS", 3 * 192 - 1)  # chunks of 2 query rows over N = 12·16 = 192
    chunked = context_flow(ins, scenes[0].label, labels_from="truth", classes=CLASSES)
    assert torch.allclose(whole.sums, chunked.sums, atol=1e-9) and torch.equal(whole.counts, chunked.counts)


def test_dgmn_row_of_one_position_is_what_the_inspector_reports(scenes):
    model = small_model("dgmn", dilations=[1, 3], groups=4, random_walk=True)
    sc = scenes[0]
    ins = run(model, sc)
    flow = context_flow(ins, sc.label, labels_from="truth", classes=CLASSES)
    y, x = 60, 37  # feature position (7, 4)
    q = ins.query_dgmn(flow.layer, y, x)
    row = np.zeros(C + 2)
    for n in q["nodes"]:
        col = label_at(sc.label, *n["sampled"], tuple(q["feature_size"])) if n["inside"] else C
        row[col] += n["share"]
    one = np.zeros(C + 2)
    for col, share, *_ in slow_nodes(ins.records[flow.layer], sc.label, *q["feature_pixel"]):
        one[col] += share
    assert np.allclose(row, one, atol=TOL)


def slow_heat(rec, L, cls, sources):
    """By loops: the class's heat map before averaging (each source's share split bilinearly over the 4 image
    pixels around where it sampled), the number of its positions and its share outside the map. ``sources(rec,
    L, iy, ix)`` yields (source class, share, py, px, inside) of one position."""
    (H, W), (h, w) = L.shape, rec.feature_size
    want, n, outside = np.zeros((H, W)), 0, 0.0
    for iy in range(h):
        for ix in range(w):
            if label_at(L, iy, ix, (h, w)) != cls:
                continue
            n += 1
            for _, share, py, px, inside in sources(rec, L, iy, ix):
                if not inside:
                    outside += share
                    continue
                Y, X = feature_to_image(py, px, (h, w), (H, W))
                Y, X = min(max(Y, 0), H - 1), min(max(X, 0), W - 1)
                y0, x0 = math.floor(Y), math.floor(X)
                for yy, xx, wt in ((y0, x0, (1 - (Y - y0)) * (1 - (X - x0))), (y0, x0 + 1, (1 - (Y - y0)) * (X - x0)),
                                   (y0 + 1, x0, (Y - y0) * (1 - (X - x0))), (y0 + 1, x0 + 1, (Y - y0) * (X - x0))):
                    if wt:
                        want[yy, xx] += share * wt
    return want, n, outside


def test_class_heat_splats_the_shares_where_the_nodes_sampled(scenes):
    model = small_model("dgmn", dilations=[1, 3], groups=4, random_walk=True)
    sc = scenes[0]
    ins = run(model, sc)
    L = sc.label
    cls = max(range(C), key=lambda a: (L == a).sum() * (a != 2))  # a well-represented class other than grass
    heat = class_heat(ins, L, CLASSES[cls], labels_from="truth", classes=CLASSES)
    rec = ins.records[heat.layer]
    want, n, outside = slow_heat(rec, L, cls, slow_nodes)
    assert heat.positions == n > 0 and heat.class_name == CLASSES[cls] and heat.labels == "truth"
    assert np.abs(heat.heat - want / n).max() < TOL and heat.outside == pytest.approx(outside / n, abs=TOL)
    assert heat.heat.sum() == pytest.approx(1 - heat.outside, abs=TOL)
    flow = context_flow(ins, L, labels_from="truth", classes=CLASSES)
    assert heat.outside == pytest.approx(flow.row(cls)["outside"], abs=TOL)
    assert np.array_equal(heat.mask, L == cls)


def test_class_heat_of_nonlocal_is_the_upsampled_mean_attention(scenes):
    model = small_model("nonlocal")
    sc = scenes[0]
    ins = run(model, sc)
    L = sc.label
    cls = CLASSES.index("sky")
    heat = class_heat(ins, L, cls, labels_from="truth", classes=CLASSES)
    rec = ins.records[heat.layer]
    h, w = rec.feature_size
    rows = [slow_attention(rec, iy, ix) for iy in range(h) for ix in range(w) if label_at(L, iy, ix, (h, w)) == cls]
    mean = torch.tensor(np.mean(rows, axis=0)).view(1, 1, h, w)
    up = F.interpolate(mean, size=L.shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    assert heat.positions == len(rows) > 0 and heat.outside == 0.0
    assert np.abs(heat.heat - up / up.sum()).max() < TOL and heat.heat.sum() == pytest.approx(1)


def test_a_class_without_positions_has_an_empty_heat_map(scenes):
    ins = run(small_model("nonlocal"), scenes[0])
    L = np.zeros(SIZE, np.uint8)
    heat = class_heat(ins, L, "boat", labels_from="truth", classes=CLASSES)
    assert heat.positions == 0 and not heat.heat.any() and not heat.mask.any()
    assert set(context_flow(ins, L, labels_from="truth", classes=CLASSES).to_json()["matrix"]) == {"sky"}


def test_default_layer_is_the_models_first_and_another_can_be_chosen():
    torch.manual_seed(0)
    model = torch.nn.Sequential(DGMN(8, dilations=(1,)), DGMN(8, dilations=(2,))).eval()
    ins = Inspector(model)
    ins.run(torch.randn(1, 8, 6, 7))
    L = torch.randint(0, 3, (6, 7))
    assert context_layers(ins) == ["0", "1"]
    first = context_flow(ins, L, labels_from="truth", classes=["a", "b", "c"])
    second = context_flow(ins, L, labels_from="truth", classes=["a", "b", "c"], layer="1")
    assert first.layer == "0" and second.layer == "1" and not torch.allclose(first.sums, second.sums)


def test_classes_default_to_the_model_card(scenes):
    model = small_model("nonlocal")
    model.card = {"classes": CLASSES}
    ins = run(model, scenes[0])
    assert context_flow(ins, scenes[0].label, labels_from="truth").classes == tuple(CLASSES)


def test_bad_input_is_refused_with_a_clear_message(scenes):
    sc = scenes[0]
    ins = run(small_model("nonlocal"), sc)
    kw = dict(labels_from="truth", classes=CLASSES)
    with pytest.raises(ValueError, match=r"unknown class 'castle'; choose one of: sky, water"):
        class_heat(ins, sc.label, "castle", **kw)
    with pytest.raises(ValueError, match=r"unknown class 8"):
        class_heat(ins, sc.label, 8, **kw)
    with pytest.raises(ValueError, match=r"label map is \(64, 64\) but the image the inspector ran is \(96, 128\)"):
        context_flow(ins, np.zeros((64, 64), np.uint8), **kw)
    with pytest.raises(ValueError, match=r"must be \(H, W\) class indices"):
        context_flow(ins, np.zeros((1, 96, 128), np.uint8), **kw)
    with pytest.raises(ValueError, match="holds 9, which is neither a class index"):
        context_flow(ins, np.full(SIZE, 9), **kw)
    with pytest.raises(ValueError, match="labels_from must be 'truth'"):
        context_flow(ins, sc.label, labels_from="gt", classes=CLASSES)
    with pytest.raises(ValueError, match="'nope' is not a context layer of this model; choose one of: context"):
        context_flow(ins, sc.label, layer="nope", **kw)
    with pytest.raises(ValueError, match="no card naming its classes"):
        context_flow(ins, sc.label, labels_from="truth")
    with pytest.raises(ValueError, match="has no DGMN or Non-local layer"):
        context_flow(run(small_model("none"), sc), sc.label, **kw)
    with pytest.raises(ValueError, match=r"call inspector.run\(image\) first"):
        context_flow(Inspector(small_model("nonlocal")), sc.label, **kw)


def test_vectorised_rounding_is_nearest_index():
    v = torch.tensor([-3.0, -0.5, -0.49, 0.5, 1.5, 2.5, 3.49999, 3.5, 4.5, 94.5, 95.5, 96.7, 1e9], dtype=torch.float64)
    iy, ix = cf._nearest(v, v, (96, 128))
    assert [(int(a), int(b)) for a, b in zip(iy, ix)] == [nearest_index(float(t), float(t), (96, 128)) for t in v]


def test_flow_from_a_hand_built_record_is_exact():
    """A 1×2 map, one rate of K = 1 node per position: the shares and sources are known by hand."""
    from dgmn.inspect.inspector import DGMNRecord
    from dgmn.modules import RateGraph

    ins = Inspector(torch.nn.Identity())
    off = torch.tensor([[[0.0, 0.0]], [[1.0, -5.0]]])  # (2K, h, w): position 0 walks to (0, 1), position 1 walks out
    g1 = RateGraph(1, off, None, None, torch.tensor([[[0.5, 2.0]]]))
    g2 = RateGraph(2, torch.zeros(2, 1, 2), None, None, torch.tensor([[[-1.5, 2.0]]]))  # stays in place
    ins.records["x"] = DGMNRecord(1, 1, (1, 2), iterations=[[g1, g2]])
    ins.layers["x"] = torch.nn.Identity()
    L = np.array([[0, 0, 1, 1]])  # image 1×4: position 0 covers class 0, position 1 covers class 1
    flow = context_flow(ins, L, labels_from="truth", classes=["a", "b"])
    assert flow.row("a") == pytest.approx({"a": 0.75, "b": 0.25, "outside": 0.0})
    assert flow.row("b") == pytest.approx({"a": 0.0, "b": 0.5, "outside": 0.5})
