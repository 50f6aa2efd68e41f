"""What a user gives (a file, a Gradio ``FileData`` dict, an array) → a prepared image → an analysis.

Errors are :class:`dgmn.inspect.explorer.InputError` with a message for the user; nothing the caller holds
is changed when one is raised.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .examples import ExampleSet, read_image_file
from .explorer import Analysis, Explorer, InputError, image_id, prepare_image


def file_path(source) -> str | None:
    """A path from what a file input delivers: a str/Path, an object with ``.path``, or a ``{"path": ...}`` dict."""
    if source is None:
        return None
    if isinstance(source, dict):
        source = source.get("path")
    return str(getattr(source, "path", source)) if source is not None else None


def read_source(source) -> tuple[np.ndarray, str, tuple[int, int]]:
    """(prepared (H', W', 3) uint8 image, notice, (H, W) as given) from a file (see :func:`file_path`) or an array."""
    if isinstance(source, np.ndarray):
        raw = source
    else:
        raw = read_image_file(file_path(source))
    img, notice = prepare_image(raw)
    return img, notice, tuple(raw.shape[:2])


def analyse_source(explorer: Explorer, source, names: list[str], current: Analysis | None = None,
                   examples: ExampleSet | None = None) -> Analysis:
    """Analyse ``source`` with ``names`` (``source=None`` re-analyses ``current``, e.g. for other models).
    The ground truth comes from ``examples`` when the image is one of them; models that already analysed
    the same image in ``current`` are not run again."""
    if source is None and current is None:
        raise InputError("Load or pick an image first.")
    if source is None:
        img, notice, raw_size = current.image, current.notice, current.source_size
    else:
        img, notice, raw_size = read_source(source)
    truth = examples.truth_for(img) if examples is not None else None
    same = current is not None and current.image_id == image_id(img)
    analysis = explorer.analyse(img, list(names or []), truth, current if same else None)
    analysis.notice, analysis.source_size = notice, raw_size
    return analysis
