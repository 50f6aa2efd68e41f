"""The public endpoints' work, without any UI: ``inspect_xy``, ``segment`` and ``what_if`` for an image file.

Each call carries its image, so analyses are kept per image content in an LRU cache shared by all callers,
bounded by entries and by bytes: ``cache_mb`` megabytes (default ``$DGMN_CACHE_MB``, else
:data:`API_CACHE_MB`), measured with :meth:`Analysis.nbytes` whenever an analysis is put (again after it
grew); what it evicts is handed back to the operating system (:func:`release_freed_memory`). Pixels are
(y, x) here; the UI converts the endpoints' (x, y) once, where the request arrives.
"""
from __future__ import annotations

import functools
import math
import os
import threading
import time

from .explorer import Analysis, Explorer, InputError, LRUCache, budget_mb, image_id
from .label_maps import encode_label_map
from .uploads import read_source
from .timeline_view import TimelineView
from .what_if import what_if

API_CACHE_ITEMS = 16  # analyses kept for the endpoints at most…
API_CACHE_MB = 256  # …and at most this many MB of them (4 MB for a 128×256 scene, 126 MB for a 1024×1024 photo, 3 models)
CACHE_ENV = "DGMN_CACHE_MB"


def cache_budget_mb(value: str | float | None = None) -> float:
    """The endpoints' cache budget in MB: ``value``, else ``$DGMN_CACHE_MB``, else :data:`API_CACHE_MB`.
    ValueError (naming the variable) for anything but a finite number ≥ 0 (0: nothing is kept)."""
    return budget_mb(value, CACHE_ENV, API_CACHE_MB)


TRIM_EVERY_S = 10.0
_trim_lock = threading.Lock()
_last_trim = [float("-inf")]


def release_freed_memory(every: float = TRIM_EVERY_S) -> bool:
    """Hand freed heap memory back to the operating system (glibc's ``malloc_trim``), at most once per ``every``
    seconds; True if it did. The server runs requests on many threads and glibc keeps what each frees in that
    thread's arena, so without this a server whose cache keeps evicting creeps up although it holds no more
    (measured: the 10-minute soak's resident memory grew 21%, and stayed flat with a trim every 15 s).
    Does nothing where the C library has no ``malloc_trim`` (macOS, musl)."""
    with _trim_lock:
        now = time.monotonic()
        if now - _last_trim[0] < every:
            return False
        _last_trim[0] = now
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.lru_cache(maxsize=None)
def _malloc_trim():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def pixel_numbers(y, x) -> tuple[float, float]:
    """(y, x) as finite floats, or an :class:`InputError` that says which is missing or not a number."""
    if x is None or y is None:
        raise InputError("x and y are required: the pixel to inspect, in the image's own pixels")
    try:
        fy, fx = float(y), float(x)
    except (TypeError, ValueError, OverflowError):
        fy = fx = float("nan")
    if not (math.isfinite(fy) and math.isfinite(fx)):
        shown = ", ".join(f"{k}={_short(v)}" for k, v in (("x", x), ("y", y)))
        raise InputError(f"x and y must be numbers (the pixel, in the image's own pixels, e.g. x=120, y=40), got {shown}")
    return fy, fx


def pixel_inside(analysis: Analysis, y: float, x: float) -> tuple[float, float]:
    """Source-image pixel (y, x) in the analysed image's pixels; :class:`InputError` if it lies outside the image."""
    sy, sx = y, x
    y, x = analysis.from_source(y, x)
    if not (0 <= y < analysis.image.shape[0] and 0 <= x < analysis.image.shape[1]):
        w, h = analysis.source_size[::-1] if analysis.source_size else analysis.image.shape[1::-1]
        raise InputError(f"the point (x={sx:.0f}, y={sy:.0f}) is outside the {w}×{h} image: x must be in 0…{w - 1} "
                         f"and y in 0…{h - 1}")
    return y, x


def _short(v, limit: int = 40) -> str:
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 1] + "…"


class Endpoints:
    """The endpoints' work over ``explorer``; analyses cached by image content (at most ``cache_items`` of them
    and ``cache_mb`` MB, see :func:`cache_budget_mb`)."""

    def __init__(self, explorer: Explorer, cache_items: int = API_CACHE_ITEMS, cache_mb: float | None = None):
        self.explorer = explorer
        self.timelines = TimelineView(explorer)
        self.cache_mb = cache_budget_mb(cache_mb)
        self.cache = LRUCache(cache_items, max_bytes=int(self.cache_mb * 2**20), size=Analysis.nbytes)

    def analysis(self, image_file, models) -> tuple[Analysis, list[str]]:
        """The analysis of ``image_file`` by ``models`` (cached by image content), and the model names."""
        img, notice, raw_size = read_source(image_file)
        names = list(models or [])
        key = image_id(img)
        analysis = self.explorer.analyse(img, names, analysis=self.cache.get(key))
        analysis.notice, analysis.source_size = notice, raw_size
        self.cache.put(key, analysis)
        release_freed_memory()
        return analysis, names

    def inspect(self, image_file, y, x, models) -> dict:
        """``inspect_xy``: {model: {class, class_index, layers: {...}}} (JSON) at pixel (y, x) of the image as given."""
        y, x = pixel_numbers(y, x)
        analysis, names = self.analysis(image_file, models)
        y, x = pixel_inside(analysis, y, x)
        return self.explorer.inspect(analysis, y, x, names).to_json()

    def what_if(self, image_file, y, x, model: str, edits, scope: str = "pixel") -> dict:
        """``what_if``: model ``model`` re-run with ``edits`` at pixel (y, x) of the image as given (see
        :mod:`dgmn.inspect.what_if`); the result JSON, the label map (image scope) as ``segment`` sends it."""
        if not isinstance(model, str):
            raise InputError(f"model must be one model name (a string), got {model!r}")
        y, x = pixel_numbers(y, x)
        analysis, _ = self.analysis(image_file, [model])
        y, x = pixel_inside(analysis, y, x)
        card = self.explorer.card(model)
        result = what_if(self.explorer, analysis, model, y, x, edits, scope)
        return result.to_json(lambda label_map: encode_label_map(label_map, card))

    def timeline(self, image_file, y, x, model: str) -> list[dict]:
        """``timeline``: per snapshot of ``model``'s training timeline {"step", "class", "probabilities", "layers"}
        at pixel (y, x) of the image as given ("layers" as in ``inspect_xy``)."""
        if not isinstance(model, str):
            raise InputError(f"model must be one model name (a string), got {model!r}")
        y, x = pixel_numbers(y, x)
        self.timelines.steps(model)  # refuses a model without a timeline before any analysis
        analysis, _ = self.analysis(image_file, [model])
        y, x = pixel_inside(analysis, y, x)
        answers = self.timelines.all_answers(analysis, model, y, x)
        self.cache.put(analysis.image_id, analysis)  # it now holds the snapshots' results too: measured again
        return answers

    def segment(self, image_file, models) -> dict:
        """``segment``: {model: {classes, palette, shape, png_base64, pixels}} (see :func:`encode_label_map`)."""
        analysis, names = self.analysis(image_file, models)
        return {n: encode_label_map(analysis.results[n].prediction, self.explorer.card(n)) for n in names}
