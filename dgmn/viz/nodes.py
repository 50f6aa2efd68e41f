"""The sampled neighbourhood of one pixel in one DGMN layer: nodes per rate, walks and weights."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..inspect.records import DGMNQuery
from .base import image_figure, mark_pixel

# Okabe–Ito colours, readable by colour-blind users; one per sampling rate.
RATE_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")


def walk_lines(fig: go.Figure, starts, ends, colour: str, name: str, group: str) -> None:
    """Dotted lines from each (y, x) of ``starts`` to the (y, x) of ``ends`` at the same index (a node's grid
    position to where its walk or offset took it), one trace, hidden from the legend; nodes that did not move
    draw none."""
    xs, ys = [], []
    for (sy, sx), (ey, ex) in zip(starts, ends):
        if abs(ey - sy) + abs(ex - sx) > 1e-6:
            xs += [sx, ex, None]
            ys += [sy, ey, None]
    if xs:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=colour, width=1.5, dash="dot"), name=name,
                                 hoverinfo="skip", legendgroup=group, showlegend=False))


def nodes_figure(image: np.ndarray, query: DGMNQuery, pixel: tuple[float, float], rates=None, walks: bool = True,
                 title: str = "") -> go.Figure:
    """``query``: :meth:`dgmn.inspect.Inspector.query_dgmn`'s record. Markers: sampled nodes at their
    ``sampled_image`` positions, one colour per rate, area by the node's share of the message; arrows: from
    the node's uniform (dilated) position to the walked one; hover: rate, node, walk, affinity, weights.
    ``rates``: indices to show (default all). ``pixel``: (y, x)."""
    fig = image_figure(image, title)
    shown = set(range(len(query.dilations))) if rates is None else set(rates)
    for s, d in enumerate(query.dilations):
        if s not in shown:
            continue
        nodes = [n for n in query.nodes if n.rate == s]
        colour = RATE_COLOURS[s % len(RATE_COLOURS)]
        if walks:
            walk_lines(fig, [n.uniform_image for n in nodes], [n.sampled_image for n in nodes], colour,
                       f"walks, rate {d}", f"r{s}")
        size = [6 + 40 * np.sqrt(n.share) for n in nodes]
        text = [
            f"rate {d} (s={s}), node {n.node}<br>walk (dy, dx) = ({n.walk[0]:+.2f}, {n.walk[1]:+.2f}) feature px"
            + (f"<br>affinity {n.affinity:.3f}" if n.affinity is not None else "")
            + "<br>weights per group " + ", ".join(f"{v:+.3f}" for v in n.weight)
            + f"<br>share of the message {100 * n.share:.1f}%" + ("" if n.inside else "<br>(outside the map: reads zeros)")
            for n in nodes
        ]
        fig.add_trace(go.Scatter(
            x=[n.sampled_image[1] for n in nodes], y=[n.sampled_image[0] for n in nodes], mode="markers", name=f"rate {d}",
            legendgroup=f"r{s}",
            marker=dict(size=size, color=colour, opacity=0.85, line=dict(width=1, color="black"),
                        symbol=["circle" if n.inside else "circle-open" for n in nodes]),
            text=text, hovertemplate="%{text}<extra></extra>",
        ))
    return mark_pixel(fig, *pixel)


def moved_nodes_figure(image: np.ndarray, before: DGMNQuery, after: DGMNQuery, pixel, title: str = "") -> go.Figure:
    """The pixel's graph after an edit (as :func:`nodes_figure`, over the edited image) with the nodes it had
    before as grey rings, so a teacher sees where the walks moved."""
    fig = nodes_figure(image, after, pixel, title=title)
    fig.add_trace(go.Scatter(x=[n.sampled_image[1] for n in before.nodes], y=[n.sampled_image[0] for n in before.nodes],
                             mode="markers", name="nodes before the edit",
                             marker=dict(size=9, color="rgba(0,0,0,0)", line=dict(width=2, color="#777777")),
                             hovertemplate="before: rate %{customdata[0]}, node %{customdata[1]}<extra></extra>",
                             customdata=[[n.dilation, n.node] for n in before.nodes]))
    return fig
