"""A whole DGMN2 segmentation model, as mmseg's ``EncoderDecoder.encode_decode`` runs it:

    logits = resize(decode_head(neck(backbone(image))), image's size, bilinear, align_corners)   (B, K, H, W)

``image``: (B, 3, H, W), RGB normalised with ImageNet's mean/std (mmseg's, on 0–255 values; the model card
says it on 0–1 values). The published models were evaluated with :func:`slide_inference` (769×769 crops,
stride 513) — ``forward`` is one crop's (or one whole image's) logits.

Submodules are named as in the mmseg checkpoints: ``backbone``, ``neck`` (FPN only), ``decode_head``, so the
checkpoint's keys are our state dict's keys (see :mod:`.keymap`). :meth:`DGMN2Segmenter.attention_internals` runs
the model once and returns every (or the chosen) block's :class:`AttentionInternals`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .attention import AttentionInternals
from .backbone import DGMN2Backbone
from .config import DGMN2Config
from .fpn_head import FPNHead
from .fpn_neck import FPN
from .resize import resize
from .setr_mla_head import SETRMLAHead
from .setr_up_head import SETRNaiveHead, SETRPUPHead


def build_head(cfg: DGMN2Config) -> tuple[nn.Module | None, nn.Module]:
    """(neck or None, decode head) for ``cfg.head``."""
    dims, hc, K, ac = list(cfg.backbone.embed_dims), cfg.head_cfg, cfg.num_classes, cfg.align_corners
    if cfg.head == "fpn":
        c = hc["neck_channels"]
        return FPN(dims, c), FPNHead(c, hc["channels"], K, ac)
    if cfg.head == "setr_naive":
        return None, SETRNaiveHead(dims[3], K, hc["img_size"], ac)
    if cfg.head == "setr_pup":
        return None, SETRPUPHead(dims[3], hc["channels"], K, ac)
    return None, SETRMLAHead(dims, hc["mla_channels"], K, hc["img_size"], ac)


class DGMN2Segmenter(nn.Module):
    def __init__(self, config: DGMN2Config):
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.align_corners = config.align_corners
        self.backbone = DGMN2Backbone(config.backbone, pyramid=config.pyramid)
        neck, head = build_head(config)
        if neck is not None:
            self.neck = neck
        self.decode_head = head

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The decode head's inputs: the FPN's outputs, or the backbone's four stages (SETR heads)."""
        feats = self.backbone(image)
        return self.neck(feats) if hasattr(self, "neck") else feats

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised image → (B, K, H, W) logits."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"DGMN2Segmenter: expected an image batch of shape (B, 3, H, W), got {tuple(image.shape)}")
        return resize(self.decode_head(self.features(image)), image.shape[2:], self.align_corners)

    def attention_blocks(self) -> dict[str, nn.Module]:
        """{"block{s}.{i}": that block's attention module}, in order."""
        return {f"block{s}.{i}": blk.attn for s, (_, blocks) in enumerate(self.backbone.stages(), 1)
                for i, blk in enumerate(blocks)}

    @torch.no_grad()
    def attention_internals(self, image: torch.Tensor, blocks: list[str] | None = None
                            ) -> tuple[torch.Tensor, dict[str, AttentionInternals]]:
        """(logits, {block name: AttentionInternals}) for one forward of ``image``; ``blocks``: names as in
        :meth:`attention_blocks` (default all). Costs one forward plus one recomputation of each chosen
        attention from its recorded input; nothing is recorded when this is not called."""
        chosen = self.attention_blocks()
        if blocks is not None:
            unknown = [b for b in blocks if b not in chosen]
            if unknown:
                raise ValueError(f"unknown DGMN2 blocks {unknown}; the model has {', '.join(chosen)}")
            chosen = {b: chosen[b] for b in blocks}
        inputs: dict[str, tuple] = {}
        hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: inputs.__setitem__(name, args))
                 for name, m in chosen.items()]
        try:
            logits = self(image)
        finally:
            for h in hooks:
                h.remove()
        return logits, {name: chosen[name].internals(*inputs[name]) for name in chosen}
