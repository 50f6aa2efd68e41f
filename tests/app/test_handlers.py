"""The app's event handlers, called directly (as Gradio would), on tiny checkpoints."""
import json

import numpy as np
import plotly.graph_objects as go
import pytest

from dgmn.app.sections import FIRST_LAYER
from dgmn.data import ContextScenes
from dgmn.inspect.explorer import InputError, prepare_image
from dgmn.inspect.records import Inspection

from .conftest import plots, select

NAMES = ["dgmn-full", "fcn-nonlocal", "fcn"]


def scene():
    sc = ContextScenes(seed=5, size=(96, 160)).scene(0)
    return sc.image, sc.label


@pytest.fixture()
def page(make_page, tmp_path):
    import cv2

    img, truth = scene()
    path = tmp_path / "example.png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return make_page([(str(path), truth)])


def analyse(page, source, names, current=None):
    out = page.handlers["analyse"](source, names, current)
    return out.get(page.analysis), out


def click(page, analysis, x, y, names=NAMES, rates=None, layer=None):
    return page.handlers["click"](analysis, names, 0.5, True, rates, layer, select([x, y]))


def test_upload_then_click_updates_every_panel(page):
    img, truth = scene()
    analysis, out = analyse(page, img, NAMES)
    assert "Click a pixel" in out[page.status] and np.array_equal(out[page.image], img)
    assert all(isinstance(f, go.Figure) for f in plots(out, "seg") + plots(out, "dis")) and len(plots(out, "seg")) == 3
    assert plots(out, "context") == [None, None, None]  # a new image blanks the graphs until a click
    out = click(page, analysis, 70, 40)
    assert out[page.status].startswith("Pixel (x=70, y=40)") and "truth:" in out[page.status]
    answer = out[page.inspection_json]
    assert set(answer) == set(NAMES) and isinstance(out[page.last_click], Inspection)
    nodes = answer["dgmn-full"]["layers"]["context"]
    assert nodes["type"] == "dgmn" and len(nodes["nodes"]) == 18
    assert answer["fcn-nonlocal"]["layers"]["context"]["type"] == "nonlocal" and answer["fcn"]["layers"] == {}
    context = plots(out, "context")
    assert all(isinstance(f, go.Figure) for f in context)
    assert {"rate 1", "rate 3", "clicked pixel"} <= {t.name for t in context[0].data}


def test_click_before_any_image_and_outside_the_image(page):
    out = click(page, None, 3, 3)
    assert out[page.status] == "Load or pick an image first, then click on it." and out[page.inspection_json] is None
    analysis, _ = analyse(page, scene()[0], NAMES)
    out = click(page, analysis, 500, 3)
    assert "outside the 160×96 image" in out[page.status] and out[page.inspection_json] is None
    assert click(page, analysis, 5, 5)[page.status].startswith("Pixel")  # a following valid click still works


def test_downscaled_upload_is_shown_as_analysed(page):
    big = np.repeat(np.repeat(scene()[0], 8, 0), 8, 1)  # 768×1280 → downscaled to ≤ 1024
    analysis, out = analyse(page, big, ["fcn"])
    assert "downscaled from 1280×768" in out[page.status] and out[page.image].shape == (614, 1024, 3)
    assert click(page, analysis, 1023, 613, ["fcn"])[page.status].startswith("Pixel (x=1023, y=613)")


def test_bad_inputs_get_messages(page):
    assert analyse(page, None, NAMES)[1][page.status] == "Load or pick an image first."
    assert "no model selected" in analyse(page, scene()[0], [])[1][page.status]
    assert "is not a model name" in analyse(page, scene()[0], ["../etc"])[1][page.status]
    assert "no model named 'resnet'" in analyse(page, scene()[0], ["resnet"])[1][page.status]
    assert "only 1×5 pixels" in analyse(page, np.zeros((5, 1, 3), np.uint8), NAMES)[1][page.status]
    img, note = prepare_image(np.zeros((40, 30, 4), np.uint8))
    assert img.shape == (40, 30, 3) and "transparency" in note
    with pytest.raises(InputError):
        prepare_image(np.zeros((4, 4, 4, 4)))


def test_rates_toggle_attribution_export_and_diagnostics(page):
    img, truth = scene()
    analysis, _ = analyse(page, img, NAMES)
    out = click(page, analysis, 70, 40, rates=["rate #2"])
    assert {t.name for t in plots(out, "context")[0].data if t.name and t.name.startswith("rate")} == {"rate 3"}
    last = out[page.last_click]
    # attribution needs a click on the current image first
    assert "Click a pixel" in page.handlers["attribute"](analysis, NAMES, None, "Saliency")[page.status]
    seen = []
    res = page.handlers["attribute"](analysis, NAMES, last, "Integrated Gradients (slower)",
                                     progress=lambda f, desc=None: seen.append(f))
    assert res[page.status].startswith("Integrated Gradients") and all(isinstance(f, go.Figure) for f in plots(res, "attr"))
    assert seen and max(seen) <= 1.0 and seen[-1] == pytest.approx(1.0)
    res = page.handlers["export"](analysis, NAMES, last)
    files = [v for v in res.values() if isinstance(v, list)][0]
    assert "Exported" in res[page.status] and [f.rsplit(".", 1)[1] for f in files] == ["json", "html"]
    assert json.loads(open(files[0]).read())["models"]["dgmn-full"]["class"] == last["dgmn-full"]["class"]
    assert "plotly" in open(files[1]).read()[:5_000_000]
    diag = plots(page.handlers["diagnostics"](analysis, NAMES), "diag")
    assert isinstance(diag[0], go.Figure) and diag[1] is None and diag[2] is None
    # a stale click (from another image) is not used for the new image
    other, _ = analyse(page, ContextScenes(seed=6, size=(96, 160)).scene(0).image, NAMES)
    assert "Click a pixel" in page.handlers["attribute"](other, NAMES, last, "Saliency")[page.status]
    assert "Click a pixel first" in page.handlers["export"](other, NAMES, last)[page.status]


def test_layer_picker(page):
    analysis, _ = analyse(page, scene()[0], NAMES)
    upd = page.handlers["layers"](analysis)[page.layer]
    assert upd["choices"][0] == FIRST_LAYER and "context" in upd["choices"]
    answer = click(page, analysis, 10, 10, layer="context")[page.inspection_json]
    assert answer["dgmn-full"]["layers"]["context"]["alpha"] == pytest.approx(1.0)
    assert answer["fcn"]["layers"] == {}


def test_example_thumbnails_analyse_the_example(page):
    out = page.handlers["example"](NAMES, None, select(0))
    analysis = out[page.analysis]
    assert "Click a pixel" in out[page.status] and out[page.image].shape == scene()[0].shape
    assert analysis.truth is not None and all(f is not None for f in plots(out, "dis"))  # errors vs truth
    out = page.handlers["example"](NAMES, analysis, select(7))
    assert set(out) == {page.status} and "not available" in out[page.status]  # everything else stays as it was
