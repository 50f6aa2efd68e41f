import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest

import app
from dgmn.data import ContextScenes
from dgmn.inspect.explorer import Explorer, prepare_image, InputError

NAMES = ["dgmn-full", "fcn-nonlocal", "fcn"]


@pytest.fixture()
def handlers(tiny_checkpoints, tmp_path):
    import cv2

    img, truth = scene()
    path = tmp_path / "example.png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return app.Handlers(Explorer(tiny_checkpoints), examples=[(str(path), truth)])


def select(x, y):
    return gr.SelectData(None, {"index": [x, y], "value": None, "selected": True})


def scene():
    sc = ContextScenes(seed=5, size=(96, 160)).scene(0)
    return sc.image, sc.label


def test_upload_then_click_updates_every_panel(handlers):
    img, truth = scene()
    analysis, shown, status, *figs = handlers.analyse(img, NAMES)
    assert "Click a pixel" in status and len(figs) == 9 and np.array_equal(shown, img)
    assert all(isinstance(figs[3 * i + 1], go.Figure) and isinstance(figs[3 * i + 2], go.Figure) for i in range(3))
    status, answer, last, *context = handlers.click(analysis, NAMES, 0.5, True, None, select(70, 40))
    assert status.startswith("Pixel (x=70, y=40)") and "truth:" in status
    assert set(answer) == set(NAMES)
    nodes = answer["dgmn-full"]["layers"]["context"]
    assert nodes["type"] == "dgmn" and len(nodes["nodes"]) == 18
    assert answer["fcn-nonlocal"]["layers"]["context"]["type"] == "nonlocal" and answer["fcn"]["layers"] == {}
    assert all(isinstance(f, go.Figure) for f in context)
    names = {t.name for t in context[0].data}
    assert {"rate 1", "rate 3", "clicked pixel"} <= names


def test_click_before_any_image_and_outside_the_image(handlers):
    status, answer, *_ = handlers.click(None, NAMES, 0.5, True, None, select(3, 3))
    assert status == "Load or pick an image first, then click on it." and answer is None
    analysis, *_ = handlers.analyse(scene()[0], NAMES)
    status, answer, *_ = handlers.click(analysis, NAMES, 0.5, True, None, select(500, 3))
    assert "outside the 160×96 image" in status and answer is None
    # a following valid click still works
    assert handlers.click(analysis, NAMES, 0.5, True, None, select(5, 5))[0].startswith("Pixel")


def test_downscaled_upload_is_shown_as_analysed(handlers):
    big = np.repeat(np.repeat(scene()[0], 8, 0), 8, 1)  # 768×1280 → downscaled to ≤ 1024
    analysis, shown, status, *_ = handlers.analyse(big, ["fcn"])
    assert "downscaled from 1280×768" in status and shown.shape == (614, 1024, 3)
    status, answer, *_ = handlers.click(analysis, ["fcn"], 0.5, True, None, select(1023, 613))
    assert status.startswith("Pixel (x=1023, y=613)")


def test_bad_inputs_get_messages(handlers):
    assert handlers.analyse(None, NAMES)[2] == "Load or pick an image first."
    assert "no model selected" in handlers.analyse(scene()[0], [])[2]
    assert "is not a model name" in handlers.analyse(scene()[0], ["../etc"])[2]
    assert "no model named 'resnet'" in handlers.analyse(scene()[0], ["resnet"])[2]
    assert "only 1×5 pixels" in handlers.analyse(np.zeros((5, 1, 3), np.uint8), NAMES)[2]
    img, note = prepare_image(np.zeros((40, 30, 4), np.uint8))
    assert img.shape == (40, 30, 3) and "transparency" in note
    with pytest.raises(InputError):
        prepare_image(np.zeros((4, 4, 4, 4)))


def test_rates_toggle_attribution_export_and_diagnostics(handlers, tmp_path):
    img, truth = scene()
    analysis, *_ = handlers.analyse(img, NAMES)
    status, answer, last, *context = handlers.click(analysis, NAMES, 0.5, True, ["rate #2"], select(70, 40))
    assert {t.name for t in context[0].data if t.name and t.name.startswith("rate")} == {"rate 3"}
    # attribution needs a click on the current image first
    assert "Click a pixel" in handlers.attribute(analysis, NAMES, None, "Saliency")[0]
    seen = []
    out = handlers.attribute(analysis, NAMES, last, "Integrated Gradients (slower)", progress=lambda f, desc=None: seen.append(f))
    assert out[0].startswith("Integrated Gradients") and all(isinstance(f, go.Figure) for f in out[1:])
    assert seen and max(seen) <= 1.0 and seen[-1] == pytest.approx(1.0)
    msg, files = handlers.export(analysis, NAMES, last)
    assert "Exported" in msg and [f.rsplit(".", 1)[1] for f in files] == ["json", "html"]
    import json

    assert json.loads(open(files[0]).read())["models"]["dgmn-full"]["class"] == answer["dgmn-full"]["class"]
    assert "plotly" in open(files[1]).read()[:5_000_000]
    diag = handlers.diagnostics(analysis, NAMES)
    assert isinstance(diag[0], go.Figure) and diag[1] is None and diag[2] is None
    # a stale click (from another image) is not used for the new image
    other, *_ = handlers.analyse(ContextScenes(seed=6, size=(96, 160)).scene(0).image, NAMES)
    assert "Click a pixel" in handlers.attribute(other, NAMES, last, "Saliency")[0]
    assert "Click a pixel first" in handlers.export(other, NAMES, last)[0]


def test_layer_picker(handlers):
    analysis, *_ = handlers.analyse(scene()[0], NAMES)
    upd = handlers.layer_choices(analysis)
    assert upd["choices"][0] == app.FIRST_LAYER and "context" in upd["choices"]
    status, answer, *_ = handlers.click(analysis, NAMES, 0.5, True, None, select(10, 10), "context")
    assert answer["dgmn-full"]["layers"]["context"]["alpha"] == pytest.approx(1.0)
    assert answer["fcn"]["layers"] == {}


def test_example_thumbnails_analyse_the_example(handlers):
    def pick(i):
        return gr.SelectData(None, {"index": i, "value": None, "selected": True})

    analysis, shown, status, *figs = handlers.pick_example(NAMES, None, pick(0))
    assert "Click a pixel" in status and shown.shape == scene()[0].shape
    assert analysis.truth is not None and all(figs[3 * i + 2] is not None for i in range(3))  # errors vs truth
    kept, _, status, *rest = handlers.pick_example(NAMES, analysis, pick(7))
    assert kept is analysis and "not available" in status and all(isinstance(r, dict) for r in rest)
