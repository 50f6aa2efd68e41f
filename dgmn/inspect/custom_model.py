"""A user's own in-memory model in the explorer: its card (classes, palette, normalisation) and its row in
the model table. Any ``nn.Module`` mapping (B, 3, H, W) images to (B, K, H, W) logits works; its DGMN, NonLocal2d,
DeformableContext and CrissCross2d layers, wherever they sit, are inspected."""
from __future__ import annotations

import colorsys
import math

import torch.nn as nn

from ..modules import DGMN, CrissCross2d, DeformableContext, NonLocal2d

IMAGENET_NORMALIZATION = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
OKABE_ITO = ([230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66], [0, 114, 178], [213, 94, 0],
             [204, 121, 167], [0, 0, 0])


def default_palette(num_classes: int) -> list[list[int]]:
    """Okabe–Ito colours (readable by colour-blind users) for up to 8 classes, then evenly spaced hues."""
    if num_classes <= len(OKABE_ITO):
        return [list(c) for c in OKABE_ITO[:num_classes]]
    return [[round(255 * v) for v in colorsys.hsv_to_rgb(i / num_classes, 0.65, 0.9)] for i in range(num_classes)]


def custom_card(classes, palette=None, normalization=None, name: str = "my-model") -> dict:
    """The card the explorer needs for a model that has none. ``normalization``: ``{"mean": [3], "std": [3]}``
    or ``(mean, std)`` of the 0–1 RGB input the model expects (default: ImageNet's)."""
    classes = list(classes)
    if not classes or not all(isinstance(c, str) and c for c in classes):
        raise ValueError("classes must be a non-empty list of class names (non-empty strings), one per output channel")
    palette = default_palette(len(classes)) if palette is None else [list(c) for c in palette]
    if len(palette) != len(classes) or not all(len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in palette):
        raise ValueError(f"palette must hold one (r, g, b) colour of integers 0–255 per class ({len(classes)} classes)")
    if normalization is None:
        normalization = IMAGENET_NORMALIZATION
    elif not isinstance(normalization, dict):
        mean, std = normalization
        normalization = {"mean": list(mean), "std": list(std)}
    mean, std = list(normalization.get("mean", [])), list(normalization.get("std", []))
    if len(mean) != 3 or len(std) != 3 or not all(math.isfinite(v) for v in mean + std) or min(std) <= 0:
        raise ValueError("normalization needs 3 finite means and 3 positive stds: {'mean': [r, g, b], 'std': [r, g, b]}")
    return {"name": name, "classes": classes, "palette": palette, "normalization": {"mean": mean, "std": std}}


def custom_summary(name: str, model: nn.Module) -> dict:
    """A row of :func:`dgmn.inspect.model_cards.model_summaries` for an in-memory model (no card metrics)."""
    kinds = ((DGMN, "DGMN"), (NonLocal2d, "Non-local"), (DeformableContext, "deformable-conv"), (CrissCross2d, "criss-cross"))
    counts = [(sum(isinstance(m, kind) for m in model.modules()), what) for kind, what in kinds]
    parts = [f"{n} {what} layer{'s' if n > 1 else ''}" for n, what in counts if n]
    return {"name": name, "context": "your model: " + (", ".join(parts) or "no DGMN or Non-local layer"), "miou": None,
            "house/boathouse": None, "seeds": None, "params": sum(p.numel() for p in model.parameters()), "macs": None,
            "macs_input": None, "problem": None}
