"""Non-local attention of one pixel over the image, with its strongest nodes."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..inspect.records import NonLocalQuery
from .base import heat_overlay, image_figure, mark_pixel


def attention_figure(image: np.ndarray, query: NonLocalQuery, pixel: tuple[float, float], opacity: float = 0.6, top: int = 5,
                     title: str = "") -> go.Figure:
    """``query``: :meth:`dgmn.inspect.Inspector.query_nonlocal`'s record (attention (h, w), top nodes at their
    image positions). ``pixel``: (y, x)."""
    image = np.asarray(image)
    fig = image_figure(image, title)
    heat_overlay(fig, np.asarray(query.attention), image.shape[:2], opacity, "Viridis", "attention")
    best = query.top[:top]
    fig.add_trace(go.Scatter(
        x=[t.image[1] for t in best], y=[t.image[0] for t in best], mode="markers+text", name=f"top {len(best)} nodes",
        text=[str(i + 1) for i in range(len(best))], textposition="top center", textfont=dict(color="white"),
        marker=dict(size=10, color="rgba(0,0,0,0)", line=dict(width=2, color="white")),
        customdata=[t.weight for t in best], hovertemplate="attention %{customdata:.4f}<extra></extra>",
    ))
    return mark_pixel(fig, *pixel)
