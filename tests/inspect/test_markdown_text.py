"""Strings from cards and file names shown as text in Markdown: no HTML, links, emphasis or formulas form."""
import html
import re

import markdown_it
import pytest

from dgmn.inspect.domain_notes import out_of_domain_note
from dgmn.inspect.markdown_text import markdown_code, markdown_text

HOSTILE = ["<img src=x onerror=alert(1)>", "[click](javascript:alert(1))", "**bold** _it_ `code`", "$x^2$", "a | b",
           "# heading", "line\n\n- item", "&lt;already&gt;", "back\\slash"]


def render(markdown: str) -> str:
    return markdown_it.MarkdownIt("commonmark", {"html": True}).render(markdown)


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_text_renders_literally(value):
    out = render(f"model {markdown_text(value)} here")
    assert set(re.findall(r"</?(\w+)", out)) == {"p"}, out  # one paragraph, no other element
    assert html.unescape(re.sub(r"</?p>", "", out)).strip() == "model " + " ".join(value.split()) + " here"


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_code_shows_verbatim(value):
    out = render(markdown_code(value))
    assert set(re.findall(r"</?(\w+)", out)) == {"p", "code"}, out


def test_domain_note_escapes_the_model_name():
    note = out_of_domain_note("<b>x</b>", {"dataset": {"name": "context-scenes"}}, has_truth=False)
    assert "**&lt;b&gt;x&lt;/b&gt;**" in note
