"""The K points a deformable convolution (DCNv2) sampled for one pixel, drawn like one DGMN rate."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..inspect.records import DCNQuery
from .base import image_figure, mark_pixel
from .nodes import RATE_COLOURS


def deformable_figure(image: np.ndarray, query: DCNQuery, pixel: tuple[float, float], offsets: bool = True,
                      title: str = "") -> go.Figure:
    """``query``: :meth:`dgmn.inspect.Inspector.query_dcn`'s record. The uniform (dilated) grid as small grey
    squares at ``uniform_image``; arrows from each grid position to the tap's sampled position (its learned
    offset; drawn where it moved by more than 1e-6 px, when ``offsets``); markers at ``sampled_image``, area
    by the tap's share |m_k| / Σ|m| (hollow: outside the map, it reads zeros); hover: tap, offset, mask, share.
    ``pixel``: (y, x). Positions are [y, x] in image pixels."""
    fig = image_figure(image, title)
    nodes = query.nodes
    colour = RATE_COLOURS[0]
    d = query.dilations[0]
    fig.add_trace(go.Scatter(x=[n.uniform_image[1] for n in nodes], y=[n.uniform_image[0] for n in nodes], mode="markers",
                             name=f"grid (dilation {d})", marker=dict(symbol="square-open", size=7, color="#777777", line=dict(width=1.5)),
                             hoverinfo="skip"))
    if offsets:
        for n in nodes:
            (uy, ux), (py, px) = n.uniform_image, n.sampled_image
            if abs(py - uy) + abs(px - ux) > 1e-6:
                fig.add_annotation(x=px, y=py, ax=ux, ay=uy, xref="x", yref="y", axref="x", ayref="y", text="", showarrow=True,
                                   arrowhead=2, arrowsize=1, arrowwidth=1.5, arrowcolor=colour, opacity=0.9)
    ks = int(round(len(nodes) ** 0.5))  # taps per axis, K = ks²
    hover = [
        f"tap {n.node} (ky={n.node // ks}, kx={n.node % ks}), dilation {d}"
        f"<br>offset (dy, dx) = ({n.walk[0]:+.2f}, {n.walk[1]:+.2f}) feature px"
        f"<br>modulation mask {n.mask:.3f}<br>share of the output {100 * n.share:.1f}%"
        + ("" if n.inside else "<br>(outside the map: reads zeros)")
        for n in nodes
    ]
    fig.add_trace(go.Scatter(
        x=[n.sampled_image[1] for n in nodes], y=[n.sampled_image[0] for n in nodes], mode="markers", name=f"sampled points (dilation {d})",
        marker=dict(size=[6 + 40 * np.sqrt(n.share) for n in nodes], color=colour, opacity=0.85, line=dict(width=1, color="black"),
                    symbol=["circle" if n.inside else "circle-open" for n in nodes]),
        text=hover, hovertemplate="%{text}<extra></extra>",
    ))
    return mark_pixel(fig, *pixel)
