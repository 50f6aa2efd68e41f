"""Layers: the DGMN layer, the Non-local baseline, deformable convolution (DCNv2), criss-cross attention (CCNet),
and MAC counting."""
from .criss_cross import CrissCross2d, CrissCrossQuery, CrossAttention
from .deformable_context import DeformableContext, DeformableGraph, DeformablePoints
from .dgmn import DGMN, RateGraph
from .graph_edit import DropNode, DropRate, EditList, GraphEdit, MaskAttention, NoContext, NoWalks, UniformAffinity
from .macs import count_macs
from .nonlocal2d import NonLocal2d

__all__ = ["CrissCross2d", "CrissCrossQuery", "CrossAttention", "DGMN", "DeformableContext", "DeformableGraph",
           "DeformablePoints", "DropNode", "DropRate", "EditList", "GraphEdit", "MaskAttention", "NoContext", "NoWalks", "NonLocal2d",
           "RateGraph", "UniformAffinity", "count_macs"]
