"""Figures of the context flow (issue 11): where the messages of a whole class come from on one image, and
the flow row of that class as a bar chart. Inputs are :mod:`dgmn.inspect.context_flow`'s results."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..inspect.context_flow import IGNORED, OUTSIDE, ClassHeat, ContextFlow
from .base import heat_overlay, image_figure, text

OUTSIDE_COLOUR = (40, 40, 40)  # messages from beyond the feature map (zeros)
IGNORE_COLOUR = (200, 200, 200)  # messages from pixels without a label
MAX_CELLS = 256  # the heat map and outline are drawn with at most this many cells along a side
CLEAR_BELOW = 0.01  # cells under this fraction of the largest are left clear (Non-local attention is nowhere 0)
# yellow → dark red, more opaque with the share, so the image stays visible under small shares
HEAT_COLOURS = [[0.0, "rgba(254,217,118,0.55)"], [0.3, "rgba(253,141,60,0.8)"], [0.65, "rgba(227,26,28,0.9)"],
                [1.0, "rgba(128,0,38,0.95)"]]


def _rgb(colour) -> str:
    r, g, b = (int(v) for v in colour)
    return f"rgb({r},{g},{b})"


def _labels_word(labels: str) -> str:
    return "ground-truth" if labels == "truth" else "predicted"


def _block_sum(values: np.ndarray, step: int) -> np.ndarray:
    """(H, W) → (⌈H/step⌉, ⌈W/step⌉) sums over step×step blocks (zero-padded at the far edges)."""
    H, W = values.shape
    pad = np.zeros((-(-H // step) * step, -(-W // step) * step), values.dtype)
    pad[:H, :W] = values
    return pad.reshape(pad.shape[0] // step, step, pad.shape[1] // step, step).sum(axis=(1, 3))


def flow_heat_figure(image: np.ndarray, heat: ClassHeat, palette, opacity: float = 1.0, title: str | None = None) -> go.Figure:
    """Where the messages of ``heat.class_name``'s pixels come from, over ``image`` (H, W, 3) uint8.

    The heat map is ``heat.heat`` (H, W): per pixel, the share of the class's messages landing there (yellow →
    dark red; clear under ``CLEAR_BELOW`` of the largest; images larger than ``MAX_CELLS`` per side are shown
    in blocks, summed). The
    class's own pixels (``heat.mask``) are outlined in its palette colour (``palette``: one RGB per class).
    """
    image = np.asarray(image)
    H, W = heat.heat.shape
    if image.shape[:2] != (H, W) or heat.mask.shape != (H, W):
        raise ValueError(f"flow_heat_figure: image {image.shape[:2]}, heat {heat.heat.shape} and mask {heat.mask.shape} "
                         "must have the same (H, W); pass the image the heat map was computed on")
    if title is None:
        where = f", {100 * heat.outside:.0f}% from outside the map" if heat.outside >= 0.005 else ""
        title = (f"where {heat.class_name} pixels' messages come from ({heat.layer}; {_labels_word(heat.labels)} labels; "
                 f"{heat.positions} positions{where})")
    fig = image_figure(image, title)
    if heat.positions == 0:
        fig.add_annotation(x=W / 2, y=H / 2, text=text(f"no feature position is labelled {heat.class_name} in this image"),
                           showarrow=False, font=dict(color="white", size=13), bgcolor="rgba(0,0,0,0.6)")
        return fig
    step = max(1, -(-max(H, W) // MAX_CELLS))
    values = _block_sum(heat.heat, step)
    values = np.where(values >= CLEAR_BELOW * values.max(), values, np.nan)
    heat_overlay(fig, values, (values.shape[0] * step, values.shape[1] * step), opacity, HEAT_COLOURS, "share of messages")
    mask = _block_sum(heat.mask.astype(np.float32), step) > 0
    colour = _rgb(palette[heat.class_index])
    for width, line in ((4, "white"), (2, colour)):
        fig.add_trace(go.Contour(
            z=mask.astype(np.float32), x0=(step - 1) / 2, dx=step, y0=(step - 1) / 2, dy=step, showscale=False,
            contours=dict(start=0.5, end=0.5, size=1, coloring="lines"), colorscale=[[0, line], [1, line]],
            line=dict(width=width), hoverinfo="skip", name=text(f"{heat.class_name} pixels"), showlegend=line != "white",
        ))
    return fig


def flow_bar_figure(flow: ContextFlow, target, palette, title: str | None = None) -> go.Figure:
    """The flow row of class ``target`` (name or index): one bar per source (the classes, "outside", and
    "ignore" when present) with the mean share of the class's messages it gives, in the class colours."""
    a = flow.class_index(target)
    name = flow.classes[a]
    row = flow.row(a)
    n = flow.positions(a)
    colours = [_rgb(palette[i]) for i in range(len(flow.classes))] + [_rgb(OUTSIDE_COLOUR), _rgb(IGNORE_COLOUR)]
    colour_of = dict(zip([*flow.classes, OUTSIDE, IGNORED], colours))
    if title is None:
        title = f"{name}: share of its messages per source ({flow.layer}; {_labels_word(flow.labels)} labels; {n} positions)"
    sources = list(row)
    shares = [0.0 if n == 0 else v for v in row.values()]
    fig = go.Figure(go.Bar(
        x=[text(s) for s in sources], y=shares, marker=dict(color=[colour_of[s] for s in sources], line=dict(width=1, color="black")),
        text=[f"{100 * v:.1f}%" for v in shares] if n else None, textposition="outside",
        hovertemplate=f"{text(name)} ← %{{x}}: %{{y:.2%}}<extra></extra>",
    ))
    fig.update_layout(
        title=dict(text=text(title), font=dict(size=14)), margin=dict(l=40, r=8, t=36, b=40), plot_bgcolor="white",
        yaxis=dict(title="share of messages", range=[0, 1.1], tickformat=".0%", gridcolor="#ddd"), xaxis=dict(title="source"),
    )
    if n == 0:
        fig.add_annotation(x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                           text=text(f"no feature position is labelled {name}"))
    return fig
