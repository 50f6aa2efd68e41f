"""Inspection of DGMN and Non-local layers: per-pixel graphs, attention, diagnostics, as typed records."""
from .inspector import DGMNRecord, Inspector, NonLocalRecord
from .records import AttentionPeak, DGMNQuery, GraphNode, Inspection, ModelAnswer, NonLocalQuery

__all__ = ["AttentionPeak", "DGMNQuery", "DGMNRecord", "GraphNode", "Inspection", "Inspector", "ModelAnswer", "NonLocalQuery",
           "NonLocalRecord"]
from .attribution import METHODS, attribute_pixel  # noqa: E402

__all__ += ["METHODS", "attribute_pixel"]
