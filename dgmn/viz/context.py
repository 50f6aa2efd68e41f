"""The context panel of one layer at one pixel: DGMN nodes and walks, or Non-local attention."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..inspect.records import DGMNQuery, LayerQuery
from .attention import attention_figure
from .nodes import nodes_figure


def layer_figure(image: np.ndarray, model: str, layer: str, query: LayerQuery, pixel, opacity: float = 0.6, walks: bool = True,
                 rates=None) -> go.Figure:
    """``query``: one layer's record of ``Explorer.inspect`` / ``Inspector.query`` (DGMN or Non-local)."""
    if isinstance(query, DGMNQuery):
        return nodes_figure(image, query, pixel, rates=rates, walks=walks, title=f"{model}: sampled nodes ({layer})")
    return attention_figure(image, query, pixel, opacity, title=f"{model}: Non-local attention ({layer})")
