"""Training timelines: the snapshots a run saved (see :mod:`dgmn.train.timeline`), loaded and validated.

A timeline of model ``NAME`` is the folder ``NAME.timeline/`` beside ``NAME.safetensors``: one checkpoint per
snapshot (``step-000000.safetensors`` + its card) and ``index.json`` with the statistics. Snapshots live in
that sub-folder, so :func:`dgmn.models.list_checkpoints` never lists them as models.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import MAX_CARD_DEPTH, CheckpointError, default_checkpoint_dir, json_depth, load_model, resolve


@dataclass
class Snapshot:
    step: int
    model: torch.nn.Module
    stats: dict  # the index entry: train_loss, val_miou, layers → per-rate walk statistics

    def __iter__(self):  # (step, model, stats)
        return iter((self.step, self.model, self.stats))


class Timeline(list):
    """The loaded snapshots in step order; ``problems`` says which ones were refused and why."""

    def __init__(self, snapshots, problems):
        super().__init__(snapshots)
        self.problems = list(problems)


def timeline_dir(name_or_path, directory=None) -> Path:
    """The timeline folder of a checkpoint name or path (it need not exist)."""
    tensors, _ = resolve(name_or_path, directory)
    return tensors.with_suffix(".timeline")


def has_timeline(name_or_path, directory=None) -> bool:
    try:
        return (timeline_dir(name_or_path, directory) / "index.json").is_file()
    except CheckpointError:
        return False


MAX_INDEX_BYTES = 4_000_000  # index.json: ~1 kB per snapshot is written; a timeline has a few dozen at most
MAX_SNAPSHOTS = 200  # each is a model loaded (and analysed) when the timeline is used


def read_index(folder: Path) -> dict:
    """The timeline's ``index.json``, read with the same care as a model card: at most :data:`MAX_INDEX_BYTES`
    bytes and ``MAX_CARD_DEPTH`` levels of JSON nesting, checked before parsing."""
    path = folder / "index.json"
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_INDEX_BYTES + 1)
        if len(raw) > MAX_INDEX_BYTES:
            raise CheckpointError(f"timeline {folder}/index.json is larger than {MAX_INDEX_BYTES:,} bytes; an index written by "
                                  "dgmn.train is a few kB — it was not written by dgmn.train")
        text = raw.decode("utf-8")
        if json_depth(text) > MAX_CARD_DEPTH:
            raise CheckpointError(f"timeline {folder}/index.json nests JSON deeper than {MAX_CARD_DEPTH} levels; "
                                  "it was not written by dgmn.train")
        index = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"timeline {folder} has no readable index.json ({str(exc)[:200]}); it was not written by dgmn.train") from None
    snaps = index.get("snapshots") if isinstance(index, dict) else None
    if not isinstance(snaps, list) or not all(isinstance(e, dict) and isinstance(e.get("step"), int) and isinstance(e.get("file"), str) for e in snaps):
        raise CheckpointError(f"timeline {folder}/index.json must hold {{\"snapshots\": [{{\"step\": int, \"file\": str, …}}]}}")
    if len(snaps) > MAX_SNAPSHOTS:
        raise CheckpointError(f"timeline {folder}/index.json lists {len(snaps)} snapshots; a timeline may hold at most "
                              f"{MAX_SNAPSHOTS} (training writes about 12) — thin it out with train.timeline_steps")
    return index


def load_timeline(name_or_path, device="cpu", directory=None) -> Timeline:
    """The snapshots of a checkpoint's timeline as (step, model, stats), in step order. Each snapshot is
    loaded with :func:`dgmn.models.load_model` (the same refusals); a snapshot that fails is left out with a
    warning and its reason in ``.problems``, the others still load. CheckpointError if there is no timeline."""
    folder = timeline_dir(name_or_path, directory)
    if not (folder / "index.json").is_file():
        raise CheckpointError(f"{Path(str(name_or_path)).name!r} has no training timeline (no {folder.name}/index.json); "
                              "train with `train.timeline_steps: log` to write one")
    snapshots, problems = [], []
    for entry in sorted(read_index(folder)["snapshots"], key=lambda e: e["step"]):
        stem = folder / Path(entry["file"]).with_suffix("").name
        try:
            model = load_model(stem, device)
        except CheckpointError as exc:
            problems.append(f"step {entry['step']}: {exc}")
            warnings.warn(f"timeline {folder.name}: snapshot at step {entry['step']} refused: {exc}", stacklevel=2)
            continue
        snapshots.append(Snapshot(entry["step"], model, entry))
    return Timeline(snapshots, problems)


def timelines_available(directory=None) -> list[str]:
    """Names of the checkpoints in ``directory`` that have a timeline."""
    from .checkpoint import list_checkpoints

    d = Path(directory) if directory is not None else default_checkpoint_dir()
    return [n for n in list_checkpoints(d) if (d / f"{n}.timeline" / "index.json").is_file()]
