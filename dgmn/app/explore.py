"""``dgmn.explore(model, classes)``: the app on your own model, next to the shipped ones."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..inspect.custom_model import custom_card
from ..inspect.explorer import Explorer


def explore(model: nn.Module, classes, palette=None, normalization=None, name: str = "my-model", launch: bool = True,
            checkpoints=None, **launch_options):
    """Open DGMN Explorer on ``model``: any ``nn.Module`` mapping (B, 3, H, W) images (0–1 RGB, normalised with
    ``normalization``, default ImageNet's mean/std) to (B, len(classes), H, W) logits. Its DGMN and NonLocal2d
    layers, wherever they sit, are inspected; the shipped checkpoints (or ``checkpoints``, a folder) are offered
    next to it. ``palette``: one (r, g, b) per class (default: colour-blind-safe colours).

    ``launch=False`` returns the ``gr.Blocks`` unlaunched; otherwise the app is served with
    ``launch_options`` (``server_port``, ``server_name`` (default 127.0.0.1), ``prevent_thread_lock``, …) and returned.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"explore: model must be a torch.nn.Module, got {type(model).__name__}")
    card = custom_card(classes, palette, normalization, name)
    param = next(model.parameters(), None)
    explorer = Explorer(checkpoints, param.device if param is not None else torch.device("cpu"))
    explorer.add_model(name, model, card)
    defaults = [name, "dgmn-full", "fcn-nonlocal"]
    if not launch:
        from .blocks import build_app

        return build_app(explorer, default_models=defaults)
    from .launch import launch as serve

    blocking = not launch_options.pop("prevent_thread_lock", False)
    return serve(explorer, blocking=blocking, default_models=defaults, **launch_options)
