"""The positions a DGMN2 attention block sampled for one pixel: per head 9 nodes, their weights and the walks."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..inspect.records import DGMN2Query
from .base import image_figure, mark_pixel
from .nodes import RATE_COLOURS, walk_lines


def dgmn2_figure(image: np.ndarray, query: DGMN2Query, pixel: tuple[float, float], walks: bool = True,
                 title: str = "") -> go.Figure:
    """``query``: :meth:`dgmn.inspect.Inspector.query_dgmn2`'s record. Per head (one colour each): markers at the 9
    nodes' ``sampled_image`` positions, area by the node's attention weight (hollow: outside the map, it reads
    zeros); dotted lines from each node's 3×3 grid position (``grid_image``) to where its offset took it (when
    ``walks``); hover: head, node, offset, weight, the logit and its content and position terms. The legend names
    each head with the share of its choice that comes from the position term; a dashed outline marks the crop the
    record comes from when it is not the whole image (sliding-window inference). ``pixel``: (y, x)."""
    fig = image_figure(image, title)
    y1, x1, y2, x2 = query.crop
    H, W = np.asarray(image).shape[:2]
    if (y1, x1, y2, x2) != (0, 0, H, W):  # sliding-window inference: the crop the record comes from
        fig.add_trace(go.Scatter(x=[x1 - 0.5, x2 - 0.5, x2 - 0.5, x1 - 0.5, x1 - 0.5], y=[y1 - 0.5, y1 - 0.5, y2 - 0.5, y2 - 0.5, y1 - 0.5],
                                 mode="lines", line=dict(color="white", width=1.5, dash="dash"), name="crop (sliding window)",
                                 hoverinfo="skip"))
    for head in query.heads:
        colour = RATE_COLOURS[head.head % len(RATE_COLOURS)]
        group = f"h{head.head}"
        if walks:
            walk_lines(fig, [n.grid_image for n in head.nodes], [n.sampled_image for n in head.nodes], colour,
                       f"offsets, head {head.head + 1}", group)
        hover = [
            f"head {head.head + 1}, node {n.node} (ky={n.node // 3}, kx={n.node % 3})"
            f"<br>offset (dy, dx) = ({n.walk[0]:+.2f}, {n.walk[1]:+.2f}) feature px"
            f"<br>weight {n.weight:.3f}<br>logit {n.logit:+.3f} = content {n.content:+.3f} + position {n.position:+.3f}"
            + ("" if n.inside else "<br>(outside the map: reads zeros)")
            for n in head.nodes
        ]
        fig.add_trace(go.Scatter(
            x=[n.sampled_image[1] for n in head.nodes], y=[n.sampled_image[0] for n in head.nodes], mode="markers",
            name=f"head {head.head + 1} (position {100 * head.position_share:.0f}%)", legendgroup=group,
            marker=dict(size=[6 + 40 * np.sqrt(max(n.weight, 0.0)) for n in head.nodes], color=colour, opacity=0.85,
                        line=dict(width=1, color="black"), symbol=["circle" if n.inside else "circle-open" for n in head.nodes]),
            text=hover, hovertemplate="%{text}<extra></extra>",
        ))
    return mark_pixel(fig, *pixel)
