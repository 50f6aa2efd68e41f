"""Criss-cross attention (CCNet) of one pixel: the effective attention over the image with its strongest
positions, like Non-local's, and the row and column pass 1 attended to, outlined."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..inspect.coordinates import feature_cells
from ..inspect.records import CCNetQuery
from .attention import attention_figure


def cross_outline(feature_pixel, feature_size, image_size) -> tuple[list, list]:
    """The outline of feature position (iy, ix)'s row and column over an (H, W) image, as a closed polygon
    (x list, y list; 13 points): the plus-shaped union of the cells of row iy and column ix, each cell
    spanning ±½ spacing around its centre (:func:`dgmn.inspect.coordinates.feature_cells`)."""
    (iy, ix), (h, w) = feature_pixel, feature_size
    c = feature_cells((h, w), image_size)
    top, bottom = c["y0"] - c["dy"] / 2, c["y0"] + (h - 0.5) * c["dy"]
    left, right = c["x0"] - c["dx"] / 2, c["x0"] + (w - 0.5) * c["dx"]
    r0, r1 = c["y0"] + (iy - 0.5) * c["dy"], c["y0"] + (iy + 0.5) * c["dy"]  # the row's band
    c0, c1 = c["x0"] + (ix - 0.5) * c["dx"], c["x0"] + (ix + 0.5) * c["dx"]  # the column's band
    xs = [c0, c1, c1, right, right, c1, c1, c0, c0, left, left, c0, c0]
    ys = [top, top, r0, r0, r1, r1, bottom, bottom, r1, r1, r0, r0, top]
    return xs, ys


def criss_cross_figure(image: np.ndarray, query: CCNetQuery, pixel: tuple[float, float], opacity: float = 0.6, top: int = 5,
                       title: str = "") -> go.Figure:
    """``query``: :meth:`dgmn.inspect.Inspector.query_ccnet`'s record. The heat map is the effective R-pass
    attention (h, w) with its ``top`` strongest positions (as :func:`dgmn.viz.attention_figure`); the dashed
    outline is the pixel's row and column, all that pass 1 attends to (hover: pass 1's largest weight there).
    ``pixel``: (y, x)."""
    image = np.asarray(image)
    fig = attention_figure(image, query, pixel, opacity, top, title)
    xs, ys = cross_outline(query.feature_pixel, query.feature_size, image.shape[:2])
    cross = np.asarray(query.cross)
    iy, ix = query.feature_pixel
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="pass 1: the pixel's row and column",
                             line=dict(color="white", width=1.5, dash="dash"),
                             hovertemplate=(f"pass 1 attends only along this row and column; its largest weight "
                                            f"{float(cross.max()):.4f}, on the pixel itself {float(cross[iy, ix]):.4f}<extra></extra>")))
    return fig
