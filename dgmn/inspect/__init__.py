"""Inspection of DGMN and Non-local layers: per-pixel graphs, attention, diagnostics."""
from .inspector import DGMNRecord, Inspector, NonLocalRecord

__all__ = ["DGMNRecord", "Inspector", "NonLocalRecord"]
from .attribution import METHODS, attribute_pixel  # noqa: E402

__all__ += ["METHODS", "attribute_pixel"]
