"""Figures of the deformable convolution's points and the criss-cross attention (issue 15): pure functions of
the inspector's records; positions from the records' image coordinates; outside strings shown as text."""
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from dgmn.inspect import Inspector
from dgmn.inspect.records import ModelAnswer
from dgmn.models import build_segmenter
from dgmn.viz import answer_figure, criss_cross_figure, deformable_figure, layer_figure
from dgmn.viz.criss_cross import cross_outline

IMG = (np.random.default_rng(0).random((64, 80, 3)) * 255).astype(np.uint8)


def query(context, y=30, x=40):
    torch.manual_seed(0)
    m = build_segmenter("small", context, 8, channels=16, backbone_cfg={"width": 16}).eval()
    if context == "dcn":
        with torch.no_grad():
            m.context.offset_mask.bias[:18].uniform_(-4, 4)  # offsets: some taps move off the map
    ins = Inspector(m)
    ins.run(torch.randn(3, 64, 80))
    return ins.query(y, x)["context"]


def test_deformable_figure_grid_arrows_and_points():
    q = query("dcn", 4, 4)
    fig = deformable_figure(IMG, q, (4, 4), title="fcn-dcn")
    points = next(t for t in fig.data if (t.name or "").startswith("sampled points"))
    grid = next(t for t in fig.data if (t.name or "").startswith("grid"))
    assert len(points.x) == 9 and len(grid.x) == 9
    assert np.allclose(points.y, [n.sampled_image[0] for n in q.nodes]) and np.allclose(points.x, [n.sampled_image[1] for n in q.nodes])
    assert np.allclose(grid.y, [n.uniform_image[0] for n in q.nodes])
    assert list(points.marker.symbol) == ["circle" if n.inside else "circle-open" for n in q.nodes] and not all(n.inside for n in q.nodes)
    sizes = np.array(points.marker.size)
    shares = np.array([n.share for n in q.nodes])
    assert np.array_equal(np.argsort(sizes, kind="stable"), np.argsort(shares, kind="stable"))  # area grows with the share
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    assert len(arrows) == sum(abs(n.sampled[0] - n.uniform[0]) + abs(n.sampled[1] - n.uniform[1]) > 1e-6 for n in q.nodes) > 0
    assert {(a.ax, a.ay, a.x, a.y) for a in arrows} <= {(n.uniform_image[1], n.uniform_image[0], n.sampled_image[1], n.sampled_image[0]) for n in q.nodes}
    assert "modulation mask" in points.text[0] and "offset (dy, dx)" in points.text[0]
    assert not deformable_figure(IMG, q, (4, 4), offsets=False).layout.annotations


def test_criss_cross_figure_heat_top_and_cross():
    q = query("ccnet")
    fig = criss_cross_figure(IMG, q, (30, 40), top=5)
    heat = next(t for t in fig.data if isinstance(t, go.Heatmap))
    assert np.allclose(np.array(heat.z), q.attention)
    top = next(t for t in fig.data if t.name and t.name.startswith("top"))
    assert np.allclose(top.x, [t.image[1] for t in q.top[:5]])
    outline = next(t for t in fig.data if t.name and t.name.startswith("pass 1"))
    xs, ys = np.array(outline.x), np.array(outline.y)
    iy, ix = q.feature_pixel  # cells of 8×8 image pixels (stride 8): row iy spans y ∈ [8·iy − ½, 8·iy + 7.5]
    assert (xs[0], ys[0]) == (xs[-1], ys[-1]) and len(xs) == 13
    assert xs.min() == -0.5 and xs.max() == 79.5 and ys.min() == -0.5 and ys.max() == 63.5
    assert set(np.round(ys, 6)) == {-0.5, 63.5, 8 * iy - 0.5, 8 * iy + 7.5}
    assert set(np.round(xs, 6)) == {-0.5, 79.5, 8 * ix - 0.5, 8 * ix + 7.5}


def test_cross_outline_of_a_corner_pixel():
    xs, ys = cross_outline((0, 0), (2, 3), (20, 30))
    assert min(xs) == -0.5 and max(xs) == 29.5 and min(ys) == -0.5 and max(ys) == 19.5


@pytest.mark.parametrize("context,kind", [("dcn", "deformable conv"), ("ccnet", "criss-cross attention, 2 passes")])
def test_layer_and_answer_figures_dispatch_and_escape_names(context, kind):
    q = query(context)
    name = "<img src=x onerror=alert(1)>"
    fig = layer_figure(IMG, name, "context", q, (30, 40))
    assert kind in fig.layout.title.text and "<img" not in fig.layout.title.text and "&lt;img" in fig.layout.title.text
    answer = ModelAnswer("sky", 0, layers={"context": q})
    assert answer_figure(IMG, "m", answer, (30, 40), rates=[1]).layout.title.text == layer_figure(IMG, "m", "context", q, (30, 40)).layout.title.text
