"""A standalone HTML report of one inspection: every model's panels, plotly.js inlined (works offline)."""
from __future__ import annotations

import json

import numpy as np

from ..inspect.records import Inspection
from .base import text
from .context import layer_figure
from .segmentation import segmentation_figure


def context_figures(image: np.ndarray, answer: Inspection, pixel, opacity: float = 0.6, walks: bool = True) -> dict:
    """{model: [figures]}: for every inspected layer the nodes (DGMN) or the attention (Non-local)."""
    return {name: [layer_figure(image, name, layer, q, pixel, opacity, walks) for layer, q in entry.layers.items()]
            for name, entry in answer.items()}


def report_html(image: np.ndarray, answer: Inspection, pixel, predictions: dict, cards: dict, title: str = "DGMN inspection") -> str:
    """``answer`` from ``Explorer.inspect``; ``pixel`` (y, x); ``predictions`` {model: (H, W) labels};
    ``cards`` {model: card}. Every name in it (models, classes, the title) is shown as text (:func:`text`)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{text(title)}</title></head><body "
             "style='font-family:sans-serif'>", f"<h1>{text(title)}</h1>",
             f"<p>Pixel (x={pixel[1]:.0f}, y={pixel[0]:.0f}).</p>"]
    first = True
    figs = context_figures(image, answer, pixel)
    for name, entry in answer.items():
        parts.append(f"<h2>{text(name)}: predicted <b>{text(entry.class_name)}</b></h2>")
        card = cards[name]
        panel = figs[name] + [segmentation_figure(image, predictions[name], card["classes"], card["palette"], 0.6, f"{name}: segmentation")]
        for fig in panel:
            parts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if first else False, default_width="640px", default_height="420px"))
            first = False
    parts.append("<h2>Inspection (JSON)</h2><pre>" + text(json.dumps(answer.to_json(), indent=1)) + "</pre></body></html>")
    return "\n".join(parts)
