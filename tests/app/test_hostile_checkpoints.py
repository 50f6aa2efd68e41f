"""Hostile checkpoints in the app (issue 12): a checkpoints folder holding one hostile model next to good ones.
The app starts, its model table says what is wrong with the hostile one, choosing it gives a message, and
the good models analyse and answer clicks. A model whose card strings are HTML/script shows them as text in
every figure, the table and the HTML export. The corpus is tests/models/test_hostile_checkpoints.py's."""
import html
import json
import re
import shutil

import gradio as gr
import markdown_it
import pytest

from dgmn.app import build_page
from dgmn.data import ContextScenes
from dgmn.inspect.examples import ExampleSet
from dgmn.inspect.explorer import Explorer

from ..models.test_hostile_checkpoints import CORPUS, MARKUP, _strings, shows_markup, write_case
from .conftest import select

GOOD = ["dgmn-full", "fcn-nonlocal", "fcn"]
SCENE = ContextScenes(seed=5, size=(96, 160)).scene(0).image
REFUSED = [case for case, (_, message) in CORPUS.items() if message is not None]


def folder_with(tiny_checkpoints, tmp_path, case, name):
    """The good tiny checkpoints and hostile checkpoint ``case`` as ``name``; the message it is refused with."""
    for f in tiny_checkpoints.glob("*.*"):
        shutil.copy(f, tmp_path / f.name)
    return write_case(case, tmp_path, name)


def model_table(demo) -> str:
    return next(b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown) and b.elem_id == "model-cards")


def row_of(table: str, name: str) -> str:
    """The table row of model ``name``, as the reader sees it (Markdown escapes and entities undone)."""
    line = next(ln for ln in table.splitlines() if ln.startswith(f"| `{name}` |"))
    return html.unescape(re.sub(r"\\([\\`*_\[\]|~$])", r"\1", line))


def works(page, names):
    """The good models analyse the scene and answer a click."""
    out = page.handlers["analyse"](SCENE, names)
    analysis = out[page.analysis]
    assert "Click a pixel" in out[page.status] and set(analysis.results) == set(names)
    clicked = page.handlers["click"](analysis, names, 0.5, True, None, None, select([70, 40]))
    assert clicked[page.status].startswith("Pixel") and set(clicked[page.last_click].models) == set(names)
    return analysis, clicked


@pytest.mark.parametrize("case", REFUSED)
def test_one_hostile_checkpoint_next_to_good_ones(tiny_checkpoints, tmp_path, case):
    message = folder_with(tiny_checkpoints, tmp_path, case, "hostile")
    demo, page = build_page(Explorer(tmp_path), ExampleSet([]))  # the app starts
    row = row_of(model_table(demo), "hostile")
    assert re.search(r"card unreadable|cannot be loaded", row) and re.search(message, row, re.S), row
    for name in GOOD:  # the good ones are summarised as usual
        assert not re.search(r"card unreadable|cannot be loaded", row_of(model_table(demo), name))
    analysis, _ = works(page, GOOD)
    chosen = page.handlers["analyse"](SCENE, ["hostile", "fcn"], analysis)
    assert chosen[page.status].startswith("⚠ model 'hostile' cannot be loaded") and re.search(message, chosen[page.status], re.S)
    assert set(chosen) == {page.status}  # what the user had stays
    works(page, GOOD)  # and the good models still work afterwards


def test_markup_in_a_card_is_shown_as_text_in_the_app(tiny_checkpoints, tmp_path):
    folder_with(tiny_checkpoints, tmp_path, "markup", MARKUP)
    demo, page = build_page(Explorer(tmp_path), ExampleSet([]))
    table = model_table(demo)
    assert f"| `{MARKUP}` |" in table and "<" not in re.sub(r"(`+)(.+?)\1", "", table)
    names = [MARKUP, "dgmn-full"]
    analysis, clicked = works(page, names)
    shown = page.handlers["show"](analysis, names)
    figures = [v for v in [*clicked.values(), *shown.values()] if hasattr(v, "to_plotly_json")]
    assert len(figures) >= 5
    strings = [s for fig in figures for s in _strings(json.loads(fig.to_json()))]
    assert not any(MARKUP in s or "<b>bold" in s or "%{x}" in s for s in strings)
    assert any("&lt;img src=x onerror=alert(1)&gt;" in s for s in strings)  # the model name in titles
    assert any("&lt;b&gt;bold&lt;/b&gt; &amp; &#37;{x}" in s for s in strings)  # a class name in a legend or hover
    notes = page.handlers["analyse"](SCENE, names)  # an image without ground truth: the out-of-domain notes name the models
    last = clicked[page.last_click]
    edited = page.handlers["what_if"]("pixel", analysis, names, last, [], [], False, False, True, False, 0, 0, 1, 1, "mean")
    flow = page.handlers["flow"](analysis, names, last, "<b>bold</b> & %{x}")
    markdown = [v for out in (notes, edited, flow) for k, v in out.items() if isinstance(k, gr.Markdown) and v]
    assert len(markdown) >= 2 and all(MARKUP not in m for m in markdown)  # what-if summary, flow info (+ notes)
    for m in markdown:  # rendered as Gradio does (HTML allowed), the name and the class are text, never elements
        rendered = markdown_it.MarkdownIt("commonmark", {"html": True}).render(m)
        assert not re.search(r"<(img|b|a)\b", rendered), rendered
        assert "&lt;img src=x onerror=alert(1)&gt;" in rendered
    exported = page.handlers["export"](analysis, names, clicked[page.last_click])
    report = next(p for p in next(v for v in exported.values() if isinstance(v, list)) if str(p).endswith(".html"))
    text = open(report, encoding="utf-8").read()
    assert not shows_markup(text) and "&lt;img src=x onerror=alert(1)&gt;" in text
