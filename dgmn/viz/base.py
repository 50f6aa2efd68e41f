"""Shared pieces of the figures: the image as a background, the clicked pixel, the layout, and :func:`text`.

Every string a figure shows that came from outside this package (class and model names from model cards and
checkpoint folders, titles the app builds from them) goes through :func:`text`: plotly renders a subset of
HTML in titles, legend names, axis labels, hover text and annotations, and fills ``%{...}`` in hover
templates, so a class named ``<img src=x onerror=alert(1)>`` must arrive as entities to be shown as written."""
from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict

import numpy as np
import plotly.graph_objects as go

from ..inspect.coordinates import feature_cells


_URI_CACHE: "OrderedDict[str, str]" = OrderedDict()
_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def text(value) -> str:
    """``value`` as plain text for plotly (and for HTML body text): ``&``, ``<``, ``>`` and the ``%`` of ``%{``
    become entities, which plotly.js draws as the characters themselves, so nothing in it forms a tag, a link
    or a hover-template field. Apply it once, to each outside string, where a figure (or report) takes it; add
    markup after."""
    return str(value).translate(_ENTITIES).replace("%{", "&#37;{")


def png_data_uri(image: np.ndarray) -> str:
    """(H, W, 3) uint8 RGB → a PNG data URI (compact in the figure's JSON, exact colours). The last few
    encodings are memoised by content, since every click redraws figures over the same image."""
    image = np.ascontiguousarray(image)
    key = hashlib.blake2b(image.data, digest_size=16).hexdigest() + str(image.shape)
    if key in _URI_CACHE:
        _URI_CACHE.move_to_end(key)
        return _URI_CACHE[key]
    uri = _encode_png(image)
    _URI_CACHE[key] = uri
    while len(_URI_CACHE) > 16:
        _URI_CACHE.popitem(last=False)
    return uri


def _encode_png(image: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode()


def image_figure(image: np.ndarray, title: str = "") -> go.Figure:
    """A figure showing ``image`` (H, W, 3) uint8 in pixel coordinates (y down), no axes clutter.
    The image travels as one PNG (not as a nested list of numbers), so figures stay small and fast."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    fig = go.Figure(go.Image(source=png_data_uri(image), hoverinfo="skip"))
    H, W = image.shape[:2]
    fig.update_layout(
        title=dict(text=text(title), font=dict(size=14)), margin=dict(l=4, r=4, t=32 if title else 4, b=4),
        xaxis=dict(visible=False, range=[-0.5, W - 0.5]), yaxis=dict(visible=False, range=[H - 0.5, -0.5], scaleanchor="x"),
        plot_bgcolor="white", legend=dict(orientation="h", yanchor="top", y=-0.02, x=0),
    )
    return fig


def mark_pixel(fig: go.Figure, y: float, x: float, name: str = "clicked pixel") -> go.Figure:
    fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name=text(name),
                             marker=dict(symbol="x-thin", size=16, line=dict(width=3, color="white")), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", showlegend=False,
                             marker=dict(symbol="x-thin", size=12, line=dict(width=2, color="black")),
                             hovertemplate=f"clicked pixel (y={y:.0f}, x={x:.0f})<extra></extra>"))
    return fig


def heat_overlay(fig: go.Figure, values: np.ndarray, image_size, opacity: float, colorscale: str, name: str) -> go.Figure:
    """Stretch a (h, w) map over an (H, W) image: cell (i, j) is centred where :mod:`dgmn.inspect.coordinates`
    puts feature position (i, j)."""
    cells = feature_cells(values.shape, image_size)
    fig.add_trace(go.Heatmap(z=values, x0=cells["x0"], dx=cells["dx"], y0=cells["y0"], dy=cells["dy"], opacity=opacity,
                             colorscale=colorscale, showscale=True, name=text(name), colorbar=dict(thickness=10, len=0.8),
                             hovertemplate=text(name) + " %{z:.3g}<extra></extra>"))
    return fig


def hover_grid(fig: go.Figure, labels: np.ndarray, names: np.ndarray, max_side: int = 96) -> go.Figure:
    """An invisible coarse heatmap that names what is under the cursor (``names``: (H, W) strings, shown as text)."""
    H, W = labels.shape
    step = max(1, int(np.ceil(max(H, W) / max_side)))
    sub = np.asarray(names)[step // 2 :: step, step // 2 :: step]
    unique, index = np.unique(sub, return_inverse=True)
    sub = np.array([text(v) for v in unique], dtype=object)[index].reshape(sub.shape)
    fig.add_trace(go.Heatmap(z=np.zeros(sub.shape), x0=step // 2, dx=step, y0=step // 2, dy=step, opacity=0,
                             showscale=False, text=sub, hovertemplate="%{text}<extra></extra>", name="hover"))
    return fig


def plain_figure(image: np.ndarray, pixel, title: str = "") -> go.Figure:
    """The image with the clicked pixel marked, nothing else."""
    return mark_pixel(image_figure(image, title), *pixel)
