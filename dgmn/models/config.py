"""One description of a segmentation model's architecture, shared by building, training, model cards and loading.

A model card stores it under ``"architecture"`` as JSON::

    {"backbone": str, "backbone_cfg": {...}, "context": str, "channels": C, "num_classes": K, "context_cfg": {...}}

``backbone`` ∈ small | resnet18 | resnet50 | resnet101 (``backbone_cfg``: its options, e.g. ``{"width": 64}``);
``context`` ∈ none | gpool | nonlocal | dgmn | dcn | ccnet (``context_cfg``: the module's options, e.g. DGMN's
``{"dilations": [1, 3, 6], "groups": 4, "random_walk": true}``, DCN's ``{"dilation": 1}``, CCNet's ``{"recurrence": 2}``); C channels after the reduction conv; K classes.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class SegmenterConfig:
    backbone: str
    context: str
    num_classes: int
    channels: int = 512
    backbone_cfg: dict = field(default_factory=dict)
    context_cfg: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool) or self.num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {self.num_classes!r}")
        if not isinstance(self.channels, int) or isinstance(self.channels, bool) or self.channels < 1:
            raise ValueError(f"channels must be a positive int, got {self.channels!r}")
        for name in ("backbone_cfg", "context_cfg"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a JSON object (a dict of options), got {getattr(self, name)!r}")

    @classmethod
    def from_architecture(cls, arch: Mapping[str, Any]) -> "SegmenterConfig":
        """From a card's ``"architecture"`` (missing option dicts are empty). Raises ValueError naming what is wrong."""
        if not isinstance(arch, Mapping):
            raise ValueError(f"the architecture must be a JSON object, got {type(arch).__name__}")
        missing = [k for k in ("backbone", "context", "channels", "num_classes") if k not in arch]
        if missing:
            raise ValueError(f"the architecture needs backbone, context, channels and num_classes; missing {', '.join(missing)}")
        return cls(arch["backbone"], arch["context"], arch["num_classes"], arch["channels"],
                   copy.deepcopy(arch.get("backbone_cfg") or {}), copy.deepcopy(arch.get("context_cfg") or {}))

    @classmethod
    def from_model_section(cls, model: Mapping[str, Any], num_classes: int) -> "SegmenterConfig":
        """From a training YAML's ``model:`` section (the classes come from the dataset)."""
        return cls.from_architecture({**model, "num_classes": num_classes})

    def to_architecture(self) -> dict:
        """The card's ``"architecture"`` JSON (the key order cards have always had)."""
        return {"backbone": self.backbone, "backbone_cfg": copy.deepcopy(self.backbone_cfg), "context": self.context,
                "channels": self.channels, "num_classes": self.num_classes, "context_cfg": copy.deepcopy(self.context_cfg)}

    def build(self):
        """The :class:`dgmn.models.Segmenter` this describes (randomly initialised)."""
        from .segmenter import build_segmenter

        return build_segmenter(self)
