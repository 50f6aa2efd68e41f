"""Shared pieces of the figures: the image as a background, the clicked pixel, the layout."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def image_figure(image: np.ndarray, title: str = "") -> go.Figure:
    """A figure showing ``image`` (H, W, 3) uint8 in pixel coordinates (y down), no axes clutter."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    fig = go.Figure(go.Image(z=image, hoverinfo="skip"))
    H, W = image.shape[:2]
    fig.update_layout(
        title=dict(text=title, font=dict(size=14)), margin=dict(l=4, r=4, t=32 if title else 4, b=4),
        xaxis=dict(visible=False, range=[-0.5, W - 0.5]), yaxis=dict(visible=False, range=[H - 0.5, -0.5], scaleanchor="x"),
        plot_bgcolor="white", legend=dict(orientation="h", yanchor="top", y=-0.02, x=0),
    )
    return fig


def mark_pixel(fig: go.Figure, y: float, x: float, name: str = "clicked pixel") -> go.Figure:
    fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name=name,
                             marker=dict(symbol="x-thin", size=16, line=dict(width=3, color="white")), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", showlegend=False,
                             marker=dict(symbol="x-thin", size=12, line=dict(width=2, color="black")),
                             hovertemplate=f"clicked pixel (y={y:.0f}, x={x:.0f})<extra></extra>"))
    return fig


def heat_overlay(fig: go.Figure, values: np.ndarray, image_size, opacity: float, colorscale: str, name: str) -> go.Figure:
    """Stretch a (h, w) map over an (H, W) image: cell (i, j) covers image pixels around its centre."""
    H, W = image_size
    h, w = values.shape
    fig.add_trace(go.Heatmap(z=values, x0=(W / w - 1) / 2, dx=W / w, y0=(H / h - 1) / 2, dy=H / h, opacity=opacity,
                             colorscale=colorscale, showscale=True, name=name, colorbar=dict(thickness=10, len=0.8),
                             hovertemplate=name + " %{z:.3g}<extra></extra>"))
    return fig
