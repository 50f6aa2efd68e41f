"""Inspection of DGMN, Non-local, deformable-convolution (DCN) and criss-cross attention (CCNet) layers and of DGMN2
attention blocks: per-pixel graphs, attention, diagnostics, as typed records."""
from .inspector import CCNetRecord, DCNRecord, DGMN2Crop, DGMN2Record, DGMNRecord, Inspector, NonLocalRecord
from .records import (AttentionPeak, CCNetQuery, DCNQuery, DeformableNode, DGMN2Head, DGMN2Node, DGMN2Query, DGMNQuery,
                      GraphNode, Inspection, ModelAnswer, NonLocalQuery)

__all__ = ["AttentionPeak", "CCNetQuery", "CCNetRecord", "DCNQuery", "DCNRecord", "DGMNQuery", "DGMNRecord", "DeformableNode",
           "GraphNode", "Inspection", "Inspector", "ModelAnswer", "NonLocalQuery", "NonLocalRecord", "DGMN2Crop", "DGMN2Head",
           "DGMN2Node", "DGMN2Query", "DGMN2Record"]
from .attribution import METHODS, attribute_pixel  # noqa: E402

__all__ += ["METHODS", "attribute_pixel"]
