"""The app's newer rows through their handlers: what-if, probabilities, new scene and links, photos, cost."""
import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest

from dgmn.data import ContextScenes
from dgmn.data.mixed_scene import mixed_scene

from .conftest import plots, select

NAMES = ["dgmn-full", "fcn-nonlocal", "fcn"]


@pytest.fixture()
def page(make_page):
    return make_page()


class Request:
    def __init__(self, **query):
        self.query_params = query


def clicked(page, names=NAMES, seed=7, x=60, y=40):
    out = page.handlers["new_scene"](seed, names, None)
    analysis = out[page.analysis]
    click = page.handlers["click"](analysis, names, 0.5, True, None, None, select([x, y]))
    return analysis, click


def test_click_shows_probabilities_and_fills_the_node_chooser(page):
    analysis, click = clicked(page)
    probs = plots(click, "prob")
    assert all(isinstance(f, go.Figure) for f in probs)
    answer = click[page.inspection_json]
    assert all(abs(sum(answer[n]["probabilities"].values()) - 1) < 1e-6 for n in NAMES)
    nodes = page.handlers["nodes"](click[page.last_click])
    choices = list(nodes.values())[0]["choices"]
    assert len(choices) == 12 and choices[0][0].startswith("rate ") and "% of the message" in choices[0][0]


def test_what_if_row_at_the_pixel_and_over_the_image(page):
    analysis, click = clicked(page)
    last = click[page.last_click]
    args = (analysis, NAMES, last, ["rate #2"], [], False, False, False, False, 0, 96, 256, 128, "mean")
    out = page.handlers["what_if"]("pixel", *args)
    summary = next(v for k, v in out.items() if getattr(k, "elem_id", None) == "wi-summary")
    assert "dgmn-full:" in summary and "fcn-nonlocal: skipped" in summary and "needs a DGMN layer" in summary
    assert isinstance(plots(out, "wi-bars")[0], go.Figure) and plots(out, "wi-bars")[1] is None
    out = page.handlers["what_if"]("image", analysis, NAMES, last, [], [], False, False, True, True, 0, 96, 256, 128, "blur")
    assert all(isinstance(f, go.Figure) for f in plots(out, "wi-after")) and all(isinstance(f, go.Figure) for f in plots(out, "wi-before"))
    summary = next(v for k, v in out.items() if getattr(k, "elem_id", None) == "wi-summary")
    assert "IoU:" in summary  # the scene's truth is known
    assert "Click a pixel" in page.handlers["what_if"]("pixel", analysis, NAMES, None, [], [], True, False, False, False, 0, 0, 1, 1, "mean")[page.status]
    assert "at least one edit" in page.handlers["what_if"]("pixel", *args[:3], [], [], False, False, False, False, 0, 0, 1, 1, "mean")[page.status]


def test_new_scene_link_and_restore(page):
    analysis, click = clicked(page, seed=1234)
    scene = mixed_scene(1234)
    assert np.array_equal(analysis.image, scene.image) and np.array_equal(analysis.truth, scene.truth)
    link = page.handlers["copy_link"](1234, click[page.last_click], analysis, ["dgmn-full", "fcn"])
    query = next(v for k, v in link.items() if k is page.link)
    assert query == "?scene=1234&x=60&y=40&models=dgmn-full,fcn"
    restored = page.handlers["load"](NAMES, Request(scene="1234", x="60", y="40", models="dgmn-full,fcn"))
    assert restored[page.models] == ["dgmn-full", "fcn"] and restored[page.status].startswith("Pixel (x=60, y=40)")
    assert np.array_equal(restored[page.analysis].image, scene.image)
    assert page.handlers["load"](NAMES, Request()) == {page.status: gr.skip()}  # nothing to restore: nothing changes
    assert "not a seed" in page.handlers["load"](NAMES, Request(scene="banana"))[page.status]
    assert "New scene" in page.handlers["copy_link"](None, None, analysis, NAMES)[page.status]
    assert "⚠" in page.handlers["new_scene"](-5, NAMES, None)[page.status]


def test_photos_get_a_sentence_per_contextscenes_model(page, tmp_path):
    photo = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    out = page.handlers["analyse"](photo, NAMES)
    note = next(v for k, v in out.items() if getattr(k, "elem_id", None) == "domain-notes")
    assert note == ""  # the tiny test checkpoints' cards name no dataset
    from dgmn.inspect.domain_notes import out_of_domain_note

    text = out_of_domain_note("dgmn-full", {"dataset": {"name": "context-scenes"}}, has_truth=False)
    assert "guesses outside what it learned" in text and "still shows where it looks" in text
    assert out_of_domain_note("dgmn-full", {"dataset": {"name": "context-scenes"}}, has_truth=True) is None


def test_cost_panel(page):
    out = page.handlers["cost"](NAMES)
    fig = next(v for v in out.values() if isinstance(v, go.Figure))
    assert {t.name for t in fig.data} == {"dgmn-full", "fcn-nonlocal"}  # fcn has no context module
    assert "has a context module" in page.handlers["cost"](["fcn"])[page.status]


def test_where_a_class_looks(page):
    analysis, click = clicked(page)
    last = click[page.last_click]
    out = page.handlers["flow"](analysis, NAMES, last, "the clicked pixel's class")
    info = next(v for k, v in out.items() if getattr(k, "elem_id", None) == "flow-info")
    assert "truth labels" in info and "fcn: no context module" in info
    heats, bars = plots(out, "flow-heat"), plots(out, "flow-bars")
    assert isinstance(heats[0], go.Figure) and isinstance(bars[1], go.Figure) and heats[2] is None
    out = page.handlers["flow"](analysis, NAMES, last, "boathouse")
    assert "**boathouse**" in next(v for k, v in out.items() if getattr(k, "elem_id", None) == "flow-info")
    assert ("class_view", "dgmn-full", "boathouse") in analysis.derived  # cached with the analysis
    choices = list(page.handlers["flow_classes"](analysis, NAMES).values())[0]["choices"]
    assert "boathouse" in choices or ("boathouse", "boathouse") in choices
    # the export carries the flow row of the clicked pixel's class
    files = next(v for v in page.handlers["export"](analysis, NAMES, last).values() if isinstance(v, list))
    import json

    doc = json.loads(open(files[0]).read())
    row = doc["context_flow"]["dgmn-full"]["row"]
    assert abs(sum(row.values()) - 1) < 1e-6 and "fcn" not in doc["context_flow"]
    assert "Where the clicked pixel's class looks" in open(files[1]).read()
