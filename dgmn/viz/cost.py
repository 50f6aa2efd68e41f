"""What each model's context module costs against the input size (log axes), with the crossover marked."""
from __future__ import annotations

import plotly.graph_objects as go

from .base import text


def cost_figure(curves: dict, crossover: int | None = None, title: str = "Context module cost (MACs) by input size") -> go.Figure:
    """``curves``: {model: {input side: MACs}}; ``crossover``: the side from which DGMN is cheaper than Non-local."""
    fig = go.Figure()
    for name, by_size in curves.items():
        sizes = sorted(by_size)
        fig.add_trace(go.Scatter(x=sizes, y=[by_size[s] for s in sizes], mode="lines+markers", name=text(name),
                                 hovertemplate=text(name) + ": %{y:.3s} MACs at %{x}×%{x}<extra></extra>"))
    if crossover is not None:
        fig.add_vline(x=crossover, line_dash="dash", line_color="#555555",
                      annotation_text=f"DGMN cheaper than Non-local from {crossover}×{crossover}", annotation_position="top left")
    fig.update_layout(title=dict(text=text(title), font=dict(size=15)), xaxis=dict(type="log", title="input side (pixels, square image)"),
                      yaxis=dict(type="log", title="MACs of the context module"), margin=dict(l=48, r=8, t=40, b=40),
                      legend=dict(orientation="h", y=-0.2), font=dict(size=13))
    return fig
