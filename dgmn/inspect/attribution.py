"""Attribution of one pixel's class logit to the input image (its effective receptive field), with captum.

    map[y', x'] = Σ_c |∂ logit[cls, y, x] / ∂ image[c, y', x']|                 (Saliency: one backward pass)
    map[y', x'] = Σ_c |(image − 0)[c, y', x'] · ∫₀¹ ∂ logit / ∂ image (α·image) dα|   (Integrated Gradients)

Integrated Gradients costs ``n_steps`` forward and backward passes (run in chunks of ``internal_batch_size``).

A model that runs by sliding-window inference (converted DGMN2 checkpoints) gives pixel (y, x) the mean of the
logits of the crops that cover it, logit = (1/|C|) Σ_{c ∈ C} model(image[c])[cls, y − y_c, x − x_c]; with ``crops``
(the windows, as (y1, x1, y2, x2)) that is the function attributed, exactly, and only the ≤ 4 covering crops run.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn

METHODS = ("saliency", "integrated_gradients")


class PixelLogit(nn.Module):
    """model(image)[:, cls, y, x] — a scalar output per image for captum; with ``crops``, the mean over the crops
    that cover (y, x) of that crop's logit there (sliding-window inference, see the module docstring)."""

    def __init__(self, model: nn.Module, cls: int, y: int, x: int, crops=None):
        super().__init__()
        self.model, self.cls, self.y, self.x = model, cls, y, x
        self.crops = [c for c in crops if c[0] <= y < c[2] and c[1] <= x < c[3]] if crops else None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if not self.crops:
            return self.model(image)[:, self.cls, self.y, self.x]
        logits = [self.model(image[:, :, y1:y2, x1:x2])[:, self.cls, self.y - y1, self.x - x1]
                  for y1, x1, y2, x2 in self.crops]
        return torch.stack(logits).mean(0)


def attribute_pixel(model: nn.Module, image: torch.Tensor, y: int, x: int, cls: int, method: str = "saliency",
                    n_steps: int = 24, internal_batch_size: int = 8,
                    progress: Optional[Callable[[float], None]] = None, crops=None) -> torch.Tensor:
    """Attribution map (H, W) ≥ 0 of pixel (y, x)'s logit for class ``cls``; image (1, 3, H, W) or (3, H, W).
    ``crops``: the sliding windows (y1, x1, y2, x2) of a model that runs by sliding-window inference."""
    from captum.attr import IntegratedGradients, Saliency

    x_in = (image.unsqueeze(0) if image.dim() == 3 else image).detach().clone().requires_grad_(True)
    H, W = x_in.shape[-2:]
    if not (0 <= y < H and 0 <= x < W):
        raise ValueError(f"attribute_pixel: pixel (y={y}, x={x}) is outside the {H}×{W} image")
    if method not in METHODS:
        raise ValueError(f"attribute_pixel: method must be one of {', '.join(METHODS)}, got {method!r}")
    was_training = model.training
    model.eval()
    try:
        f = PixelLogit(model, int(cls), int(y), int(x), crops)
        if method == "saliency":
            attr = Saliency(f).attribute(x_in, abs=True)
        else:
            steps = int(n_steps)
            seen = [0]

            def counted(batch: torch.Tensor) -> torch.Tensor:  # captum calls this once per internal batch
                out = f(batch)
                seen[0] += batch.shape[0]
                if progress is not None:
                    progress(min(1.0, seen[0] / steps))
                return out

            attr = IntegratedGradients(counted).attribute(
                x_in, baselines=torch.zeros_like(x_in), n_steps=steps, method="riemann_middle",
                internal_batch_size=int(internal_batch_size),
            ).abs()
    finally:
        model.train(was_training)
    return attr[0].sum(0).detach()
