"""Layers: the DGMN layer, the Non-local baseline, and MAC counting."""
from .dgmn import DGMN, RateGraph
from .macs import count_macs
from .nonlocal2d import NonLocal2d

__all__ = ["DGMN", "NonLocal2d", "RateGraph", "count_macs"]
