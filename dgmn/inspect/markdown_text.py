"""Strings from checkpoints, cards and users shown as plain text inside Markdown (Gradio's ``gr.Markdown``).

A model's name is its file's name and its class names come from its card: anyone can put ``<img src=x
onerror=…>``, a ``[link](…)``, ``**emphasis**`` or a ``$formula$`` there. :func:`markdown_text` makes such a
string render literally; :func:`markdown_code` shows it verbatim as an inline code span. Both fit in a table cell.
"""
from __future__ import annotations

import re

_MARKDOWN = re.compile(r"([\\`*_\[\]|~$#])")


def markdown_text(value) -> str:
    """``value`` as plain text in Markdown: whitespace runs become one space (no line breaks, headings or table
    rows can start), Markdown punctuation (emphasis, links, code, table pipes, headings, Gradio's $ formulas) is
    backslash-escaped, and ``<``, ``>``, ``&`` become entities, so no HTML is formed."""
    s = _MARKDOWN.sub(r"\\\1", " ".join(str(value).split()))
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def markdown_code(value) -> str:
    """``value`` as an inline code span (shown verbatim: no Markdown or HTML inside a code span); the fence is
    longer than any run of backticks in it, and ``|`` is escaped as GFM tables need."""
    s = " ".join(str(value).split()).replace("|", "\\|")
    fence = "`" * (max(map(len, re.findall("`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"
