"""What each checkpoint in a folder is and how well it scored, read from the model cards alone.

``model_summaries(directory)`` returns one row per checkpoint (no tensors are loaded):

    {"name", "context" (a readable description of the context module), "miou", "house/boathouse",
     "seeds" ("mean ± std over n seeds" or None), "params", "macs", "macs_input" (the input shape the MACs
     were counted at), "problem" (None, or why the card is unusable)}

``model_cards_markdown(directory)`` renders them as a Markdown table. Figures a card does not hold
(a user's own checkpoint without metrics) show as "—"; an unreadable card becomes a row saying why.
"""
from __future__ import annotations

import inspect
from pathlib import Path

from ..models.checkpoint import CheckpointError, default_checkpoint_dir, list_checkpoints, read_card
from ..modules import DGMN

_DGMN_DEFAULTS = {k: p.default for k, p in inspect.signature(DGMN).parameters.items() if p.default is not p.empty}


def describe_context(architecture: dict) -> str:
    """'Non-local', 'global pooling', 'none' or the DGMN variant, e.g. 'DGMN: rates 1, 3, 6; affinity; weights (G=4); walks'."""
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
    return {"nonlocal": "Non-local", "gpool": "global pooling", "none": "none (baseline)"}.get(context, str(context))


def model_summaries(directory: str | Path | None = None) -> list[dict]:
    d = Path(directory) if directory is not None else default_checkpoint_dir()
    rows = []
    for name in list_checkpoints(d):
        row = {"name": name, "context": None, "miou": None, "house/boathouse": None, "seeds": None,
               "params": None, "macs": None, "macs_input": None, "problem": None}
        try:
            card = read_card(d / f"{name}.json")
        except CheckpointError as exc:
            row["problem"] = str(exc)
            rows.append(row)
            continue
        metrics = card.get("metrics") or {}
        sel = card.get("seed_selection") or {}
        row.update(
            context=describe_context(card["architecture"]),
            miou=metrics.get("miou"),
            params=card.get("params"),
            macs=card.get("macs"),
            macs_input=card.get("macs_input"),
        )
        row["house/boathouse"] = (metrics.get("pairs") or {}).get("house/boathouse")
        if sel.get("runs"):
            row["seeds"] = f"{sel['heldout_miou_mean']:.2f} ± {sel['heldout_miou_std']:.2f} over {len(sel['runs'])} seeds"
        rows.append(row)
    return rows


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def model_cards_markdown(directory: str | Path | None = None, extra_rows: list[dict] | None = None) -> str:
    """The table of :func:`model_summaries`, after ``extra_rows`` (e.g. in-memory models, same keys)."""
    rows = list(extra_rows or []) + model_summaries(directory)
    if not rows:
        return "No checkpoints in this folder."
    lines = [
        "| model | context module | mIoU (held-out) | house/boathouse IoU | mIoU over training seeds | params | MACs |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r["problem"]:
            problem = r["problem"].replace("|", "\\|")
            lines.append(f"| `{r['name']}` | card unreadable: {problem} | — | — | — | — | — |")
            continue
        macs = "—" if r["macs"] is None else f"{r['macs'] / 1e6:.1f}M"
        if r["macs"] is not None and r["macs_input"]:
            macs += f" at {r['macs_input'][-2]}×{r['macs_input'][-1]}"
        lines.append(
            f"| `{r['name']}` | {r['context']} | {_fmt(r['miou'], '.2f')} | {_fmt(r['house/boathouse'], '.1f')} "
            f"| {r['seeds'] or '—'} | {_fmt(r['params'], ',')} | {macs} |"
        )
    lines.append("")
    lines.append("Scores on the held-out split named in each model card; "
                 "`python -m dgmn.evaluate --checkpoint NAME` reproduces them.")
    return "\n".join(lines)
