"""Attribution of one clicked pixel for several models in turn, with progress and a time limit.

For each model m the map is :func:`dgmn.inspect.attribute_pixel` of the class m predicts at (y, x):
(H, W) ≥ 0 over the analysed image (for a model that runs by sliding-window inference, of the logit its crops average
at the pixel). Integrated Gradients can be slow, so the run stops at ``time_limit``
seconds and says so; the maps finished before then are kept.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .attribution import attribute_pixel
from .explorer import Analysis, Explorer
from .inspector import slide_settings, slide_windows

METHOD_LABELS = {"Saliency": "saliency", "Integrated Gradients (slower)": "integrated_gradients"}


@dataclass
class AttributionMap:
    values: np.ndarray  # (H, W) ≥ 0
    class_name: str  # the class whose logit was attributed (the model's prediction at the pixel)


@dataclass
class AttributionRun:
    method: str  # "saliency" | "integrated_gradients"
    y: int
    x: int
    maps: dict[str, AttributionMap] = field(default_factory=dict)  # per model, in the order asked
    stopped_after: float | None = None  # the time limit (s) if the run was stopped, else None


def method_key(method: str) -> str:
    """'Saliency', 'Integrated Gradients (slower)' or a key of :data:`dgmn.inspect.attribution.METHODS` → the key."""
    key = METHOD_LABELS.get(method, method)
    if key not in METHOD_LABELS.values():
        raise ValueError(f"unknown attribution method {method!r}; choose one of: {', '.join(METHOD_LABELS)}")
    return key


def attribute_models(explorer: Explorer, analysis: Analysis, names: list[str], y: int, x: int, method: str,
                     time_limit: float = 60.0, progress: Optional[Callable[[float, str], None]] = None) -> AttributionRun:
    """Attribute pixel (y, x) for each of ``names`` that analysed the image. ``progress(fraction, what)`` is
    called as the work advances (0 → 1 over all models)."""
    run = AttributionRun(method_key(method), int(y), int(x))
    shown = [n for n in names if n in analysis.results]
    deadline = time.monotonic() + time_limit
    for i, name in enumerate(shown):
        model, card = explorer.model(name), explorer.card(name)
        cls = int(analysis.results[name].prediction[run.y, run.x])

        def report(frac: float, i=i, name=name) -> None:
            if progress is not None:
                progress((i + frac) / len(shown), f"{name}: {method}")
            if time.monotonic() > deadline:
                raise TimeoutError

        slide = slide_settings(card)  # the crops the model's answer at the pixel averages, as its analysis ran
        crops = slide_windows(analysis.image.shape[:2], slide) if slide else None
        try:
            with explorer.lock:
                attr = attribute_pixel(model, explorer.to_tensor(analysis.image, card), run.y, run.x, cls, run.method,
                                       progress=report, crops=crops)
        except TimeoutError:
            run.stopped_after = time_limit
            return run
        run.maps[name] = AttributionMap(attr.cpu().numpy(), card["classes"][cls])
    return run
