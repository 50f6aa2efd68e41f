"""The description of a DGMN2 segmentation model: backbone numbers, decode head, classes — and its card JSON.

A model card stores it under ``"architecture"``::

    {"family": "dgmn2", "size": "tiny" | "small" | "medium" | "large" | "custom", "head": HEAD, "num_classes": K,
     "align_corners": true,
     "backbone": {"embed_dims": [4], "num_heads": [4], "mlp_ratios": [4], "depths": [4], "qkv_bias": true,
                  "table_sizes": [[h, w] × 4], "ln_eps": 1e-6},
     "head_cfg": {...}}

``HEAD`` ∈ ``fpn`` (mmseg's FPN neck + FPNHead; ``head_cfg``: ``neck_channels`` 256, ``channels`` 128),
``setr_naive`` (``head_cfg``: ``img_size`` 769), ``setr_pup`` (``channels`` 256; its resizes follow the map) and
``setr_mla`` (``mla_channels`` 128, ``img_size`` 769) — the numbers DGMN2's published Cityscapes configs use.

The four sizes are DGMN2's ``dgmn2_tiny`` … ``dgmn2_large``: embed dims (64, 128, 320, 512), heads (1, 2, 5, 8)
(head dim 64 everywhere), MLP ratios (8, 8, 4, 4), ``qkv_bias`` True, LayerNorm eps 1e-6, depths (2, 2, 2, 2) /
(3, 4, 6, 3) / (3, 4, 18, 3) / (3, 8, 27, 3). ``table_sizes`` are the feature sizes the relative-position tables
were made for (224-pixel ImageNet input: 56, 28, 14, 7 per stage; each table holds size + 8 rows); they are
resized at run time to the actual feature size.

Stage strides follow the head: the FPN reads the 4/8/16/32 pyramid; every SETR head keeps stages 3 and 4 at
stage 2's stride 8 (their patch embeddings use stride 1; the tensors are the same shapes either way).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

HEADS = ("fpn", "setr_naive", "setr_pup", "setr_mla")
HEAD_TITLES = {"fpn": "Semantic FPN", "setr_naive": "SETR-Naive", "setr_pup": "SETR-PUP", "setr_mla": "SETR-MLA"}
SIZES = ("tiny", "small", "medium", "large")
DEPTHS = {"tiny": (2, 2, 2, 2), "small": (3, 4, 6, 3), "medium": (3, 4, 18, 3), "large": (3, 8, 27, 3)}
HEAD_DEFAULTS = {
    "fpn": {"neck_channels": 256, "channels": 128},
    "setr_naive": {"img_size": 769},
    "setr_pup": {"channels": 256},
    "setr_mla": {"mla_channels": 128, "img_size": 769},
}

# Bounds a card's numbers must keep (a card comes from anyone; the model is built on the meta device before any
# tensor is read, so these bound the time that takes, not memory).
MAX_WIDTH = 4096
MAX_HEADS = 64
MAX_DEPTH = 64
MAX_MLP_RATIO = 16
MAX_TABLE = 1024
MAX_IMG_SIZE = 8192


@dataclass(frozen=True)
class BackboneConfig:
    """The DGMN2 backbone's numbers, per stage (4 stages)."""

    embed_dims: tuple[int, ...] = (64, 128, 320, 512)
    num_heads: tuple[int, ...] = (1, 2, 5, 8)
    mlp_ratios: tuple[float, ...] = (8, 8, 4, 4)
    depths: tuple[int, ...] = (2, 2, 2, 2)
    qkv_bias: bool = True
    table_sizes: tuple[tuple[int, int], ...] = ((56, 56), (28, 28), (14, 14), (7, 7))
    ln_eps: float = 1e-6

    def __post_init__(self):
        def ints(name, lo, hi):
            v = getattr(self, name)
            if not (isinstance(v, (list, tuple)) and len(v) == 4 and all(_int(i) and lo <= i <= hi for i in v)):
                raise ValueError(f"backbone.{name} must be 4 integers in {lo}–{hi}, got {_short(v)}")
            object.__setattr__(self, name, tuple(v))

        ints("embed_dims", 1, MAX_WIDTH)
        ints("num_heads", 1, MAX_HEADS)
        ints("depths", 0, MAX_DEPTH)
        r = self.mlp_ratios
        if not (isinstance(r, (list, tuple)) and len(r) == 4 and all(_number(i) and 0 < i <= MAX_MLP_RATIO for i in r)):
            raise ValueError(f"backbone.mlp_ratios must be 4 numbers in (0, {MAX_MLP_RATIO}], got {_short(r)}")
        object.__setattr__(self, "mlp_ratios", tuple(r))
        for d, h in zip(self.embed_dims, self.num_heads):
            if d % h:
                raise ValueError(f"backbone: embed dim {d} is not divisible by its {h} heads")
        t = self.table_sizes
        if not (isinstance(t, (list, tuple)) and len(t) == 4 and all(
                isinstance(p, (list, tuple)) and len(p) == 2 and all(_int(i) and 1 <= i <= MAX_TABLE for i in p) for p in t)):
            raise ValueError(f"backbone.table_sizes must be 4 pairs [height, width] of integers in 1–{MAX_TABLE}, got {_short(t)}")
        object.__setattr__(self, "table_sizes", tuple(tuple(p) for p in t))
        if not isinstance(self.qkv_bias, bool):
            raise ValueError(f"backbone.qkv_bias must be true or false, got {_short(self.qkv_bias)}")
        if not (_number(self.ln_eps) and 0 < self.ln_eps < 1):
            raise ValueError(f"backbone.ln_eps must be a number in (0, 1), got {_short(self.ln_eps)}")

    @property
    def head_dims(self) -> tuple[int, ...]:
        return tuple(d // h for d, h in zip(self.embed_dims, self.num_heads))

    @classmethod
    def preset(cls, size: str) -> "BackboneConfig":
        """DGMN2's ``dgmn2_<size>`` backbone (its segmentation classes)."""
        if size not in DEPTHS:
            raise ValueError(f"unknown DGMN2 size {size!r}; choose one of {', '.join(SIZES)}")
        return cls(depths=DEPTHS[size])

    def size_name(self) -> str:
        """The preset this equals, else ``"custom"``."""
        return next((s for s in SIZES if self == BackboneConfig.preset(s)), "custom")

    def to_json(self) -> dict:
        return {"embed_dims": list(self.embed_dims), "num_heads": list(self.num_heads),
                "mlp_ratios": [int(r) if float(r).is_integer() else r for r in self.mlp_ratios], "depths": list(self.depths),
                "qkv_bias": self.qkv_bias, "table_sizes": [list(p) for p in self.table_sizes], "ln_eps": self.ln_eps}


@dataclass(frozen=True)
class DGMN2Config:
    """A whole DGMN2 segmenter: backbone, decode head (one of :data:`HEADS`) and its options, classes.

    ``align_corners`` is the decode head's (every published config: True), used by the head's resizes and the
    final resize to the input, as mmseg's ``EncoderDecoder`` does."""

    head: str = "fpn"
    num_classes: int = 19
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head_cfg: dict = field(default_factory=dict)
    align_corners: bool = True

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"unknown DGMN2 head {self.head!r}; choose one of {', '.join(HEADS)}")
        if not (_int(self.num_classes) and 1 <= self.num_classes <= 255):
            raise ValueError(f"num_classes must be an integer in 1–255, got {_short(self.num_classes)}")
        if not isinstance(self.backbone, BackboneConfig):
            raise ValueError("backbone must be a BackboneConfig")
        if not isinstance(self.align_corners, bool):
            raise ValueError(f"align_corners must be true or false, got {_short(self.align_corners)}")
        if not isinstance(self.head_cfg, Mapping):
            raise ValueError(f"head_cfg must be a JSON object, got {_short(self.head_cfg)}")
        allowed = HEAD_DEFAULTS[self.head]
        unknown = sorted(set(self.head_cfg) - set(allowed))
        if unknown:
            raise ValueError(f"head_cfg of {self.head!r} takes {', '.join(allowed)}; unknown: {', '.join(map(str, unknown))}")
        cfg = {**allowed, **self.head_cfg}
        for k, v in cfg.items():
            hi = MAX_IMG_SIZE if k == "img_size" else MAX_WIDTH
            if not (_int(v) and 1 <= v <= hi):
                raise ValueError(f"head_cfg.{k} must be an integer in 1–{hi}, got {_short(v)}")
        object.__setattr__(self, "head_cfg", cfg)

    @classmethod
    def preset(cls, size: str, head: str, num_classes: int = 19) -> "DGMN2Config":
        """One of the 16 published configurations (``size`` × ``head``)."""
        return cls(head, num_classes, BackboneConfig.preset(size))

    @property
    def size(self) -> str:
        return self.backbone.size_name()

    @property
    def pyramid(self) -> bool:
        """Whether stages 3 and 4 downsample (FPN) or keep stride 8 (SETR heads)."""
        return self.head == "fpn"

    def to_architecture(self) -> dict:
        """The card's ``"architecture"`` JSON."""
        return {"family": "dgmn2", "size": self.size, "head": self.head, "num_classes": self.num_classes,
                "align_corners": self.align_corners, "backbone": self.backbone.to_json(),
                "head_cfg": copy.deepcopy(dict(self.head_cfg))}

    @classmethod
    def from_architecture(cls, arch: Mapping[str, Any]) -> "DGMN2Config":
        """From a card's ``"architecture"``; ``ValueError`` naming the field at fault. ``size`` is informational
        (the backbone numbers decide) but must agree with them: a preset's name, or ``"custom"``."""
        if not isinstance(arch, Mapping) or arch.get("family") != "dgmn2":
            raise ValueError('a DGMN2 architecture is a JSON object with "family": "dgmn2"')
        known = {"family", "size", "head", "num_classes", "align_corners", "backbone", "head_cfg"}
        unknown = sorted(set(arch) - known)
        if unknown:
            raise ValueError(f"unknown DGMN2 architecture fields: {', '.join(map(str, unknown))}")
        missing = [k for k in ("head", "num_classes", "backbone") if k not in arch]
        if missing:
            raise ValueError(f"a DGMN2 architecture needs head, num_classes and backbone; missing {', '.join(missing)}")
        bb = arch["backbone"]
        if not isinstance(bb, Mapping):
            raise ValueError(f"backbone must be a JSON object, got {_short(bb)}")
        fields = set(BackboneConfig.__dataclass_fields__)
        unknown = sorted(set(bb) - fields)
        if unknown:
            raise ValueError(f"unknown backbone fields: {', '.join(map(str, unknown))} (allowed: {', '.join(sorted(fields))})")
        config = cls(arch["head"], arch["num_classes"], BackboneConfig(**copy.deepcopy(dict(bb))),
                     copy.deepcopy(dict(arch.get("head_cfg") or {})), arch.get("align_corners", True))
        size = arch.get("size", config.size)
        if size != config.size:
            raise ValueError(f"size says {_short(size)} but the backbone numbers are "
                             + (f"DGMN2-{config.size.capitalize()}'s" if config.size != "custom" else 'no preset\'s (size "custom")'))
        return config

    def build(self):
        """The :class:`DGMN2Segmenter` this describes (randomly initialised)."""
        from .segmenter import DGMN2Segmenter

        return DGMN2Segmenter(self)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _short(v, limit: int = 80) -> str:
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 1] + "…"
