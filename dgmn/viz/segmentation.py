"""Segmentation overlays with a class legend, and the disagreement with the ground truth."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .base import hover_grid, image_figure, text


def colourise(label: np.ndarray, palette) -> np.ndarray:
    """(H, W) class indices → (H, W, 3) uint8 colours; 255 (ignore) is black."""
    pal = np.zeros((256, 3), np.uint8)
    pal[: len(palette)] = np.asarray(palette, np.uint8)
    return pal[np.asarray(label, np.int64).clip(0, 255)]


def segmentation_figure(image: np.ndarray, label: np.ndarray, classes, palette, opacity: float = 0.6, title: str = "") -> go.Figure:
    """The image blended with the class colours of ``label``; a legend entry per class present; hover names the class."""
    image, label = np.asarray(image), np.asarray(label)
    if image.shape[:2] != label.shape:
        raise ValueError(f"image {image.shape[:2]} and label {label.shape} differ in size")
    blend = (image.astype(np.float32) * (1 - opacity) + colourise(label, palette).astype(np.float32) * opacity).astype(np.uint8)
    fig = image_figure(blend, title)
    names = np.array(list(classes) + ["?"] * (256 - len(classes)))
    hover_grid(fig, label, names[label.clip(0, 255)])
    for c in np.unique(label):
        if c < len(classes):
            r, g, b = palette[c]
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=text(classes[c]),
                                     marker=dict(size=10, color=f"rgb({r},{g},{b})", symbol="square")))
    return fig


def disagreement_figure(image: np.ndarray, prediction: np.ndarray, truth: np.ndarray, classes, title: str = "") -> go.Figure:
    """Pixels where the prediction differs from the ground truth, in vermillion over a dimmed image."""
    image, prediction, truth = np.asarray(image), np.asarray(prediction), np.asarray(truth)
    wrong = (prediction != truth) & (truth != 255)
    out = (image.astype(np.float32) * 0.35).astype(np.uint8)
    out[wrong] = (213, 94, 0)
    names = np.array(list(classes) + ["ignore"] * (256 - len(classes)))
    fig = image_figure(out, title or f"disagreement: {100 * wrong.mean():.1f}% of pixels")
    text = np.char.add(np.char.add("truth ", names[truth.clip(0, 255)]), np.char.add(", predicted ", names[prediction.clip(0, 255)]))
    hover_grid(fig, truth, text)
    return fig
