"""What each checkpoint in a folder is and how well it scored, read from the model cards alone.

``model_summaries(directory)`` returns one row per checkpoint (no tensor data is loaded: each card is checked,
and its architecture compared with the tensor file's header, by :func:`dgmn.models.checkpoint.check_checkpoint`):

    {"name", "context" (a readable description of the context module), "miou", "house/boathouse",
     "seeds" ("mean ± std over n seeds" or None), "params", "macs", "macs_input" (the input shape the MACs
     were counted at), "problem" (None, or why the checkpoint cannot be loaded), "problem_with" ("card": the
     card itself is unusable; "tensors": the card disagrees with its tensor file)}

``model_cards_markdown(directory)`` renders them as a Markdown table. Figures a card does not hold, or holds
as something other than a finite number (a user's own checkpoint without metrics), show as "—"; a checkpoint
that cannot be loaded becomes a row saying why. Every string in the table is shown as text (:func:`~dgmn.inspect.markdown_text.markdown_text`,
:func:`~dgmn.inspect.markdown_text.markdown_code`): a card, or a file name, cannot add markup, links or formulas to the page.
"""
from __future__ import annotations

import inspect
import math
from pathlib import Path

from .markdown_text import markdown_code as code, markdown_text as cell
from ..models.checkpoint import (CheckpointError, check_checkpoint, default_checkpoint_dir, list_checkpoints, read_card,
                                 training_folder_note)
from ..modules import DGMN

_DGMN_DEFAULTS = {k: p.default for k, p in inspect.signature(DGMN).parameters.items() if p.default is not p.empty}


def describe_dgmn2(architecture: dict, inference: dict | None = None) -> str:
    """A DGMN2 card's architecture (and inference mode) in words."""
    from ..models.dgmn2 import HEAD_TITLES

    size, head = architecture.get("size"), architecture.get("head")
    name = "DGMN2" + (f"-{size.capitalize()}" if isinstance(size, str) and size != "custom" else "")
    text = (f"{name} + {HEAD_TITLES.get(head, head)}" if isinstance(head, str) else name) + (
        ": attention over 9 sampled positions per pixel and head in every block")
    inf = inference if isinstance(inference, dict) else {}
    crop, stride = inf.get("crop_size"), inf.get("stride")
    if inf.get("mode") == "slide" and _shape(crop) and _shape(stride):
        text += f"; sliding-window inference, {crop[0]}×{crop[1]} crops, stride {stride[0]}"
    return text


def describe_context(architecture: dict, inference: dict | None = None) -> str:
    """'Non-local', 'global pooling', 'none', the DGMN variant, e.g. 'DGMN: rates 1, 3, 6; affinity; weights (G=4); walks',
    'deformable conv (DCNv2), dilation 1' or 'criss-cross attention (CCNet), 2 passes'; for a converted DGMN2 model
    (``"family": "dgmn2"``) its backbone and head, e.g. 'DGMN2-Tiny + Semantic FPN: attention over 9 sampled positions
    per pixel and head in every block; sliding-window inference, 769×769 crops, stride 513' (``inference``: the
    card's ``"inference"``)."""
    if architecture.get("family") == "dgmn2":
        return describe_dgmn2(architecture, inference)
    context = architecture.get("context")
    if context == "dgmn":
        cfg = {**_DGMN_DEFAULTS, **(architecture.get("context_cfg") or {})}
        parts = [f"rate{'s' if len(cfg['dilations']) > 1 else ''} {', '.join(map(str, cfg['dilations']))}"]
        if cfg["dynamic_affinity"]:
            parts.append("dynamic affinity")
        if cfg["dynamic_weights"] and cfg["groups"]:
            parts.append(f"dynamic weights (G={cfg['groups']})")
        if cfg["random_walk"]:
            parts.append("learned random walks")
        return "DGMN: " + "; ".join(parts)
    cfg = architecture.get("context_cfg") or {}
    if context == "dcn":
        d = cfg.get("dilation", 1)
        return f"deformable conv (DCNv2), dilation {d}" if isinstance(d, int) and not isinstance(d, bool) else "deformable conv (DCNv2)"
    if context == "ccnet":
        r = cfg.get("recurrence", 2)
        return f"criss-cross attention (CCNet), {r} passes" if isinstance(r, int) and not isinstance(r, bool) else "criss-cross attention (CCNet)"
    return {"nonlocal": "Non-local", "gpool": "global pooling", "none": "none (baseline)"}.get(context, str(context))


def model_summaries(directory: str | Path | None = None) -> list[dict]:
    d = Path(directory) if directory is not None else default_checkpoint_dir()
    rows = []
    for name in list_checkpoints(d):
        row = {"name": name, "context": None, "miou": None, "miou_source": None, "miou_split": None,
               "house/boathouse": None, "seeds": None,
               "params": None, "macs": None, "macs_input": None, "problem": None, "problem_with": None}
        rows.append(row)
        try:
            card = read_card(d / f"{name}.json")
        except CheckpointError as exc:
            row.update(problem=str(exc), problem_with="card")
            continue
        try:
            check_checkpoint(name, d)
        except CheckpointError as exc:
            row.update(problem=str(exc), problem_with="tensors")
            continue
        metrics = _object(card.get("metrics"))
        sel = _object(card.get("seed_selection"))
        row.update(
            context=describe_context(card["architecture"], card.get("inference")),
            miou=_number(metrics.get("miou")),
            miou_source=metrics.get("source") if isinstance(metrics.get("source"), str) else None,
            miou_split=metrics.get("split") if isinstance(metrics.get("split"), str) else None,
            params=_number(card.get("params")),
            macs=_number(card.get("macs")),
            macs_input=card.get("macs_input") if _shape(card.get("macs_input")) else None,
        )
        row["house/boathouse"] = _number(_object(metrics.get("pairs")).get("house/boathouse"))
        mean, std = _number(sel.get("heldout_miou_mean")), _number(sel.get("heldout_miou_std"))
        if isinstance(sel.get("runs"), list) and sel["runs"] and mean is not None and std is not None:
            row["seeds"] = f"{mean:.2f} ± {std:.2f} over {len(sel['runs'])} seeds"
    return rows


def _object(v) -> dict:
    return v if isinstance(v, dict) else {}


def _number(v):
    """``v`` if it is a finite number (a figure to show), else None (shown as "—")."""
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _shape(v) -> bool:
    return isinstance(v, list) and len(v) >= 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def model_cards_markdown(directory: str | Path | None = None, extra_rows: list[dict] | None = None) -> str:
    """The table of :func:`model_summaries`, after ``extra_rows`` (e.g. in-memory models, same keys)."""
    rows = list(extra_rows or []) + model_summaries(directory)
    note = training_folder_note(directory)
    if not rows:
        return "No checkpoints in this folder." + (f" {cell(note)}" if note else "")
    lines = [
        "| model | context module | mIoU | house/boathouse IoU | mIoU over training seeds | params | MACs |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r["problem"]:
            what = "cannot be loaded" if r.get("problem_with") == "tensors" else "card unreadable"
            lines.append(f"| {code(r['name'])} | {what}: {cell(r['problem'])} | — | — | — | — | — |")
            continue
        macs = "—" if r["macs"] is None else f"{r['macs'] / 1e6:.1f}M"
        if r["macs"] is not None and r["macs_input"]:
            macs += f" at {r['macs_input'][-2]}×{r['macs_input'][-1]}"
        miou = _fmt(r["miou"], ".2f")
        if r["miou"] is not None and r.get("miou_source"):  # a figure from elsewhere (a converted model's authors)
            miou += f" ({cell(r['miou_split'] or 'its own split')}: {cell(r['miou_source'])})"
        lines.append(
            f"| {code(r['name'])} | {cell(r['context'])} | {miou} | {_fmt(r['house/boathouse'], '.1f')} "
            f"| {cell(r['seeds'] or '—')} | {_fmt(r['params'], ',')} | {macs} |"
        )
    lines.append("")
    lines.append("mIoU on the held-out split named in each model card, measured here; "
                 "`python -m dgmn.evaluate --checkpoint NAME` reproduces it. A figure with its source in brackets was "
                 "not measured here.")
    if note:
        lines += ["", cell(note)]
    return "\n".join(lines)
