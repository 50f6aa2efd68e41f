"""The paper's Dilated FCN with a pluggable context module (Sec. 4.1).

    logits = upsample(classifier(context(ReLU(BN(Conv3×3(backbone(image)))))), to the input size)

Context modules: ``none`` (baseline), ``gpool`` (global-average-pooling control), ``nonlocal``
(:class:`dgmn.NonLocal2d`), ``dgmn`` (:class:`dgmn.DGMN`, any variant through ``context_cfg``), ``dcn``
(:class:`dgmn.modules.DeformableContext`, a modulated deformable 3×3 conv, e.g. ``dilation=1``) and ``ccnet``
(:class:`dgmn.modules.CrissCross2d`, recurrent criss-cross attention, e.g. ``recurrence=2``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..modules import DGMN, CrissCross2d, DeformableContext, NonLocal2d
from .backbones import build_backbone
from .config import SegmenterConfig

CONTEXTS = ("none", "gpool", "nonlocal", "dgmn", "dcn", "ccnet")


class GlobalPoolContext(nn.Module):
    """Image-level context control (ParseNet-style): h = ReLU(BN(W·[f, broadcast(mean_{y,x} f)])), (B, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.fuse = nn.Sequential(nn.Conv2d(2 * channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        g = f.mean(dim=(2, 3), keepdim=True).expand_as(f)
        return self.fuse(torch.cat([f, g], dim=1))


def build_context(context: str, channels: int, **cfg) -> nn.Module:
    if context == "none":
        if cfg:
            raise ValueError(f"context 'none' takes no options, got {sorted(cfg)}")
        return nn.Identity()
    if context == "gpool":
        return GlobalPoolContext(channels, **cfg)
    if context == "nonlocal":
        return NonLocal2d(channels, **cfg)
    if context == "dgmn":
        return DGMN(channels, **cfg)
    if context == "dcn":
        return DeformableContext(channels, **cfg)
    if context == "ccnet":
        return CrissCross2d(channels, **cfg)
    raise ValueError(f"unknown context module {context!r}; choose one of {', '.join(CONTEXTS)}")


class Segmenter(nn.Module):
    """Dilated FCN: backbone (stride 8) → 3×3 conv+BN+ReLU to C → context → 1×1 classifier → upsample."""

    def __init__(self, backbone: nn.Module, context: nn.Module, channels: int, num_classes: int, padding_mode: str = "zeros"):
        super().__init__()
        self.backbone = backbone
        self.reduce = nn.Sequential(
            nn.Conv2d(backbone.out_channels, channels, 3, padding=1, bias=False, padding_mode=padding_mode),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.context = context
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.num_classes = num_classes

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """The context module's output at feature resolution: (B, C, H/8, W/8)."""
        return self.context(self.reduce(self.backbone(image)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"Segmenter: expected an image batch of shape (B, 3, H, W), got {tuple(image.shape)}")
        logits = self.classifier(self.dropout(self.features(image)))
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)


def build_segmenter(backbone: str | SegmenterConfig, context: str | None = None, num_classes: int | None = None,
                    channels: int = 512, backbone_cfg: dict | None = None, **context_cfg) -> Segmenter:
    """Build the Dilated FCN: ``backbone`` ∈ small|resnet18|resnet50|resnet101, ``context`` ∈ none|gpool|nonlocal|dgmn|dcn|ccnet,
    ``channels`` C after the reduction conv, and the context module's options (e.g. ``dilations=(1, 3, 6)``).
    Or pass one :class:`dgmn.models.SegmenterConfig` alone. The model keeps its config as ``model.config``."""
    if isinstance(backbone, SegmenterConfig):
        if context is not None or num_classes is not None or backbone_cfg is not None or context_cfg:
            raise ValueError("build_segmenter: pass either a SegmenterConfig alone or the architecture's arguments, not both")
        config = backbone
    else:
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"build_segmenter: num_classes must be a positive int, got {num_classes!r}")
        config = SegmenterConfig(backbone, context, num_classes, channels, dict(backbone_cfg or {}), dict(context_cfg))
    cfg = dict(config.context_cfg)
    if "dilations" in cfg:
        cfg["dilations"] = tuple(cfg["dilations"])
    bb = build_backbone(config.backbone, **config.backbone_cfg)
    ctx = build_context(config.context, config.channels, **cfg)
    padding_mode = "reflect" if config.backbone == "small" else "zeros"
    model = Segmenter(bb, ctx, config.channels, config.num_classes, padding_mode)
    model.config = config
    return model
