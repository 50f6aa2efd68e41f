"""Plotly figure builders: pure functions from arrays (and inspection dicts) to ``go.Figure``."""
from .attention import attention_figure
from .attribution import attribution_figure
from .base import plain_figure
from .context import layer_figure
from .diagnostics import diagnostics_figure
from .nodes import RATE_COLOURS, nodes_figure
from .segmentation import disagreement_figure, segmentation_figure

__all__ = [
    "RATE_COLOURS", "attention_figure", "attribution_figure", "diagnostics_figure", "disagreement_figure", "layer_figure", "plain_figure",
    "nodes_figure", "segmentation_figure",
]
