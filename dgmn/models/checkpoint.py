"""Checkpoints: ``<name>.safetensors`` (the tensors) + ``<name>.json`` (the model card). No pickle, ever.

The card holds the architecture (what :func:`build_segmenter` needs), classes and palette, the input
normalisation, dataset and seeds, the training command, commit and time, metrics on the held-out
split, params and MACs. :func:`load_model` rebuilds the architecture from the card and refuses any
checkpoint whose tensors do not match it, with a message that says what is wrong.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .config import SegmenterConfig
from .segmenter import Segmenter, build_segmenter

CARD_FORMAT = "dgmn-checkpoint/1"
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"}
REQUIRED = ("format", "name", "architecture", "classes", "palette", "normalization")


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


def list_checkpoints(directory: str | Path | None = None) -> list[str]:
    """Names of the complete checkpoints (both files present) in ``directory``, sorted."""
    d = Path(directory) if directory is not None else default_checkpoint_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.safetensors") if p.with_suffix(".json").is_file())


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
    try:
        card = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"model card {path} is not valid JSON ({exc}); restore it from the training output") from None
    if not isinstance(card, dict):
        raise CheckpointError(f"model card {path} must hold a JSON object")
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise CheckpointError(f"model card {path} lacks {', '.join(missing)}; it is not a dgmn model card")
    if card["format"] != CARD_FORMAT:
        raise CheckpointError(f"model card {path} has format {card['format']!r}; this version reads {CARD_FORMAT!r}")
    arch = card["architecture"]
    if not isinstance(arch, dict) or not {"backbone", "context", "num_classes", "channels"} <= set(arch):
        raise CheckpointError(f"model card {path}: 'architecture' needs backbone, context, channels and num_classes")
    if not isinstance(card["classes"], list) or not isinstance(card["palette"], list):
        raise CheckpointError(f"model card {path}: 'classes' and 'palette' must be lists")
    if len(card["classes"]) != arch["num_classes"] or len(card["palette"]) != arch["num_classes"]:
        raise CheckpointError(
            f"model card {path}: {len(card['classes'])} classes and {len(card['palette'])} palette colours "
            f"for num_classes={arch['num_classes']}; they must agree"
        )
    return card


def config_from_card(card: dict[str, Any]) -> SegmenterConfig:
    """The card's architecture as a :class:`SegmenterConfig`; :class:`CheckpointError` if it is not one."""
    try:
        return SegmenterConfig.from_architecture(card["architecture"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"model card {card.get('name')!r} describes an architecture that cannot be built: {exc}") from None


def build_from_card(card: dict[str, Any]) -> Segmenter:
    config = config_from_card(card)
    try:
        return build_segmenter(config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"model card {card.get('name')!r} describes an architecture that cannot be built: {exc}") from None


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path.name} is not a readable safetensors file ({exc}); it may be truncated or corrupt — copy it again"
        ) from None


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu", directory: str | Path | None = None) -> Segmenter:
    """Load a checkpoint by name (from ``checkpoints/`` or ``directory``) or path, validated against its card.

    Returns the model in eval mode on ``device``, with the card as ``model.card``. Raises
    :class:`CheckpointError` (a ``ValueError``) naming the problem for pickles, missing or corrupt files,
    and tensors that disagree with the card (missing, unexpected, wrongly shaped or non-float tensors).
    """
    tensors_path, card_path = resolve(name_or_path, directory)
    card = read_card(card_path)
    model = build_from_card(card)
    state = read_tensors(tensors_path)
    want = model.state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    shape = sorted(k for k in set(want) & set(state) if tuple(want[k].shape) != tuple(state[k].shape))
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
    if shape:
        k = shape[0]
        problems.append(f"{len(shape)} tensors with the wrong shape (e.g. {k}: {tuple(state[k].shape)} in the file, "
                        f"{tuple(want[k].shape)} for the card's architecture)")
    if problems:
        raise CheckpointError(
            f"checkpoint {tensors_path.name} does not match its model card {card_path.name}: " + "; ".join(problems)
            + ". The card and the tensors come from different models; use the pair written by one training run."
        )
    for k, v in state.items():
        if want[k].is_floating_point() != v.is_floating_point():
            raise CheckpointError(f"checkpoint {tensors_path.name}: tensor {k} has dtype {v.dtype}, expected {want[k].dtype}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"checkpoint {tensors_path.name}: tensor {k} holds NaN or infinite values")
    model.load_state_dict(state, strict=True)
    model.card = card
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
