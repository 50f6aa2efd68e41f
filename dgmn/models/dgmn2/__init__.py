"""DGMN2 (Zhang et al., TPAMI 2022; github fudan-zvg/DGMN2, Apache-2.0) for semantic segmentation, in pure PyTorch.

The backbone in four sizes (:class:`BackboneConfig` presets tiny/small/medium/large), its attention with the
relative-position term exactly as the original computes it, the four published decode heads (Semantic FPN,
SETR-Naive, SETR-PUP, SETR-MLA), the whole model as mmseg's ``encode_decode`` (:class:`DGMN2Segmenter`),
mmseg's sliding-window inference (:func:`slide_inference`), and the identity key map from mmseg checkpoints
(:func:`map_keys`). Convert published checkpoints with ``python -m dgmn.convert dgmn2 FILE.pth --out DIR``.
"""
from .attention import AttentionInternals, DGMN2Attention
from .backbone import DGMN2Backbone
from .block import DGMN2Block
from .config import HEAD_TITLES, HEADS, SIZES, BackboneConfig, DGMN2Config
from .keymap import map_keys
from .rel_pos import RelPosEmb
from .segmenter import DGMN2Segmenter
from .slide import slide_inference

__all__ = ["AttentionInternals", "BackboneConfig", "DGMN2Attention", "DGMN2Backbone", "DGMN2Block", "DGMN2Config",
           "DGMN2Segmenter", "HEADS", "HEAD_TITLES", "RelPosEmb", "SIZES", "map_keys", "slide_inference"]
