"""A model's class probabilities at a pixel as bars: the top classes, optionally before → after an edit."""
from __future__ import annotations

import plotly.graph_objects as go

from .base import text


def probability_figure(probabilities: dict, after: dict | None = None, top: int = 4, title: str = "", palette=None,
                       classes=None) -> go.Figure:
    """Horizontal bars of the ``top`` most probable classes (of ``probabilities`` and ``after``, if given).
    With ``after``: grey bars before, coloured bars after. ``palette``/``classes``: class colours."""
    keys = sorted(probabilities, key=lambda c: -probabilities[c])[:top]
    if after is not None:
        keys += [c for c in sorted(after, key=lambda c: -after[c])[:top] if c not in keys]
    keys = keys[::-1]  # largest at the top
    colours = {c: f"rgb{tuple(palette[classes.index(c)])}" for c in keys} if palette and classes else {}
    shown = [text(c) for c in keys]  # class names come from model cards: shown as text
    fig = go.Figure()
    fig.add_trace(go.Bar(y=shown, x=[probabilities[c] for c in keys], orientation="h", name="before" if after is not None else "p",
                         marker_color="#BBBBBB" if after is not None else [colours.get(c, "#0072B2") for c in keys],
                         text=[f"{probabilities[c]:.2f}" for c in keys], textposition="auto", hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    if after is not None:
        fig.add_trace(go.Bar(y=shown, x=[after[c] for c in keys], orientation="h", name="after",
                             marker_color=[colours.get(c, "#D55E00") for c in keys], text=[f"{after[c]:.2f}" for c in keys],
                             textposition="auto", hovertemplate="%{y}: %{x:.3f} after<extra></extra>"))
    fig.update_layout(title=dict(text=text(title), font=dict(size=14)), barmode="group", xaxis=dict(range=[0, 1], title="probability"),
                      margin=dict(l=8, r=8, t=32 if title else 8, b=32), height=220, showlegend=after is not None,
                      legend=dict(orientation="h", y=-0.35), font=dict(size=13))
    return fig
