"""Plotly figure builders: pure functions from arrays and inspection records (:mod:`dgmn.inspect.records`) to
``go.Figure``, and the standalone HTML report."""
from .attention import attention_figure
from .attribution import attribution_figure
from .cost import cost_figure
from .base import plain_figure
from .context import answer_figure, layer_figure
from .context_flow import flow_bar_figure, flow_heat_figure
from .criss_cross import criss_cross_figure
from .deformable import deformable_figure
from .dgmn2 import dgmn2_figure
from .diagnostics import diagnostics_figure
from .nodes import RATE_COLOURS, moved_nodes_figure, nodes_figure
from .probabilities import probability_figure
from .report import report_html
from .segmentation import disagreement_figure, segmentation_figure
from .timeline import timeline_slider_figure, timeline_stats_figure

__all__ = [
    "RATE_COLOURS", "answer_figure", "flow_bar_figure", "flow_heat_figure", "attention_figure", "attribution_figure", "cost_figure", "criss_cross_figure", "deformable_figure", "dgmn2_figure", "diagnostics_figure", "disagreement_figure", "layer_figure", "plain_figure",
    "moved_nodes_figure", "nodes_figure", "probability_figure", "report_html", "segmentation_figure", "timeline_slider_figure",
    "timeline_stats_figure",
]
