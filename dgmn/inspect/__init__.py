"""Inspection of DGMN, Non-local, deformable-convolution (DCN) and criss-cross attention (CCNet) layers: per-pixel
graphs, attention, diagnostics, as typed records."""
from .inspector import CCNetRecord, DCNRecord, DGMNRecord, Inspector, NonLocalRecord
from .records import (AttentionPeak, CCNetQuery, DCNQuery, DeformableNode, DGMNQuery, GraphNode, Inspection, ModelAnswer,
                      NonLocalQuery)

__all__ = ["AttentionPeak", "CCNetQuery", "CCNetRecord", "DCNQuery", "DCNRecord", "DGMNQuery", "DGMNRecord", "DeformableNode",
           "GraphNode", "Inspection", "Inspector", "ModelAnswer", "NonLocalQuery", "NonLocalRecord"]
from .attribution import METHODS, attribute_pixel  # noqa: E402

__all__ += ["METHODS", "attribute_pixel"]
