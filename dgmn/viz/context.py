"""The context panel of one layer (or one model) at one pixel: DGMN nodes and walks, Non-local attention, the
points of a deformable convolution (DCN), criss-cross attention (CCNet), or a DGMN2 block's sampled positions."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..inspect.records import CCNetQuery, DCNQuery, DGMN2Query, DGMNQuery, LayerQuery, ModelAnswer
from .attention import attention_figure
from .base import plain_figure
from .criss_cross import criss_cross_figure
from .deformable import deformable_figure
from .dgmn2 import dgmn2_figure
from .nodes import nodes_figure


def layer_figure(image: np.ndarray, model: str, layer: str, query: LayerQuery, pixel, opacity: float = 0.6, walks: bool = True,
                 rates=None) -> go.Figure:
    """``query``: one layer's record of ``Explorer.inspect`` / ``Inspector.query`` (DGMN, Non-local, DCN, CCNet or a
    DGMN2 block).
    ``walks`` also switches DCN's offset arrows; ``rates`` applies to DGMN only."""
    if isinstance(query, DGMNQuery):
        return nodes_figure(image, query, pixel, rates=rates, walks=walks, title=f"{model}: sampled nodes ({layer})")
    if isinstance(query, DGMN2Query):
        return dgmn2_figure(image, query, pixel, walks=walks,
                            title=f"{model}: DGMN2 attention, stage {query.stage} block {query.block}, 9 nodes per head")
    if isinstance(query, DCNQuery):
        return deformable_figure(image, query, pixel, offsets=walks, title=f"{model}: deformable conv, sampled points ({layer})")
    if isinstance(query, CCNetQuery):
        return criss_cross_figure(image, query, pixel, opacity,
                                  title=f"{model}: criss-cross attention, {query.recurrence} passes ({layer})")
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
