"""Converted DGMN2 checkpoints in the app (issue 18): a checkpoints folder holding a converted fixture model
(tests/fixtures/dgmn2/fpn.pth, 19 Cityscapes classes) next to the tiny shipped-like ones. The picker lists it, an
analysis runs its sliding-window inference (small crops here, so a scene needs several) and says so, a click draws
its graph (every block in the layer chooser) beside ours, its 19 class probabilities work, the panels that do not
apply to it answer with one line for it and as usual for the other model, and ``inspect_xy`` answers for both
through the real server."""
import json
import shutil

import cv2
import numpy as np
import plotly.graph_objects as go
import pytest

from dgmn.convert import convert_dgmn2
from dgmn.data import ContextScenes
from dgmn.inspect.applicability import PANELS
from dgmn.inspect.domain_notes import out_of_domain_note

from ..models.dgmn2.fixtures import fixture
from .conftest import plots, select, served

NAMES = ["dgmn2-fpn", "dgmn-full"]
BLOCKS = ["stage 1, block 1", "stage 1, block 2", "stage 2, block 1", "stage 3, block 1", "stage 3, block 2", "stage 4, block 1"]


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints, tmp_path_factory):
    """The tiny checkpoints and the converted FPN fixture, its card's slide crops made small (64, stride 48) so that a
    128×256 scene is analysed in 3 × 5 crops, as a 1024×2048 photo is with the published 769/513."""
    d = tmp_path_factory.mktemp("dgmn2-app") / "checkpoints"
    shutil.copytree(tiny_checkpoints, d)
    convert_dgmn2(fixture("fpn.pth"), d, name="dgmn2-fpn")
    card = json.loads((d / "dgmn2-fpn.json").read_text())
    card["inference"].update(crop_size=[64, 64], stride=[48, 48])
    (d / "dgmn2-fpn.json").write_text(json.dumps(card))
    return d


@pytest.fixture()
def page(make_page, checkpoints):
    return make_page(checkpoints=checkpoints)


def by_id(out, elem_id):
    return next(v for k, v in out.items() if getattr(k, "elem_id", None) == elem_id)


def analysed(page, names=NAMES):
    out = page.handlers["new_scene"](7, names, None)
    return out, out[page.analysis]


def clicked(page, analysis, names=NAMES, layer=None, x=100, y=40):
    return page.handlers["click"](analysis, names, 0.5, True, None, layer, select([x, y]))


def test_listed_next_to_ours_with_its_description(page, checkpoints):
    from dgmn.inspect.model_cards import model_cards_markdown

    assert {"dgmn2-fpn", "dgmn-full", "fcn"} <= set(c[0] if isinstance(c, tuple) else c for c in page.models.choices)
    table = model_cards_markdown(checkpoints)
    assert "DGMN2 + Semantic FPN" in table and "sliding-window inference, 64×64 crops, stride 48" in table


def test_analysis_slides_and_a_click_draws_both_graphs(page):
    out, analysis = analysed(page)
    assert analysis.results["dgmn2-fpn"].crops == 15 and analysis.results["dgmn-full"].crops == 1
    assert "dgmn2-fpn: sliding-window inference, 15 crops, averaged" in out[page.status]
    click = clicked(page, analysis)
    answer = click[page.inspection_json]
    layers = answer["dgmn2-fpn"]["layers"]
    assert list(layers) == BLOCKS and all(q["type"] == "dgmn2" for q in layers.values())
    assert [len(q["heads"]) for q in layers.values()] == [1, 1, 2, 5, 5, 8]
    for q in layers.values():
        for head in q["heads"]:
            assert abs(sum(n["weight"] for n in head["nodes"]) - 1) < 1e-5 and len(head["nodes"]) == 9
    probs = answer["dgmn2-fpn"]["probabilities"]
    assert len(probs) == 19 and "road" in probs and abs(sum(probs.values()) - 1) < 1e-6
    assert answer["dgmn-full"]["layers"]["context"]["type"] == "dgmn"
    graphs = plots(click, "context")
    assert "DGMN2 attention, stage 1 block 1" in graphs[0].layout.title.text
    assert any((t.name or "").startswith("head 1 (position") for t in graphs[0].data)
    assert "sampled nodes" in graphs[1].layout.title.text
    assert all(isinstance(f, go.Figure) for f in plots(click, "prob")[:2])


def test_the_layer_chooser_covers_every_block(page):
    _, analysis = analysed(page)
    choices = list(page.handlers["layers"](analysis).values())[0]["choices"]
    names = [c[0] if isinstance(c, tuple) else c for c in choices]
    assert names[1:] == ["context"] + BLOCKS
    click = clicked(page, analysis, layer="stage 3, block 2")
    assert list(click[page.inspection_json]["dgmn2-fpn"]["layers"]) == ["stage 3, block 2"]
    graphs = plots(click, "context")
    assert "stage 3 block 2" in graphs[0].layout.title.text
    assert sum((t.name or "").startswith("head ") for t in graphs[0].data) == 5
    assert "(context)" in graphs[1].layout.title.text  # our model has no such layer: its first


def test_panels_that_do_not_apply_say_so_in_one_line(page):
    from dgmn.app.sections import CLICKED_CLASS

    _, analysis = analysed(page)
    last = clicked(page, analysis)[page.last_click]
    # What if…: the graph edit is skipped for DGMN2 with one line; our model answers
    out = page.handlers["what_if"]("pixel", analysis, NAMES, last, [], [], False, False, True, False, 0, 0, 10, 10, "mean")
    summary = by_id(out, "wi-summary")
    assert summary.count("dgmn2-fpn") == 1 and "inside every backbone block" in summary and "dgmn-full" in summary
    assert isinstance(by_id(out, "wi-bars1"), go.Figure) and by_id(out, "wi-bars0") is None
    # an occlusion applies to it (its sliding-window inference re-run on the edited image)
    occ = page.handlers["what_if"]("image", analysis, NAMES, last, [], [], False, False, False, True, 80, 20, 120, 60, "mean")
    assert isinstance(by_id(occ, "wi-bars0"), go.Figure) and isinstance(by_id(occ, "wi-after0"), go.Figure)
    # class flow
    flow = page.handlers["flow"](analysis, NAMES, last, CLICKED_CLASS)
    info = by_id(flow, "flow-info")
    assert "dgmn2-fpn: the class flow follows" in info and "dgmn-full: **" in info
    assert by_id(flow, "flow-heat0") is None and isinstance(by_id(flow, "flow-heat1"), go.Figure)
    # training timeline
    tl = page.handlers["timeline"](analysis, NAMES, last, 0)
    assert "dgmn2-fpn: a converted DGMN2 checkpoint has no training timeline" in by_id(tl, "tl-info")
    # cost: a note for it, the curve for ours
    cost = page.handlers["cost"](NAMES)
    status = next(v for k, v in cost.items() if k is page.status)
    assert f"dgmn2-fpn: {PANELS['cost']}" in status and isinstance(by_id(cost, "cost"), go.Figure)
    only = page.handlers["cost"](["dgmn2-fpn"])
    assert next(v for k, v in only.items() if k is page.status) == f"dgmn2-fpn: {PANELS['cost']}"
    # diagnostics: nothing to draw for it, ours drawn
    diag = page.handlers["diagnostics"](analysis, NAMES)
    assert by_id(diag, "diag0") is None and isinstance(by_id(diag, "diag1"), go.Figure)
    # export holds its inspection
    exp = page.handlers["export"](analysis, NAMES, last)
    paths = next(v for k, v in exp.items() if k is not page.status)
    doc = json.loads(open(next(p for p in paths if p.endswith(".json"))).read())
    assert "dgmn2-fpn" in json.dumps(doc)


def test_photo_note_is_only_for_contextscenes_models(page, checkpoints, tmp_path):
    card = json.loads((checkpoints / "dgmn2-fpn.json").read_text())
    assert card["dataset"]["name"] == "cityscapes" and out_of_domain_note("dgmn2-fpn", card, has_truth=False) is None
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    out = page.handlers["analyse"](str(photo), NAMES, None)
    notes = by_id(out, "domain-notes")
    assert "dgmn2-fpn" not in notes and "guesses" not in notes  # (the tiny cards name no dataset either)
    assert "guesses outside" in out_of_domain_note("dgmn-full", {"dataset": {"name": "context-scenes"}}, has_truth=False)


def test_inspect_xy_through_the_server(checkpoints, tmp_path):
    from gradio_client import Client, handle_file

    from dgmn.app import build_app
    from dgmn.inspect.explorer import Explorer

    p = tmp_path / "scene.png"
    cv2.imwrite(str(p), cv2.cvtColor(ContextScenes(seed=5, size=(96, 160)).scene(1).image, cv2.COLOR_RGB2BGR))
    with served(build_app(Explorer(checkpoints))) as url:
        res = Client(url, verbose=False).predict(handle_file(str(p)), 100, 30, NAMES, api_name="/inspect_xy")
    assert set(res) == set(NAMES)
    q = res["dgmn2-fpn"]["layers"]["stage 2, block 1"]
    assert q["type"] == "dgmn2" and len(q["heads"]) == 2 and len(res["dgmn2-fpn"]["probabilities"]) == 19
    y1, x1, y2, x2 = q["crop"]
    assert y1 <= 30 < y2 and x1 <= 100 < x2 and (y2 - y1, x2 - x1) == (64, 64)
    assert len(res["dgmn-full"]["layers"]["context"]["nodes"]) == 18
