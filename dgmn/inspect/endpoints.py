"""The public endpoints' work, without any UI: ``inspect_xy``, ``segment`` and ``what_if`` for an image file.

Each call carries its image, so analyses are kept per image content in a bounded LRU cache shared by
all callers. Pixels are (y, x) here; the UI converts the endpoints' (x, y) once, where the request arrives.
"""
from __future__ import annotations

from .explorer import Analysis, Explorer, InputError, LRUCache, image_id
from .label_maps import encode_label_map
from .uploads import read_source
from .timeline_view import TimelineView
from .what_if import what_if

API_CACHE_ITEMS = 16  # analyses kept for the endpoints (a few MB each)


class Endpoints:
    def __init__(self, explorer: Explorer, cache_items: int = API_CACHE_ITEMS):
        self.explorer = explorer
        self.timelines = TimelineView(explorer)
        self.cache = LRUCache(cache_items)

    def analysis(self, image_file, models) -> tuple[Analysis, list[str]]:
        """The analysis of ``image_file`` by ``models`` (cached by image content), and the model names."""
        img, notice, raw_size = read_source(image_file)
        names = list(models or [])
        key = image_id(img)
        analysis = self.explorer.analyse(img, names, analysis=self.cache.get(key))
        analysis.notice, analysis.source_size = notice, raw_size
        self.cache.put(key, analysis)
        return analysis, names

    def inspect(self, image_file, y, x, models) -> dict:
        """``inspect_xy``: {model: {class, class_index, layers: {...}}} (JSON) at pixel (y, x) of the image as given."""
        analysis, names = self.analysis(image_file, models)
        if x is None or y is None:
            raise InputError("x and y are required: the pixel to inspect, in the image's own pixels")
        y, x = analysis.from_source(float(y), float(x))
        return self.explorer.inspect(analysis, y, x, names).to_json()

    def what_if(self, image_file, y, x, model: str, edits, scope: str = "pixel") -> dict:
        """``what_if``: model ``model`` re-run with ``edits`` at pixel (y, x) of the image as given (see
        :mod:`dgmn.inspect.what_if`); the result JSON, the label map (image scope) as ``segment`` sends it."""
        if not isinstance(model, str):
            raise InputError(f"model must be one model name (a string), got {model!r}")
        analysis, _ = self.analysis(image_file, [model])
        if x is None or y is None:
            raise InputError("x and y are required: the pixel to inspect, in the image's own pixels")
        y, x = analysis.from_source(float(y), float(x))
        card = self.explorer.card(model)
        result = what_if(self.explorer, analysis, model, y, x, edits, scope)
        return result.to_json(lambda label_map: encode_label_map(label_map, card))

    def timeline(self, image_file, y, x, model: str) -> list[dict]:
        """``timeline``: per snapshot of ``model``'s training timeline {"step", "class", "probabilities", "layers"}
        at pixel (y, x) of the image as given ("layers" as in ``inspect_xy``)."""
        if not isinstance(model, str):
            raise InputError(f"model must be one model name (a string), got {model!r}")
        self.timelines.steps(model)  # refuses a model without a timeline before any analysis
        analysis, _ = self.analysis(image_file, [model])
        if x is None or y is None:
            raise InputError("x and y are required: the pixel to inspect, in the image's own pixels")
        y, x = analysis.from_source(float(y), float(x))
        if not (0 <= y < analysis.image.shape[0] and 0 <= x < analysis.image.shape[1]):
            raise InputError(f"the point (x={x:.0f}, y={y:.0f}) is outside the {analysis.image.shape[1]}×{analysis.image.shape[0]} image; click inside it")
        return self.timelines.all_answers(analysis, model, y, x)

    def segment(self, image_file, models) -> dict:
        """``segment``: {model: {classes, palette, shape, png_base64, pixels}} (see :func:`encode_label_map`)."""
        analysis, names = self.analysis(image_file, models)
        return {n: encode_label_map(analysis.results[n].prediction, self.explorer.card(n)) for n in names}
