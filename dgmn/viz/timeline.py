"""Training timelines: statistics over the training steps, and the clicked pixel's graph snapshot by snapshot."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..inspect.records import ModelAnswer
from .base import text
from .context import answer_figure
from .nodes import RATE_COLOURS

PANELS = (("val_miou", "validation mIoU (%)"), ("walk_length", "mean walk length (feature px)"),
          ("affinity_entropy", "affinity entropy (1 = uniform)"), ("outside_fraction", "share of nodes outside the map"))
DASHES = ("solid", "dash", "dot", "dashdot")


def timeline_stats_figure(stats: dict, step: int | None = None) -> go.Figure:
    """``stats``: {model: index entries (step, val_miou, layers → per-rate statistics)}. Log step axis (step 0
    drawn at 1); one line per model (mIoU) or per model and rate (walk statistics, first DGMN layer); the
    slider's ``step`` marked."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in PANELS], horizontal_spacing=0.08, vertical_spacing=0.16)
    for m, (name, entries) in enumerate(stats.items()):
        xs = [max(e["step"], 1) for e in entries]
        fig.add_trace(go.Scatter(x=xs, y=[e["val_miou"] for e in entries], mode="lines+markers", name=text(f"{name}: mIoU"),
                                 line=dict(dash=DASHES[m % len(DASHES)], color="#333333")), row=1, col=1)
        layer = next(iter(entries[0].get("layers") or {}), None) if entries else None
        if layer is None:
            continue
        for s, rate in enumerate(entries[0]["layers"][layer]):
            for (key, _), (row, col) in zip(PANELS[1:], ((1, 2), (2, 1), (2, 2))):
                fig.add_trace(go.Scatter(x=xs, y=[e["layers"][layer][s].get(key) for e in entries], mode="lines+markers",
                                         name=text(f"{name}: rate {rate['dilation']}"), legendgroup=f"{name}{s}", showlegend=(row, col) == (1, 2),
                                         line=dict(color=RATE_COLOURS[s % len(RATE_COLOURS)], dash=DASHES[m % len(DASHES)])), row=row, col=col)
    fig.update_xaxes(type="log", title_text="training step (log; step 0 at 1)")
    if step is not None:
        for row, col in ((1, 1), (1, 2), (2, 1), (2, 2)):
            fig.add_vline(x=max(step, 1), line_dash="dash", line_color="#D55E00", row=row, col=col)
    fig.update_layout(height=520, margin=dict(l=40, r=8, t=40, b=40), legend=dict(orientation="h", y=-0.18), font=dict(size=12))
    return fig


def timeline_slider_figure(image: np.ndarray, frames: list[tuple[int, ModelAnswer]], pixel, model: str) -> go.Figure:
    """One figure with the pixel's graph at every snapshot and a slider to move between them (works in a
    standalone HTML page): each snapshot's traces are visible only on its slider step."""
    fig, groups = None, []
    for step, answer in frames:
        f = answer_figure(image, f"{model} at step {step}", answer, pixel)
        if fig is None:
            fig = go.Figure(layout=f.layout)
        start = len(fig.data)
        for t in f.data:
            fig.add_trace(t)
        groups.append((step, start, len(fig.data)))
    if fig is None:
        return go.Figure()
    n = len(fig.data)
    steps = []
    for step, a, b in groups:
        visible = [a <= i < b for i in range(n)]
        steps.append(dict(method="update", label=str(step), args=[{"visible": visible}, {"title.text": text(f"{model}: the pixel's graph at training step {step}")}]))
    for i in range(n):
        fig.data[i].visible = groups[0][1] <= i < groups[0][2]
    fig.update_layout(sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="training step "), pad=dict(t=30))],
                      title=dict(text=text(f"{model}: the pixel's graph at training step {groups[0][0]}")))
    return fig
