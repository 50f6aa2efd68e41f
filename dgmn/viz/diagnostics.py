"""Offset diagnostics of a DGMN layer: walk-length histogram per rate and nodes outside the map."""
from __future__ import annotations

import plotly.graph_objects as go

from .base import text
from .nodes import RATE_COLOURS


def diagnostics_figure(diagnostics: dict, title: str = "") -> go.Figure:
    """``diagnostics`` is :meth:`dgmn.inspect.Inspector.diagnostics`'s answer."""
    fig = go.Figure()
    for r in diagnostics["rates"]:
        edges = r["histogram_edges"]
        centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
        fig.add_trace(go.Bar(x=centres, y=r["histogram"], width=[b - a for a, b in zip(edges[:-1], edges[1:])],
                             name=f"rate {r['dilation']}: {100 * r['outside_fraction']:.0f}% outside",
                             marker_color=RATE_COLOURS[r["rate"] % len(RATE_COLOURS)], opacity=0.75))
    warn = "<br>".join("⚠ " + text(w) for w in diagnostics["warnings"])
    heading = text(title or f"walk lengths, {diagnostics['layer']}")
    fig.update_layout(barmode="overlay", title=dict(text=heading + (f"<br><sup>{warn}</sup>" if warn else ""), font=dict(size=14)),
                      xaxis_title="walk length (feature pixels)", yaxis_title="nodes", margin=dict(l=40, r=8, t=48, b=40),
                      legend=dict(orientation="h", y=-0.25))
    return fig
