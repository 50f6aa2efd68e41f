"""Attribution heatmap (effective receptive field of a pixel) over the image."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .base import heat_overlay, image_figure, mark_pixel


def attribution_figure(image: np.ndarray, attribution: np.ndarray, pixel: tuple[float, float], opacity: float = 0.65,
                       title: str = "") -> go.Figure:
    """``attribution`` (H, W) ≥ 0, normalised to its maximum for display (colour-blind-safe Cividis)."""
    image, a = np.asarray(image), np.asarray(attribution, dtype=np.float64)
    peak = a.max() if a.size and a.max() > 0 else 1.0
    fig = image_figure(image, title)
    heat_overlay(fig, a / peak, image.shape[:2], opacity, "Cividis", "relative attribution")
    return mark_pixel(fig, *pixel)
