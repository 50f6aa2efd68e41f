"""The explorer behind the app: models by name, image preparation, one analysis per (image, model), and
per-pixel answers as typed records (:mod:`dgmn.inspect.records`). No UI code here; :mod:`dgmn.app` wires it
to Gradio and :mod:`dgmn.viz`.

An :class:`Analysis` holds, per model, the prediction and the :class:`Inspector` records of one image, so a
click never re-runs a model: :meth:`Explorer.inspect` only reads the records. Pixels are (y, x).
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data import to_tensor
from ..models import CheckpointError, list_checkpoints, load_model
from .inspector import DCNRecord, DGMN2Record, DGMNRecord, Inspector, slide_settings
from .records import Inspection, ModelAnswer

MAX_SIDE = 1024  # larger images are downscaled (with a notice) so memory and latency stay bounded
MIN_SIDE = 16


class InputError(ValueError):
    """Bad user input; the message is meant for the user (what was wrong and what to do)."""


@dataclass
class ModelResult:
    prediction: np.ndarray  # (H, W) class indices
    inspector: Inspector
    layers: list[str]  # every context layer the inspector recorded, in the model's order
    logits: np.ndarray | None = None  # (K, H, W) float32, the model's output for the image
    crops: int = 1  # how many crops the model ran on (> 1: sliding-window inference, averaged logits)

    def probabilities(self, y: int, x: int) -> np.ndarray:
        """softmax over the K classes of the logits at image pixel (y, x): (K,) float64, summing to 1."""
        z = self.logits[:, int(y), int(x)].astype(np.float64)
        e = np.exp(z - z.max())
        return e / e.sum()

    def dgmn_layers(self) -> list[str]:
        """The recorded layers that are DGMN layers (walk diagnostics exist for these only)."""
        return [ln for ln in self.layers if isinstance(self.inspector.records.get(ln), DGMNRecord)]

    def dgmn2_layers(self) -> list[str]:
        """The recorded DGMN2 attention blocks ("stage s, block b")."""
        return [ln for ln in self.layers if isinstance(self.inspector.records.get(ln), DGMN2Record)]

    def walk_layers(self) -> list[str]:
        """The recorded layers with learned walks or offsets, DGMN and deformable-convolution layers
        (:meth:`Inspector.diagnostics` answers for these)."""
        return [ln for ln in self.layers if isinstance(self.inspector.records.get(ln), (DGMNRecord, DCNRecord))]


class ModelResults(dict):
    """{model name: :class:`ModelResult`} of one analysis, whose results may have been *shed* to keep the server
    within its memory budget (:class:`SessionBudget`): a shed model still counts as analysed (``in``, iteration)
    and is run again, transparently, the next time its result is read (``[]``, ``get``, ``values``, ``items``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shed: list[str] = []  # models whose results were dropped; rebuilt by ``restore`` on first use
        self.restore = None  # name → ModelResult (set by Explorer.analyse)

    def __contains__(self, name) -> bool:
        return dict.__contains__(self, name) or name in self.shed

    def __missing__(self, name):
        if name not in self.shed or self.restore is None:
            raise KeyError(name)
        result = self.restore(name)
        dict.__setitem__(self, name, result)
        if name in self.shed:
            self.shed.remove(name)
        return result

    def __iter__(self):
        return iter([*dict.keys(self), *self.shed])

    def __len__(self) -> int:
        return dict.__len__(self) + len(self.shed)

    def keys(self):
        return list(self)

    def get(self, name, default=None):
        return self[name] if name in self else default

    def values(self):
        return [self[n] for n in list(self)]

    def items(self):
        return [(n, self[n]) for n in list(self)]

    def held(self) -> list[ModelResult]:
        """The results in memory now (shed ones are not run again)."""
        return list(dict.values(self))

    def drop(self) -> None:
        """Shed every result (they are rebuilt on next use)."""
        names = list(dict.keys(self))
        dict.clear(self)
        self.shed += [n for n in names if n not in self.shed]


@dataclass
class Analysis:
    image: np.ndarray  # (H, W, 3) uint8, as analysed
    image_id: str  # content hash: answers are tied to the image they were computed on
    truth: np.ndarray | None
    results: ModelResults = field(default_factory=ModelResults)
    notice: str = ""
    source_size: tuple[int, int] | None = None  # (H, W) of the image as given, before any downscaling
    derived: dict = field(default_factory=dict)  # results computed from this analysis, kept with it (e.g. class flows)
    key: int = field(default_factory=lambda: next(_ANALYSIS_KEYS))  # this analysis object, for SessionBudget

    def from_source(self, y: float, x: float) -> tuple[float, float]:
        """Map a pixel (y, x) of the given image to the analysed (possibly downscaled) image's pixels."""
        if self.source_size is None:
            return y, x
        H, W = self.image.shape[:2]
        return y * H / self.source_size[0], x * W / self.source_size[1]

    def layer_names(self) -> list[str]:
        """Every context layer any analysed model has, sorted with numbers in order ("stage 3, block 2" before
        "stage 3, block 10") (the app's layer picker)."""
        return sorted({ln for r in self.results.values() for ln in r.layers}, key=natural_key)

    def nbytes(self) -> int:
        """Bytes this analysis holds: the image (H, W, 3) uint8 and the truth, and per model the prediction (H, W)
        uint8, the logits (K, H, W) float32 and the Inspector's records (per DGMN layer and rate: walks, affinities,
        filters and weights at feature resolution; per Non-local layer: θ and φ; per DCN layer: offsets and masks;
        per CCNet layer: every pass's row and column attention, R·h·w·(h + w) numbers; per DGMN2 block, head and crop:
        offsets, content and position logits, 36·h·w numbers), and the results derived from it
        (``derived``). Tensors count their whole storage (a slice keeps it all), shared storage once; shed
        results count nothing. For a 1024×1024 image and the three default shipped models this is about 126 MB
        (234 MB with all six); for a 128×256 scene about 4 MB."""
        seen: set = set()
        total = nbytes(self.image, seen) + nbytes(self.truth, seen) + nbytes(self.derived, seen)
        for r in self.results.held():
            total += nbytes(r.prediction, seen) + nbytes(r.logits, seen) + nbytes(r.inspector.records, seen)
        return total

    def shed(self) -> None:
        """Drop what can be computed again (the models' results and everything derived), keeping the image and
        its truth: the analysis stays usable and runs its models again on first use."""
        self.results.drop()
        self.derived.clear()


def natural_key(name: str) -> list:
    """A sort key that orders the numbers inside a name by value."""
    import re

    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def inference_notes(analysis: "Analysis") -> list[str]:
    """One line per model of ``analysis`` that ran sliding-window inference: how many crops (for a status line)."""
    return [f"{name}: sliding-window inference, {r.crops} crops, averaged" for name, r in
            ((n, analysis.results[n]) for n in dict.keys(analysis.results)) if r.crops > 1]


_ANALYSIS_KEYS = itertools.count()
MEMORY_ENV = "DGMN_MEMORY_MB"
MEMORY_MB = 1024  # every analysis of the server together (sessions and API calls), at most this many MB


def budget_mb(value, env: str, default: float) -> float:
    """A memory budget in MB: ``value``, else ``$env``, else ``default``. ValueError naming ``env`` for anything
    but a finite number ≥ 0."""
    raw = value if value is not None else os.environ.get(env) or default
    try:
        mb = float(raw)
    except (TypeError, ValueError):
        mb = float("nan")
    if not 0 <= mb < float("inf"):
        raise ValueError(f"{env} (a memory budget, in MB) must be a number ≥ 0, got {raw!r}; e.g. {env}={default}")
    return mb


class SessionBudget:
    """Every analysis the explorer made, bounded together by bytes: the least recently used are *shed*
    (:meth:`Analysis.shed`) when the total passes ``max_mb``, so however many sessions and API calls hold
    analyses, their results stay within the budget (each is rebuilt, transparently, when used again).
    An analysis larger than the whole budget is kept while it is the one in use."""

    def __init__(self, max_mb: float):
        self.max_mb = max_mb
        self._cache = LRUCache(max_items=2**31, max_bytes=int(max_mb * 2**20), size=Analysis.nbytes,
                               on_evict=lambda key, analysis: analysis.shed(), keep_last=True)

    def touch(self, analysis: "Analysis") -> None:
        """``analysis`` was just used (or grew): measure it again and make it the most recently used."""
        self._cache.put(analysis.key, analysis)

    @property
    def nbytes(self) -> int:
        return self._cache.nbytes

    def __len__(self) -> int:
        return len(self._cache)


def image_id(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes() + str(image.shape).encode()).hexdigest()[:16]


def prepare_image(image: np.ndarray, max_side: int = MAX_SIDE) -> tuple[np.ndarray, str]:
    """Any (H, W), (H, W, 1|3|4) array of uint8/uint16/float → (H', W', 3) uint8, and a notice if it was changed."""
    import cv2

    a = np.asarray(image)
    notes = []
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise InputError(f"this does not look like an image (array of shape {a.shape}); upload a PNG or JPEG photo")
    if min(a.shape[:2]) < MIN_SIDE:
        raise InputError(f"the image is only {a.shape[1]}×{a.shape[0]} pixels; upload one at least {MIN_SIDE}×{MIN_SIDE}")
    if a.dtype == np.uint16:
        a = (a / 257).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a * (255 if a.max() <= 1.0 else 1), 0, 255).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
        notes.append("grayscale image shown in colour channels")
    elif a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255
        a = (a[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
        notes.append("transparency flattened onto white")
    H, W = a.shape[:2]
    if max(H, W) > max_side:
        s = max_side / max(H, W)
        a = cv2.resize(a, (max(MIN_SIDE, round(W * s)), max(MIN_SIDE, round(H * s))), interpolation=cv2.INTER_AREA)
        notes.append(f"downscaled from {W}×{H} to {a.shape[1]}×{a.shape[0]}")
    return np.ascontiguousarray(a), "; ".join(notes)


class Explorer:
    """Models by name (checkpoints loaded on first use, plus models registered in memory with
    :meth:`add_model`) and analyses of images with any subset of them."""

    def __init__(self, checkpoint_dir: str | Path | None = None, device: str = "cpu", memory_mb: float | None = None):
        from ..models import default_checkpoint_dir

        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else default_checkpoint_dir()
        self.device = torch.device(device)
        self._models: dict[str, torch.nn.Module] = {}
        self._cards: dict[str, dict] = {}
        self._registered: list[str] = []  # in-memory models, listed before the checkpoints
        self._lock = threading.RLock()
        self.budget = SessionBudget(budget_mb(memory_mb, MEMORY_ENV, MEMORY_MB))  # every analysis made, together

    @property
    def lock(self) -> threading.RLock:
        """Held while a model runs (its hooks record into one inspector at a time)."""
        return self._lock

    @property
    def registered(self) -> list[str]:
        """The names of the models added in memory with :meth:`add_model`, in the order added."""
        return list(self._registered)

    def available(self) -> list[str]:
        return self._registered + [n for n in list_checkpoints(self.checkpoint_dir) if n not in self._registered]

    def add_model(self, name: str, model: torch.nn.Module, card: dict, listed: bool = True) -> None:
        """Offer an in-memory model under ``name``. ``card`` needs ``classes``, ``palette`` ((r, g, b) per
        class) and ``normalization`` ({"mean": [3], "std": [3]}), as a checkpoint's model card does.
        ``listed=False``: usable by name but not offered in :meth:`available` (e.g. training snapshots)."""
        _check_name(name)
        missing = [k for k in ("classes", "palette", "normalization") if k not in card]
        if missing:
            raise ValueError(f"add_model({name!r}): the card lacks {', '.join(missing)}")
        with self._lock:
            self._models[name], self._cards[name] = model.eval(), dict(card, name=name)
            if listed and name not in self._registered:
                self._registered.append(name)

    def warm_up(self, names) -> None:
        """Load each of ``names`` and run it once on a small blank image, so that a user's first request does not
        pay the one-time costs (reading the checkpoint, PyTorch's first-call imports: about 2 s on 2 cores).
        Meant for a background thread at start; a model that cannot be loaded is skipped here (it says why when
        it is used)."""
        for name in names:
            try:
                model = self.model(name)
            except InputError:
                continue
            with torch.no_grad():
                model(torch.zeros(1, 3, 64, 64, device=self.device))

    def model(self, name: str) -> torch.nn.Module:
        _check_name(name, self.available())
        with self._lock:
            if name not in self._models or name not in self._cards:
                if name not in self.available():
                    raise InputError(f"there is no model named {name!r}; choose one of: {', '.join(self.available()) or 'none available'}")
                try:
                    model = load_model(name, self.device, directory=self.checkpoint_dir)
                except CheckpointError as exc:
                    raise InputError(f"model {name!r} cannot be loaded: {exc}") from None
                self._models[name], self._cards[name] = model, model.card
            return self._models[name]

    def card(self, name: str) -> dict:
        """The model card of ``name`` (classes, palette, normalization, …); loads the model if needed."""
        self.model(name)
        return self._cards[name]

    def to_tensor(self, image: np.ndarray, card: dict) -> torch.Tensor:
        """(H, W, 3) uint8 → (1, 3, H, W) on the explorer's device, normalised as the model card says."""
        norm = card["normalization"]
        return to_tensor(image, mean=norm["mean"], std=norm["std"]).unsqueeze(0).to(self.device)

    def analyse(self, image: np.ndarray, names: list[str], truth: np.ndarray | None = None, analysis: Analysis | None = None,
                progress=None) -> Analysis:
        """Run each named model once on ``image`` (already prepared); reuses ``analysis`` for models it already ran.
        A model whose card says ``"inference": {"mode": "slide", …}`` (converted DGMN2 checkpoints) runs mmseg's
        sliding-window inference (:meth:`Inspector.run`); ``progress(name, done, total)`` is called after each of
        its crops."""
        if not names:
            raise InputError("no model selected; pick at least one model to compare")
        iid = image_id(image)
        if analysis is None or analysis.image_id != iid:
            analysis = Analysis(image, iid, truth)
        analysis.results.restore = lambda name, a=analysis: self._restore(a, name)
        for name in names:
            if name not in analysis.results:
                analysis.results[name] = self._run(name, image, progress)
        self.budget.touch(analysis)
        return analysis

    def _run(self, name: str, image: np.ndarray, progress=None) -> ModelResult:
        """Model ``name`` on ``image`` (prepared): its prediction, logits and Inspector records (sliding-window
        inference when its card asks for it; ``progress(name, done, total)`` after each crop)."""
        model, card = self.model(name), self.card(name)
        slide = slide_settings(card)
        report = None if progress is None else (lambda done, total: progress(name, done, total))
        with self._lock:  # one forward at a time per model object: hooks record into its inspector
            ins = Inspector(model)
            try:
                logits = ins.run(self.to_tensor(image, card), slide=slide, progress=report)
            finally:
                ins.close()
        _check_logits(name, logits, image.shape[:2], len(card["classes"]))
        return ModelResult(logits[0].argmax(0).cpu().numpy().astype(np.uint8), ins, list(ins.records),
                           logits[0].float().cpu().numpy(), crops=max(len(ins.crops), 1))

    def _restore(self, analysis: Analysis, name: str) -> ModelResult:
        """A shed result of ``analysis`` run again (the same model on the same image: the same result)."""
        result = self._run(name, analysis.image)
        dict.__setitem__(analysis.results, name, result)
        self.budget.touch(analysis)
        return result

    def inspect(self, analysis: Analysis, y: float, x: float, names: list[str], layer: str | None = None) -> Inspection:
        """Per model: the class predicted at image pixel (y, x) and what every (or the chosen) context layer did there."""
        H, W = analysis.image.shape[:2]
        if not (0 <= x < W and 0 <= y < H):
            raise InputError(f"the point (x={x:.0f}, y={y:.0f}) is outside the {W}×{H} image: x must be in 0…{W - 1} "
                             f"and y in 0…{H - 1}")
        out = Inspection(y=y, x=x, image_id=analysis.image_id)
        self.budget.touch(analysis)
        for name in names:
            if name not in analysis.results:
                raise InputError(f"model {name!r} has not analysed this image; select it and run the analysis again")
            res, classes = analysis.results[name], self.card(name)["classes"]
            cls = int(res.prediction[int(y), int(x)])
            entry = ModelAnswer(class_name=classes[cls], class_index=cls,
                                probabilities=dict(zip(classes, map(float, res.probabilities(y, x)))))
            if analysis.truth is not None:
                t = int(analysis.truth[int(y), int(x)])
                entry.truth = classes[t] if t < len(classes) else None
            for ln in [layer] if layer in res.layers else res.layers:
                entry.layers[ln] = res.inspector.query(float(y), float(x), [ln])[ln]
            out.models[name] = entry
        return out

    def inspect_xy(self, analysis: Analysis, x: float, y: float, names: list[str], layer: str | None = None) -> dict:
        """The ``inspect_xy`` endpoint's answer (JSON) for pixel (x, y) of the analysed image: :meth:`inspect`
        with the endpoint's argument order, for scripts that mirror the endpoint."""
        return self.inspect(analysis, y, x, names, layer).to_json()


def _check_name(name, available=None) -> None:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise InputError(f"{name!r} is not a model name; choose one of: {', '.join(available or []) or 'none available'}")


def _check_logits(name: str, logits: torch.Tensor, size: tuple[int, int], classes: int) -> None:
    if logits.dim() != 4 or logits.shape[1] != classes or tuple(logits.shape[-2:]) != tuple(size):
        raise InputError(
            f"model {name!r} returned logits of shape {tuple(logits.shape)} for a {size[1]}×{size[0]} image; the explorer needs "
            f"(1, {classes}, {size[0]}, {size[1]}): one channel per class at the image's size (upsample inside the model's forward)"
        )


class LRUCache:
    """A thread-safe LRU map bounded by entries and, optionally, by bytes.

    ``max_bytes`` with ``size`` (a function value → bytes, e.g. :meth:`Analysis.nbytes`): after each
    :meth:`put` the least recently used entries are evicted until the sizes (measured when each was put) sum
    to at most ``max_bytes`` — the entry just put too, if it alone is larger, so the bound always holds
    (unless ``keep_last``: the entry just put stays). Put an entry again after it grows (a cached analysis that
    ran more models) to re-measure it. ``on_evict(key, value)`` is called for each evicted entry."""

    def __init__(self, max_items: int = 4, max_bytes: int | None = None, size=None, on_evict=None, keep_last: bool = False):
        if max_bytes is not None and size is None:
            raise ValueError("LRUCache: a byte budget (max_bytes) needs size, a function value → bytes")
        self.max_items, self.max_bytes, self.size = max_items, max_bytes, size
        self.on_evict, self.keep_last = on_evict, keep_last
        self._d: OrderedDict = OrderedDict()  # key → (value, bytes)
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key][0]
            return None

    def put(self, key, value) -> None:
        nbytes = int(self.size(value)) if self.size is not None else 0
        with self._lock:
            if key in self._d:
                self._bytes -= self._d.pop(key)[1]
            self._d[key] = (value, nbytes)
            self._bytes += nbytes
            evicted = []
            while len(self._d) > (1 if self.keep_last else 0) and (
                    len(self._d) > self.max_items or (self.max_bytes is not None and self._bytes > self.max_bytes)):
                old_key, (old, old_bytes) = self._d.popitem(last=False)
                self._bytes -= old_bytes
                evicted.append((old_key, old))
        if self.on_evict is not None:
            for old_key, old in evicted:
                if old is not value:
                    self.on_evict(old_key, old)

    @property
    def nbytes(self) -> int:
        """The bytes the entries held when they were put (0 without ``size``)."""
        return self._bytes

    def __contains__(self, key) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)


def nbytes(obj, seen: set | None = None) -> int:
    """Bytes of the arrays and tensors inside ``obj`` (dataclasses, dicts, lists, tuples of them); storage shared
    by several (views) is counted once. Other objects count 0."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        key = ("tensor", storage.data_ptr(), storage.nbytes())
        if key in seen:
            return 0
        seen.add(key)
        return storage.nbytes()
    if isinstance(obj, np.ndarray):
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base
        key = ("array", id(base))
        if key in seen:
            return 0
        seen.add(key)
        return base.nbytes
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(nbytes(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    if isinstance(obj, dict):
        return sum(nbytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v, seen) for v in obj)
    return 0
