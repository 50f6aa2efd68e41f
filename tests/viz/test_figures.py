import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from dgmn import DGMN
from dgmn.data import CLASSES, PALETTE
from dgmn.inspect import Inspector
from dgmn.models import build_segmenter
from dgmn.viz import attention_figure, attribution_figure, diagnostics_figure, disagreement_figure, nodes_figure, segmentation_figure
from dgmn.viz.segmentation import colourise

IMG = (np.random.default_rng(0).random((64, 80, 3)) * 255).astype(np.uint8)


def inspected(context="dgmn"):
    torch.manual_seed(0)
    cfg = dict(dilations=(1, 2), groups=4) if context == "dgmn" else {}
    m = build_segmenter("small", context, 8, channels=16, backbone_cfg={"width": 16}, **cfg).eval()
    if context == "dgmn":
        with torch.no_grad():
            for c in m.context.walk_convs:
                c.bias.uniform_(-1.5, 1.5)
    ins = Inspector(m)
    ins.run(torch.randn(3, 64, 80))
    return ins


def test_nodes_figure_has_one_marker_per_node_and_walk_arrows():
    ins = inspected()
    q = ins.query(30, 40)["context"]
    fig = nodes_figure(IMG, q, (30, 40))
    markers = [t for t in fig.data if isinstance(t, go.Scatter) and t.name and t.name.startswith("rate")]
    assert [len(t.x) for t in markers] == [9, 9]
    walks = [t for t in fig.data if isinstance(t, go.Scatter) and t.mode == "lines"]
    assert walks and all(len(t.x) % 3 == 0 for t in walks)
    # marker positions are the reported sampled positions in image coordinates
    first = [n for n in q["nodes"] if n["rate"] == 0]
    assert np.allclose(markers[0].y, [(n["sampled"][0] + 0.5) * 8 - 0.5 for n in first])
    assert len([t for t in nodes_figure(IMG, q, (30, 40), rates=[1], walks=False).data if t.name and t.name.startswith("rate")]) == 1


def test_attention_figure_stretches_the_map_over_the_image():
    q = inspected("nonlocal").query(10, 70)["context"]
    fig = attention_figure(IMG, q, (10, 70))
    heat = next(t for t in fig.data if isinstance(t, go.Heatmap))
    assert np.asarray(heat.z).shape == (8, 10) and heat.dx == 8 and heat.dy == 8


def test_segmentation_and_disagreement():
    lab = np.zeros((64, 80), np.int64)
    lab[:, 40:] = 5
    fig = segmentation_figure(IMG, lab, CLASSES, PALETTE, 1.0)
    assert {t.name for t in fig.data[1:] if t.name != "hover"} == {"sky", "boathouse"}
    assert fig.data[0].source.startswith("data:image/png;base64,")
    import base64

    import cv2

    png = np.frombuffer(base64.b64decode(fig.data[0].source.split(",", 1)[1]), np.uint8)
    shown = cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(shown[0, 79], PALETTE[5]) and np.array_equal(shown[0, 0], PALETTE[0])
    pred = lab.copy()
    pred[:10] = 4
    d = disagreement_figure(IMG, pred, lab, CLASSES)
    assert "15.6% of pixels" in d.layout.title.text
    assert np.array_equal(colourise(np.array([[255]]), PALETTE)[0, 0], [0, 0, 0])
    with pytest.raises(ValueError, match="differ in size"):
        segmentation_figure(IMG, lab[:10], CLASSES, PALETTE)


def test_attribution_and_diagnostics():
    a = np.zeros((64, 80))
    a[30, 40] = 3.0
    fig = attribution_figure(IMG, a, (30, 40))
    assert np.asarray(next(t for t in fig.data if isinstance(t, go.Heatmap)).z).max() == 1.0
    ins = Inspector(DGMN(8, dilations=(1, 3)))
    ins.run(torch.randn(1, 8, 9, 9))
    d = diagnostics_figure(ins.diagnostics("DGMN"))
    assert len(d.data) == 2 and "outside" in d.data[0].name
