"""The context panel of one layer (or one model) at one pixel: DGMN nodes and walks, or Non-local attention."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..inspect.records import DGMNQuery, LayerQuery, ModelAnswer
from .attention import attention_figure
from .base import plain_figure
from .nodes import nodes_figure


def layer_figure(image: np.ndarray, model: str, layer: str, query: LayerQuery, pixel, opacity: float = 0.6, walks: bool = True,
                 rates=None) -> go.Figure:
    """``query``: one layer's record of ``Explorer.inspect`` / ``Inspector.query`` (DGMN or Non-local)."""
    if isinstance(query, DGMNQuery):
        return nodes_figure(image, query, pixel, rates=rates, walks=walks, title=f"{model}: sampled nodes ({layer})")
    return attention_figure(image, query, pixel, opacity, title=f"{model}: Non-local attention ({layer})")


def answer_figure(image: np.ndarray, model: str, answer: ModelAnswer, pixel, opacity: float = 0.6, walks: bool = True,
                  rates=None) -> go.Figure:
    """One model's graph panel at a pixel: its first inspected layer (:func:`layer_figure`), or the image with
    the pixel marked for a model without a context layer. ``rates``: DGMN rate indices to show (None: all)."""
    first = answer.first_layer()
    if first is None:
        return plain_figure(image, pixel, f"{model}: no context module (sees only its receptive field)")
    layer, query = first
    return layer_figure(image, model, layer, query, pixel, opacity, walks, rates if isinstance(query, DGMNQuery) else None)
