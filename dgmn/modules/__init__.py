"""Layers: the DGMN layer, the Non-local baseline, and MAC counting."""
from .dgmn import DGMN, RateGraph
from .graph_edit import DropNode, DropRate, EditList, GraphEdit, MaskAttention, NoContext, NoWalks, UniformAffinity
from .macs import count_macs
from .nonlocal2d import NonLocal2d

__all__ = ["DGMN", "DropNode", "DropRate", "EditList", "GraphEdit", "MaskAttention", "NoContext", "NoWalks", "NonLocal2d",
           "RateGraph", "UniformAffinity", "count_macs"]
