"""The deformable-convolution (fcn-dcn) and criss-cross attention (fcn-ccnet) models in the app (issue 15), through
the handlers as Gradio calls them, on tiny checkpoints saved next to the usual tiny ones: the picker lists them
(the default comparison stays dgmn-full / fcn-nonlocal / fcn), and their graph panels, probabilities, what-if,
class flow, diagnostics, export and endpoints answer."""
import json
import shutil

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from dgmn.data import ContextScenes
from dgmn.inspect.model_cards import model_cards_markdown
from dgmn.models import build_segmenter, save_model

from ..context_models import tiny_card
from .conftest import plots, select

NAMES = ["fcn-dcn", "fcn-ccnet", "dgmn-full"]
TINY = {"fcn-dcn": ("dcn", {"dilation": 1}), "fcn-ccnet": ("ccnet", {"recurrence": 2})}


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints, tmp_path_factory):
    """The tiny checkpoints and tiny fcn-dcn / fcn-ccnet ones (random weights, offsets that move, a non-zero γ)."""
    d = tmp_path_factory.mktemp("more") / "checkpoints"
    shutil.copytree(tiny_checkpoints, d)
    for name, (context, cfg) in TINY.items():
        torch.manual_seed(0)
        m = build_segmenter("small", context, 8, channels=16, backbone_cfg={"width": 16}, **cfg)
        with torch.no_grad():
            if context == "dcn":
                m.context.offset_mask.bias[:18].uniform_(-1.5, 1.5)
            else:
                m.context.gamma.fill_(1.0)
        save_model(m.eval(), d / name, tiny_card(name, context, cfg))
    return d


@pytest.fixture()
def page(make_page, checkpoints):
    return make_page(checkpoints=checkpoints)


def clicked(page, names=NAMES, x=60, y=40):
    out = page.handlers["new_scene"](7, names, None)
    analysis = out[page.analysis]
    return analysis, page.handlers["click"](analysis, names, 0.5, True, None, None, select([x, y]))


def by_id(out, elem_id):
    return next(v for k, v in out.items() if getattr(k, "elem_id", None) == elem_id)


def test_the_picker_lists_them_and_the_default_comparison_stays(page, checkpoints):
    assert {"fcn-dcn", "fcn-ccnet"} <= {c[0] if isinstance(c, tuple) else c for c in page.models.choices}
    assert page.models.value == ["dgmn-full", "fcn-nonlocal", "fcn"]
    table = model_cards_markdown(checkpoints)
    assert "deformable conv (DCNv2), dilation 1" in table and "criss-cross attention (CCNet), 2 passes" in table


def test_click_draws_their_graphs_and_probabilities(page):
    analysis, out = clicked(page)
    answer = out[page.inspection_json]
    dcn, ccnet = answer["fcn-dcn"]["layers"]["context"], answer["fcn-ccnet"]["layers"]["context"]
    assert dcn["type"] == "dcn" and len(dcn["nodes"]) == 9 and abs(sum(n["share"] for n in dcn["nodes"]) - 1) < 1e-6
    assert ccnet["type"] == "ccnet" and abs(np.sum(ccnet["attention"]) - 1) < 1e-5 and len(ccnet["top"]) == 10
    graphs = plots(out, "context")
    assert all(isinstance(f, go.Figure) for f in graphs)
    assert "deformable conv" in graphs[0].layout.title.text and any((t.name or "").startswith("sampled points") for t in graphs[0].data)
    assert "criss-cross attention" in graphs[1].layout.title.text and any(isinstance(t, go.Heatmap) for t in graphs[1].data)
    assert any((t.name or "").startswith("pass 1") for t in graphs[1].data)
    assert all(isinstance(f, go.Figure) for f in plots(out, "prob"))
    assert all(abs(sum(answer[n]["probabilities"].values()) - 1) < 1e-6 for n in NAMES)
    # the node chooser offers the DCN taps of the first model (largest share first)
    choices = list(page.handlers["nodes"](out[page.last_click]).values())[0]["choices"]
    assert len(choices) == 9 and choices[0][0].startswith("tap ") and choices[0][1].startswith("0:")
    # the walks switch hides DCN's offset arrows too
    off = page.handlers["click"](analysis, NAMES, 0.5, False, None, None, select([60, 40]))
    assert graphs[0].layout.annotations and not plots(off, "context")[0].layout.annotations


def test_what_if_applies_what_each_module_takes(page):
    analysis, out = clicked(page)
    last = out[page.last_click]
    # no walks (DCN: no offsets) and a DCN tap: DCN and DGMN take them, CCNet is skipped with a note
    res = page.handlers["what_if"]("pixel", analysis, NAMES, last, [], ["0:4"], True, False, False, False, 0, 96, 256, 128, "mean")
    summary = by_id(res, "wi-summary")
    assert "fcn-dcn:" in summary and "dgmn-full:" in summary and "fcn-ccnet: skipped" in summary and "needs a DGMN layer" in summary
    bars = plots(res, "wi-bars")
    assert isinstance(bars[0], go.Figure) and bars[1] is None and isinstance(bars[2], go.Figure)
    # no context over the whole image: every model
    res = page.handlers["what_if"]("image", analysis, NAMES, last, [], [], False, False, True, False, 0, 96, 256, 128, "mean")
    assert all(isinstance(f, go.Figure) for f in plots(res, "wi-bars") + plots(res, "wi-after"))
    assert "IoU:" in by_id(res, "wi-summary")
    # an occlusion: the DCN pixel's points after it, over its points before
    res = page.handlers["what_if"]("image", analysis, NAMES, last, [], [], False, False, False, True, 0, 96, 256, 128, "blur")
    after = plots(res, "wi-after")
    assert any((t.name or "") == "nodes before the edit" for t in after[0].data)
    assert not any((t.name or "") == "nodes before the edit" for t in after[1].data)  # CCNet: the new segmentation


def test_where_a_class_looks_diagnostics_and_export(page):
    analysis, out = clicked(page)
    last = out[page.last_click]
    res = page.handlers["flow"](analysis, NAMES, last, "sky")
    assert all(isinstance(f, go.Figure) for f in plots(res, "flow-heat") + plots(res, "flow-bars"))
    assert by_id(res, "flow-info").count("**sky**") == 3
    diag = plots(page.handlers["diagnostics"](analysis, NAMES), "diag")
    assert isinstance(diag[0], go.Figure) and diag[1] is None and isinstance(diag[2], go.Figure)
    files = next(v for v in page.handlers["export"](analysis, NAMES, last).values() if isinstance(v, list))
    doc = json.loads(open(files[0]).read())
    assert doc["models"]["fcn-dcn"]["layers"]["context"]["type"] == "dcn" and set(doc["context_flow"]) == set(NAMES)
    html = open(files[1]).read()
    assert "deformable conv" in html and "criss-cross attention" in html
    cost = next(v for v in page.handlers["cost"](NAMES).values() if isinstance(v, go.Figure))
    assert {t.name for t in cost.data} >= set(NAMES)


def test_endpoints_answer_for_them(page):
    image = ContextScenes(seed=5, size=(96, 160)).scene(1).image
    res = page.handlers["inspect_xy"](image, 100, 30, ["fcn-dcn", "fcn-ccnet"])
    assert res["fcn-dcn"]["layers"]["context"]["feature_pixel"] == [round((30 + 0.5) / 8 - 0.5), round((100 + 0.5) / 8 - 0.5)]
    assert set(res["fcn-ccnet"]["layers"]["context"]) >= {"attention", "top", "cross"}
    what = page.handlers["what_if_endpoint"](image, 100, 30, "fcn-dcn", [{"op": "no_walks"}], "pixel")
    assert what["model"] == "fcn-dcn" and abs(sum(what["after"]["probabilities"].values()) - 1) < 1e-6
    import gradio as gr

    with pytest.raises(gr.Error, match="needs a Non-local layer"):
        page.handlers["what_if_endpoint"](image, 100, 30, "fcn-dcn", [{"op": "mask_attention", "box": [0, 0, 10, 10]}], "pixel")
