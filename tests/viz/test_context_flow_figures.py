import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from dgmn.data import CLASSES, PALETTE, ContextScenes, to_tensor
from dgmn.inspect import Inspector
from dgmn.inspect.context_flow import ClassHeat, ContextFlow, class_heat, context_flow
from dgmn.models import build_segmenter
from dgmn.viz import flow_bar_figure, flow_heat_figure

PAL = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def hand_heat(H=12, W=16, positions=3, outside=0.25):
    heat = np.zeros((H, W))
    heat[2, 3], heat[5, 9] = 0.5, 0.25
    mask = np.zeros((H, W), bool)
    mask[4:8, 6:12] = True
    return ClassHeat("context", "truth", "b", 1, heat, mask, positions, outside)


def hand_flow(ignore=0.0):
    sums = torch.tensor([[3.0, 1.0, 0.0, 0.0, 0.0], [0.5, 1.0, 0.25, 0.25 - ignore, ignore], [0, 0, 0, 0, 0]], dtype=torch.float64)
    return ContextFlow("context", "prediction", ("a", "b", "c"), sums, torch.tensor([4, 2, 0]))


def traces(fig, kind):
    return [t for t in fig.data if isinstance(t, kind)]


def test_heat_figure_shows_the_shares_and_outlines_the_class():
    h = hand_heat()
    fig = flow_heat_figure(np.zeros((12, 16, 3), np.uint8), h, PAL)
    (heat,) = traces(fig, go.Heatmap)
    z = np.asarray(heat.z, float)
    assert z.shape == (12, 16) and heat.dx == 1 and heat.x0 == 0
    assert z[2, 3] == 0.5 and z[5, 9] == 0.25 and np.isnan(z).sum() == 12 * 16 - 2  # no message: clear
    outline = traces(fig, go.Contour)
    assert np.array_equal(np.asarray(outline[-1].z), h.mask.astype(np.float32))
    assert outline[-1].colorscale[0][1] == "rgb(0,255,0)" and outline[-1].name == "b pixels"
    assert "ground-truth labels" in fig.layout.title.text and "3 positions" in fig.layout.title.text and "25% from outside" in fig.layout.title.text


def test_heat_figure_of_a_large_image_sums_blocks():
    H, W = 600, 300
    rng = np.random.default_rng(0)
    heat = (0.5 + rng.random((H, W))) * (rng.random((H, W)) < 0.01)  # every block holds 0 or ≥ 0.5: none falls under 1%
    mask = np.zeros((H, W), bool)
    mask[100:200, 50:60] = True
    fig = flow_heat_figure(np.zeros((H, W, 3), np.uint8), ClassHeat("l", "prediction", "a", 0, heat, mask, 7, 0.0), PAL)
    (hm,) = traces(fig, go.Heatmap)
    z = np.asarray(hm.z, float)
    assert z.shape == (200, 100) and hm.dx == 3 and hm.x0 == 1
    assert np.nansum(z) == pytest.approx(heat.sum()) and "predicted labels" in fig.layout.title.text
    assert np.asarray(traces(fig, go.Contour)[0].z).shape == (200, 100)


def test_heat_figure_of_a_class_without_positions_says_so():
    fig = flow_heat_figure(np.zeros((12, 16, 3), np.uint8), hand_heat(positions=0), PAL)
    assert not traces(fig, go.Heatmap) and "no feature position is labelled b" in fig.layout.annotations[0].text


def test_heat_figure_refuses_an_image_of_another_size():
    with pytest.raises(ValueError, match="must have the same"):
        flow_heat_figure(np.zeros((10, 16, 3), np.uint8), hand_heat(), PAL)


def test_bar_figure_is_the_flow_row_in_class_colours():
    fig = flow_bar_figure(hand_flow(), "b", PAL)
    (bar,) = fig.data
    assert list(bar.x) == ["a", "b", "c", "outside"] and np.allclose(bar.y, [0.25, 0.5, 0.125, 0.125])
    assert list(bar.marker.color) == ["rgb(255,0,0)", "rgb(0,255,0)", "rgb(0,0,255)", "rgb(40,40,40)"]
    assert "2 positions" in fig.layout.title.text and "predicted labels" in fig.layout.title.text
    with_ignore = flow_bar_figure(hand_flow(ignore=0.125), 1, PAL).data[0]
    assert list(with_ignore.x)[-1] == "ignore" and np.allclose(with_ignore.y, [0.25, 0.5, 0.125, 0.0625, 0.0625])


def test_bar_figure_of_an_empty_row_and_of_an_unknown_class():
    fig = flow_bar_figure(hand_flow(), "c", PAL)
    assert list(fig.data[0].y) == [0, 0, 0, 0] and "no feature position" in fig.layout.annotations[0].text
    with pytest.raises(ValueError, match="unknown class 'z'; choose one of: a, b, c"):
        flow_bar_figure(hand_flow(), "z", PAL)


@pytest.mark.parametrize("context", ["dgmn", "nonlocal"])
def test_figures_of_a_real_model(context):
    torch.manual_seed(0)
    cfg = dict(dilations=(1, 3), groups=4) if context == "dgmn" else {}
    model = build_segmenter("small", context, 8, channels=16, backbone_cfg={"width": 16}, **cfg).eval()
    sc = ContextScenes(seed=2, size=(64, 96)).scene(0)
    ins = Inspector(model)
    ins.run(to_tensor(sc.image))
    heat = class_heat(ins, sc.label, "grass", labels_from="truth", classes=CLASSES)
    fig = flow_heat_figure(sc.image, heat, PALETTE)
    z = np.asarray(traces(fig, go.Heatmap)[0].z, float)
    shown = heat.heat >= 0.01 * heat.heat.max()  # cells under 1% of the largest are left clear
    assert np.array_equal(~np.isnan(z), shown) and np.allclose(z[shown], heat.heat[shown])
    assert heat.heat.sum() == pytest.approx(1 - heat.outside) and heat.positions > 0
    bar = flow_bar_figure(context_flow(ins, sc.label, labels_from="truth", classes=CLASSES), "grass", PALETTE)
    assert sum(bar.data[0].y) == pytest.approx(1)


def test_class_names_are_shown_as_written_not_as_markup():
    evil = "<img src=x onerror=alert(1)>%{y}"
    flow = hand_flow()
    flow.classes = ("a", evil, "c")
    bar = flow_bar_figure(flow, evil, PAL)
    assert "<img" not in bar.layout.title.text and "<img" not in bar.data[0].x[1] and "%{y}" not in bar.data[0].hovertemplate.split("←")[0]
    h = hand_heat()
    h.class_name = evil
    fig = flow_heat_figure(np.zeros((12, 16, 3), np.uint8), h, PAL)
    assert "<img" not in fig.layout.title.text and all("<img" not in (t.name or "") for t in fig.data)
