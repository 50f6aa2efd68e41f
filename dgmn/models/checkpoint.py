"""Checkpoints: ``<name>.safetensors`` (the tensors) + ``<name>.json`` (the model card). No pickle, ever.

The card holds the architecture (what :func:`build_segmenter` needs), classes and palette, the input
normalisation, dataset and seeds, the training command, commit and time, metrics on the held-out
split, params and MACs. :func:`load_model` rebuilds the architecture from the card and refuses any
checkpoint whose tensors do not match it, with a message that says what is wrong.

Checkpoints may come from anyone, so nothing in a card is trusted: :func:`check_checkpoint` checks the card
against :data:`CARD_LIMITS` (size and nesting before parsing), reads the tensor file's header without its
data, builds the card's architecture on the meta device (no memory, no initialisation) and compares names,
shapes, dtypes and sizes; only then does :func:`load_model` allocate the model, whose size is by then the
tensor file's. A card claiming 10⁶ channels is refused in milliseconds.

Two architecture families: the Dilated FCNs trained here (:class:`SegmenterConfig`: ``backbone``, ``context``,
``channels``, ``num_classes``) and DGMN2 (``{"family": "dgmn2", ...}``, :class:`dgmn.models.dgmn2.DGMN2Config`,
converted from the published checkpoints by ``python -m dgmn.convert dgmn2``). A DGMN2 card may also say how the
model was evaluated, ``"inference": {"mode": "slide", "crop_size": [h, w], "stride": [h, w]}``.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from .config import SegmenterConfig
from .dgmn2 import DGMN2Config, DGMN2Segmenter
from .segmenter import Segmenter, build_segmenter

CARD_FORMAT = "dgmn-checkpoint/1"
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"}
REQUIRED = ("format", "name", "architecture", "classes", "palette", "normalization")

# What a card may hold (each refused with a CheckpointError naming the field and the range). Cards come from other
# people: a card is read and checked, then its architecture built on the meta device and compared with the tensor
# file's header, before anything is allocated, so loading costs what the tensor file costs.
MAX_CARD_BYTES = 1_000_000  # a card file over 1 MB is refused unread (training writes ~5 kB)
MAX_CARD_DEPTH = 32  # JSON nesting, counted on the raw text before parsing (training writes 6 levels)
MAX_ARCH_LIST = 64  # entries of any list in "architecture" (e.g. DGMN's dilations): bounds the modules built
MAX_CLASSES = 255  # predictions are uint8 labels and 255 means "ignore"
MAX_CLASS_CHARS = 64  # each class name: a non-empty string of at most this many characters, each class once
MAX_NAME_CHARS = 128  # the card's "name"
MAX_HEADER_BYTES = 100_000_000  # a safetensors header (the safetensors library's own limit too)
CARD_LIMITS = {
    "card file": f"at most {MAX_CARD_BYTES:,} bytes", "JSON nesting": f"at most {MAX_CARD_DEPTH} levels",
    "name": f"a non-empty string of at most {MAX_NAME_CHARS} characters",
    "architecture": f"lists of at most {MAX_ARCH_LIST} entries; parameter count and shapes those of the tensor file",
    "architecture.num_classes": f"an integer in 1–{MAX_CLASSES}",
    "architecture (family dgmn2)": "4 stages: widths ≤ 4096, heads ≤ 64, depths ≤ 64, MLP ratios ≤ 16, tables ≤ 1024; "
                                   "head channels ≤ 4096, img_size ≤ 8192 (dgmn.models.dgmn2.config)",
    "inference": "if present: mode slide|whole; crop_size and stride 2 integers in 1–8192",
    "classes": f"num_classes distinct non-empty strings of at most {MAX_CLASS_CHARS} characters",
    "palette": "num_classes colours, each 3 integers in 0–255",
    "normalization": "mean: 3 finite numbers; std: 3 finite numbers > 0",
    "dataset, training": "objects if present; dataset.name and training.command strings",
    "params": "if present, the architecture's parameter count",
}
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2"}
SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                      "BOOL": torch.bool}
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message says what is wrong and what to do."""


def default_checkpoint_dir() -> Path:
    """``$DGMN_CHECKPOINTS`` if set; else the shipped checkpoints: ``dgmn/checkpoints`` where the package is
    installed from a wheel, the repository's ``checkpoints/`` folder in a clone."""
    env = os.environ.get("DGMN_CHECKPOINTS")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parents[1]
    installed = package / "checkpoints"
    return installed if installed.is_dir() else package.parent / "checkpoints"


SNAPSHOT = "last"  # python -m dgmn.train --out DIR keeps its running snapshot as DIR/last.* beside DIR/state.json


def is_training_snapshot(stem: Path) -> bool:
    """Whether ``stem`` (a path without suffix) is the running snapshot of a ``python -m dgmn.train`` folder, not a
    finished model: ``DIR/last`` beside the run's ``DIR/state.json``."""
    return stem.name == SNAPSHOT and (stem.parent / "state.json").is_file()


def list_checkpoints(directory: str | Path | None = None) -> list[str]:
    """Names of the complete checkpoints (both files present) in ``directory``, sorted; a training folder's running
    snapshot (:func:`is_training_snapshot`) is not one (:func:`training_folder_note` says how to load it)."""
    d = Path(directory) if directory is not None else default_checkpoint_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.safetensors")
                  if p.with_suffix(".json").is_file() and not is_training_snapshot(p.with_suffix("")))


def training_folder_note(directory: str | Path | None) -> str | None:
    """For a ``python -m dgmn.train --out`` folder, one sentence: which model it finished (listed under its name) or
    that it has none yet, and how to open its snapshot explicitly. None for any other folder."""
    d = Path(directory) if directory is not None else default_checkpoint_dir()
    snapshot = d / SNAPSHOT
    if not (is_training_snapshot(snapshot) and snapshot.with_suffix(".safetensors").is_file()):
        return None
    try:
        step = json.loads((d / "state.json").read_text()[:10_000]).get("step")
    except (OSError, ValueError, AttributeError):
        step = None
    at = f" (step {step})" if isinstance(step, int) else ""
    finished = list_checkpoints(d)
    head = (f"{d} is a training folder; its final model is listed as {', '.join(finished)}." if finished
            else f"{d} is a training folder whose run has not finished: it has no final model yet.")
    return (f"{head} Its running snapshot{at} is not listed: load it explicitly with "
            f"`dgmn.load_model({str(snapshot)!r})`, or copy {SNAPSHOT}.safetensors and {SNAPSHOT}.json into a folder of "
            "their own and open that with --checkpoints.")


def resolve(name_or_path: str | Path, directory: str | Path | None = None) -> tuple[Path, Path]:
    """(tensors path, card path) for a checkpoint name (looked up in ``directory``) or a path to either file."""
    p = Path(name_or_path)
    if p.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"refusing to load {p.name}: {p.suffix} files are Python pickles, which can run arbitrary code. "
            "Only .safetensors checkpoints with a .json model card are loaded; convert yours with "
            "`safetensors.torch.save_file(model.state_dict(), 'model.safetensors')` in a trusted environment."
        )
    if p.suffix in (".safetensors", ".json") or len(p.parts) > 1:
        stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    else:
        d = Path(directory) if directory is not None else default_checkpoint_dir()
        stem = d / p.name
        if not stem.with_suffix(".safetensors").exists() and not stem.with_suffix(".json").exists():
            have = list_checkpoints(d)
            raise CheckpointError(
                f"no checkpoint named {p.name!r} in {d}; "
                + (f"available: {', '.join(have)}" if have else "that folder holds no checkpoints (train one with `python -m dgmn.train`)")
            )
    tensors, card = Path(str(stem) + ".safetensors"), Path(str(stem) + ".json")
    for f, what in ((tensors, "tensors"), (card, "model card")):
        if not f.is_file():
            raise CheckpointError(f"checkpoint {stem.name!r} is incomplete: its {what} file {f} is missing")
    return tensors, card


def read_card(path: Path) -> dict[str, Any]:
    """The model card at ``path``, checked against :data:`CARD_LIMITS` before and after parsing (see
    :func:`check_card`); :class:`CheckpointError` naming the field and the allowed range otherwise."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CARD_BYTES + 1)  # never more than the limit, whatever the file claims
    except OSError as exc:
        raise CheckpointError(f"model card {path} cannot be read ({exc}); restore it from the training output") from None
    if len(raw) > MAX_CARD_BYTES:
        raise CheckpointError(f"model card {path} is larger than {MAX_CARD_BYTES:,} bytes (1 MB), the most a card may be; "
                              "a card holds the architecture, classes and scores (a few kB), so this is not one — "
                              "restore it from the training output")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"model card {path} is not valid JSON ({exc}); restore it from the training output") from None
    depth = json_depth(text)
    if depth > MAX_CARD_DEPTH:
        raise CheckpointError(f"model card {path} nests JSON {depth} levels deep; a card may nest at most {MAX_CARD_DEPTH} "
                              "levels (cards written by training nest 6) — restore it from the training output")
    try:
        card = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an integer of more than 4300 digits
        raise CheckpointError(f"model card {path} is not valid JSON ({_cut(str(exc), 200)}); restore it from the training output") from None
    return check_card(card, path)


def json_depth(text: str) -> int:
    """How deep the JSON in ``text`` nests (``[]`` and ``{}`` outside strings), counted without parsing it."""
    brackets = re.findall(r"[\[\]{}]", _JSON_STRING.sub('""', text))
    return max(itertools.accumulate(1 if b in "[{" else -1 for b in brackets), default=0)


def check_card(card: Any, path: str | Path = "(in memory)") -> dict[str, Any]:
    """The card itself, if every field the loader and the app use is within :data:`CARD_LIMITS`; otherwise a
    :class:`CheckpointError` that names the field, the allowed range and what to do."""
    if not isinstance(card, dict):
        raise CheckpointError(f"model card {path} must hold a JSON object")
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise CheckpointError(f"model card {path} lacks {', '.join(missing)}; it is not a dgmn model card")
    if card["format"] != CARD_FORMAT:
        raise CheckpointError(f"model card {path} has format {_short(card['format'])}; this version reads {CARD_FORMAT!r}")

    def bad(field: str, rule: str, got: Any, described: bool = False) -> CheckpointError:
        return CheckpointError(f"model card {path}: {field} {rule}, got {got if described else _short(got)}; fix the card "
                               "(or use the one written by the training run)")

    if not _text(card["name"], MAX_NAME_CHARS):
        raise bad("name", f"must be a non-empty string of at most {MAX_NAME_CHARS} characters", card["name"])
    arch = card["architecture"]
    dgmn2 = isinstance(arch, dict) and "family" in arch
    if dgmn2:
        if arch["family"] != "dgmn2":
            raise bad("architecture.family", "must be \"dgmn2\" (or absent, for the Dilated FCN family)", arch["family"])
    elif not isinstance(arch, dict) or not {"backbone", "context", "num_classes", "channels"} <= set(arch):
        raise CheckpointError(f"model card {path}: 'architecture' needs backbone, context, channels and num_classes")
    for where, value in _lists(arch, "architecture"):
        if len(value) > MAX_ARCH_LIST:
            raise bad(where, f"may list at most {MAX_ARCH_LIST} entries", f"{len(value)}", described=True)
    k = arch.get("num_classes")
    if not _int(k) or not 1 <= k <= MAX_CLASSES:
        raise bad("architecture.num_classes", f"must be an integer in 1–{MAX_CLASSES} (predictions are 8-bit labels, "
                  "255 meaning 'ignore')", k)
    if dgmn2:
        try:
            DGMN2Config.from_architecture(arch)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"model card {path}: architecture (DGMN2) {_cut(str(exc), 300)}; fix the card "
                                  "(or convert the checkpoint again with `python -m dgmn.convert dgmn2`)") from None
    if not isinstance(card["classes"], list) or not isinstance(card["palette"], list):
        raise CheckpointError(f"model card {path}: 'classes' and 'palette' must be lists")
    if len(card["classes"]) != k or len(card["palette"]) != k:
        raise CheckpointError(
            f"model card {path}: {len(card['classes'])} classes and {len(card['palette'])} palette colours "
            f"for num_classes={k}; they must agree"
        )
    for i, name in enumerate(card["classes"]):
        if not _text(name, MAX_CLASS_CHARS):
            raise bad(f"classes[{i}]", f"must be a non-empty string of at most {MAX_CLASS_CHARS} characters", name)
    if len(set(card["classes"])) != k:
        twice = sorted({c for c in card["classes"] if card["classes"].count(c) > 1})
        raise bad("classes", "must name every class once", f"{_cut(', '.join(map(repr, twice)), 80)} more than once",
                  described=True)
    for i, colour in enumerate(card["palette"]):
        if not (isinstance(colour, list) and len(colour) == 3 and all(_int(v) and 0 <= v <= 255 for v in colour)):
            raise bad(f"palette[{i}]", "must be 3 integers in 0–255 (red, green, blue)", colour)
    norm = card["normalization"]
    if not isinstance(norm, dict):
        raise bad("normalization", 'must be an object {"mean": [3 numbers], "std": [3 numbers]}', norm)
    for key in ("mean", "std"):
        v = norm.get(key)
        if not (isinstance(v, list) and len(v) == 3 and all(_number(x) for x in v)):
            raise bad(f"normalization.{key}", "must be 3 finite numbers (one per RGB channel)", v)
    if not all(s > 0 for s in norm["std"]):
        raise bad("normalization.std", "must be 3 finite numbers > 0 (the input is divided by them)", norm["std"])
    for key, sub in (("dataset", "name"), ("training", "command")):
        if key in card and card[key] is not None:
            if not isinstance(card[key], dict):
                raise bad(key, "must be a JSON object", card[key])
            if card[key].get(sub) is not None and not isinstance(card[key][sub], str):
                raise bad(f"{key}.{sub}", "must be a string", card[key][sub])
    inference = card.get("inference")
    if inference is not None:
        if not isinstance(inference, dict):
            raise bad("inference", "must be a JSON object", inference)
        if inference.get("mode", "slide") not in ("slide", "whole"):
            raise bad("inference.mode", 'must be "slide" or "whole"', inference.get("mode"))
        for key in ("crop_size", "stride"):
            v = inference.get(key)
            if v is not None and not (isinstance(v, list) and len(v) == 2 and all(_int(i) and 1 <= i <= 8192 for i in v)):
                raise bad(f"inference.{key}", "must be 2 integers in 1–8192 (height, width)", v)
    if card.get("params") is not None and not (_int(card["params"]) and card["params"] >= 0):
        raise bad("params", "must be a non-negative integer (the architecture's parameter count)", card["params"])
    return card


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _text(v, limit: int) -> bool:
    return isinstance(v, str) and 0 < len(v) <= limit


def _short(v, limit: int = 80) -> str:
    """``repr(v)`` cut to ``limit`` characters (a hostile card may hold megabytes in one field)."""
    return _cut(repr(v), limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lists(value, where: str):
    """(dotted path, list) for every list inside ``value`` (a parsed card's architecture)."""
    if isinstance(value, list):
        yield where, value
        items = enumerate(value)
    elif isinstance(value, dict):
        items = value.items()
    else:
        return
    for k, v in items:
        yield from _lists(v, f"{where}[{k}]" if isinstance(value, list) else f"{where}.{k}")


def config_from_card(card: dict[str, Any]) -> SegmenterConfig | DGMN2Config:
    """The card's architecture as a :class:`SegmenterConfig` (or a :class:`DGMN2Config` for ``"family": "dgmn2"``);
    :class:`CheckpointError` if it is not one."""
    try:
        arch = card["architecture"]
        if isinstance(arch, dict) and "family" in arch:
            return DGMN2Config.from_architecture(arch)
        return SegmenterConfig.from_architecture(arch)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"model card {card.get('name')!r} describes an architecture that cannot be built: {exc}") from None


def build_from_card(card: dict[str, Any], device: str | torch.device | None = None) -> Segmenter | DGMN2Segmenter:
    """The card's architecture, randomly initialised; ``device="meta"``: without memory and without running any
    initialisation (shapes only, in milliseconds whatever sizes the card names)."""
    config = config_from_card(card)
    build = config.build if isinstance(config, DGMN2Config) else (lambda: build_segmenter(config))
    try:
        if str(device) != "meta":
            return build()
        with torch.device("meta"), _NoInit():
            return build()
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(f"model card {_short(card.get('name'))} describes an architecture that cannot be built: "
                              f"{_cut(str(exc), 300)}; fix the card's architecture (or use the card written by the "
                              "training run)") from None


class _NoInit(TorchFunctionMode):
    """Skips in-place initialisation (``normal_``, ``kaiming_uniform_``, ``fill_`` …) of meta tensors: there is no
    data to fill, and some of torch's meta implementations are slow to import (``normal_`` imports dynamo, ~3 s).
    Torch function modes are per thread, so models built at the same time in other threads are unaffected."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__"):
            first = args[0] if args else next(iter(kwargs.values()), None)
            if isinstance(first, torch.Tensor) and first.is_meta:
                return first
        return func(*args, **kwargs)


def read_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (safetensors dtype such as "F32", shape)} of a safetensors file, without reading its data.

    The 8-byte header length is checked against :data:`MAX_HEADER_BYTES` and the file's size before the header
    is read; ``safetensors.safe_open`` then parses the header and checks (its own guarantees, tested in
    tests/models/test_hostile_checkpoints.py) that every tensor's offsets lie inside the file, that dtype × shape
    fits them, and that the tensors cover the data exactly."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)

    def unreadable(why: str) -> CheckpointError:
        return CheckpointError(f"{path.name} is not a readable safetensors file ({why}); it may be truncated or corrupt — "
                               "copy it again")

    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise unreadable(str(exc)) from None
    if len(head) < 8:
        raise unreadable(f"{size} bytes, less than the 8-byte header length every safetensors file starts with")
    n = int.from_bytes(head, "little")
    if n > MAX_HEADER_BYTES:
        raise unreadable(f"its header claims {n:,} bytes; a safetensors header may be at most {MAX_HEADER_BYTES:,} bytes (100 MB)")
    if 8 + n > size:
        raise unreadable(f"its header claims {n:,} bytes but the whole file holds {size:,}")
    try:
        with safe_open(str(path), "pt") as f:
            out = {}
            for k in f.keys():
                s = f.get_slice(k)
                out[k] = (s.get_dtype(), tuple(s.get_shape()))
            return out
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise unreadable(str(exc)) from None


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file (checked by :func:`read_header` first)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    read_header(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path.name} is not a readable safetensors file ({exc}); it may be truncated or corrupt — copy it again"
        ) from None


@dataclass
class CheckedCheckpoint:
    """A checkpoint whose card and tensor header agree (:func:`check_checkpoint`); no tensor data read yet."""

    tensors_path: Path
    card_path: Path
    card: dict[str, Any]
    config: SegmenterConfig | DGMN2Config
    header: dict[str, tuple[str, tuple[int, ...]]]


def state_mismatch(want: dict[str, tuple], have: dict[str, tuple]) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, wrong shape): names of ``want`` absent from ``have``, names of ``have`` absent from
    ``want``, and names in both whose shapes differ; shapes as tuples, each list in its dict's order."""
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    wrong = [k for k in want if k in have and tuple(have[k]) != tuple(want[k])]
    return missing, unexpected, wrong


def check_checkpoint(name_or_path: str | Path, directory: str | Path | None = None) -> CheckedCheckpoint:
    """Everything :func:`load_model` checks before it allocates: the card's limits, the tensor file's header, and
    the card's architecture (built on the meta device: no memory, no initialisation) against the header's names,
    shapes, dtypes and sizes. Costs what reading the card and the header costs, whatever numbers the card holds.
    Raises :class:`CheckpointError` naming what is wrong."""
    tensors_path, card_path = resolve(name_or_path, directory)
    card = read_card(card_path)
    header = read_header(tensors_path)
    config = config_from_card(card)
    meta = build_from_card(card, "meta")
    want = {k: (v.dtype, tuple(v.shape)) for k, v in meta.state_dict().items()}
    missing, unexpected, shape = (sorted(names) for names in state_mismatch(
        {k: s for k, (_, s) in want.items()}, {k: s for k, (_, s) in header.items()}))
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(_short(k, 100) for k in unexpected[:3])})")
    if shape:
        k = shape[0]
        problems.append(f"{len(shape)} tensors with the wrong shape (e.g. {k}: {header[k][1]} in the file, "
                        f"{want[k][1]} for the card's architecture)")
    arch_numbers = sum(math.prod(s) for _, s in want.values())
    file_numbers = sum(math.prod(s) for _, s in header.values())
    if arch_numbers != file_numbers:
        problems.append(f"the card's architecture has {arch_numbers:,} parameters and buffers, the tensor file {file_numbers:,}")
    if problems:
        raise CheckpointError(
            f"checkpoint {tensors_path.name} does not match its model card {card_path.name}: " + "; ".join(problems)
            + ". The card and the tensors come from different models; use the pair written by one training run."
        )
    for k, (dtype, _) in header.items():
        if want[k][0].is_floating_point != (dtype in FLOAT_DTYPES):
            raise CheckpointError(f"checkpoint {tensors_path.name}: tensor {k} has dtype {SAFETENSORS_DTYPES.get(dtype, dtype)}, "
                                  f"expected {want[k][0]}")
    params = sum(p.numel() for p in meta.parameters())
    if card.get("params") is not None and card["params"] != params:
        raise CheckpointError(f"model card {card_path.name}: params says {card['params']:,} parameters but its architecture "
                              f"has {params:,}; the card was edited or belongs to another model — use the pair written by "
                              "one training run")
    return CheckedCheckpoint(tensors_path, card_path, card, config, header)


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu", directory: str | Path | None = None
               ) -> Segmenter | DGMN2Segmenter:
    """Load a checkpoint by name (from ``checkpoints/`` or ``directory``) or path, validated against its card.

    Returns the model in eval mode on ``device``, with the card as ``model.card``. Raises
    :class:`CheckpointError` (a ``ValueError``) naming the problem for pickles, missing or corrupt files, cards
    outside :data:`CARD_LIMITS`, and tensors that disagree with the card (missing, unexpected, wrongly shaped,
    non-float or non-finite tensors). Everything but the last is checked by :func:`check_checkpoint` before
    any memory is allocated; then the model is built (its size is now the tensor file's) and filled one
    tensor at a time.
    """
    from safetensors import SafetensorError, safe_open

    checked = check_checkpoint(name_or_path, directory)
    model = build_from_card(checked.card)
    state = model.state_dict()
    name = checked.tensors_path.name
    try:
        with safe_open(str(checked.tensors_path), "pt") as f, torch.no_grad():
            for k in checked.header:
                v = f.get_tensor(k)
                if v.is_floating_point() and not torch.isfinite(v).all():
                    raise CheckpointError(f"checkpoint {name}: tensor {k} holds NaN or infinite values")
                state[k].copy_(v)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{name} is not a readable safetensors file ({exc}); it may be truncated or corrupt — copy it again") from None
    model.card = checked.card
    return model.to(device).eval()


def save_model(model: nn.Module, stem: str | Path, card: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` atomically (temporary files, then rename)."""
    from safetensors.torch import save_file

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    card = dict(card, format=CARD_FORMAT)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    t_path, c_path = Path(str(stem) + ".safetensors"), Path(str(stem) + ".json")
    tmp_t, tmp_c = t_path.with_suffix(".safetensors.tmp"), c_path.with_suffix(".json.tmp")
    save_file(tensors, str(tmp_t))
    tmp_c.write_text(json.dumps(card, indent=1, sort_keys=False) + "\n")
    os.replace(tmp_t, t_path)
    os.replace(tmp_c, c_path)
    return t_path, c_path
