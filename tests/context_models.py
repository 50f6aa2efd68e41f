"""Small models and cards shared by the tests: a tiny segmenter's model card, and DCN / CCNet segmenters whose
context parameters are moved off their initialisation (a fresh DCN samples exactly the grid with every mask at
0.5; a fresh CCNet has γ = 0 and adds nothing), so tests see offsets, uneven masks and peaked attention."""
import torch

from dgmn.data import ContextScenes
from dgmn.models import build_segmenter


def tiny_card(name: str, context: str, cfg: dict) -> dict:
    """The model card of a tiny ContextScenes segmenter (small backbone of width 16, 16 channels)."""
    ds = ContextScenes
    return {"name": name, "classes": list(ds.classes), "palette": [list(c) for c in ds.palette],
            "normalization": {"mean": list(ds.mean), "std": list(ds.std)},
            "architecture": {"backbone": "small", "backbone_cfg": {"width": 16}, "context": context, "channels": 16,
                             "num_classes": 8, "context_cfg": cfg}}


def trained_like(context: str, offset_bias: float = 3.0, gamma: float = 1.0, conv_gain: float = 1.0, **cfg):
    """A tiny eval-mode segmenter (seed 0) with context ``dcn`` (offset/mask conv: weights N(0, 0.05²), biases
    U(−offset_bias, offset_bias): offsets of a few pixels, some taps off the map; the DCN conv scaled by
    ``conv_gain``) or ``ccnet`` (γ = ``gamma``, query and key convs N(0, 0.3²): peaked attention)."""
    torch.manual_seed(0)
    m = build_segmenter("small", context, len(ContextScenes.classes), channels=16, backbone_cfg={"width": 16}, **cfg)
    with torch.no_grad():
        if context == "dcn":
            m.context.offset_mask.weight.normal_(std=0.05)
            m.context.offset_mask.bias.uniform_(-offset_bias, offset_bias)
            m.context.conv.weight.mul_(conv_gain)
        else:
            m.context.gamma.fill_(gamma)
            for c in (m.context.query_conv, m.context.key_conv):
                c.weight.normal_(std=0.3)
    return m.eval()
