"""Which panels apply to which model, and the one line a panel shows for a model it does not apply to.

The app's panels beyond the graph, the probabilities and the segmentation were built for the Dilated-FCN models of
this project, whose context module is one DGMN, Non-local, DCN or CCNet layer. A converted DGMN2 checkpoint (card
``"architecture": {"family": "dgmn2", …}``) has its attention inside every backbone block instead: its graph panel
(every block, per head), class probabilities and segmentation work as for ours; the panels below say in one line
why they do not apply to it, and answer for the other selected models as usual."""
from __future__ import annotations

PANELS = {
    "what_if": "graph edits (rates, nodes, walks, affinities, no context) need a DGMN, Non-local, DCN or CCNet context "
               "layer; this DGMN2 model's attention is inside every backbone block, so they are skipped (an occlusion "
               "of the input applies)",
    "class_flow": "the class flow follows the messages of a DGMN, Non-local, DCN or CCNet context layer; "
                  "this DGMN2 model has none (its attention is inside every backbone block), so it is not shown",
    "timeline": "a converted DGMN2 checkpoint has no training timeline (it was trained elsewhere)",
    "cost": "the cost curves count a Dilated-FCN's context module; this DGMN2 model's attention is inside its "
            "backbone blocks, so it is not counted here",
}


def is_dgmn2(card: dict | None) -> bool:
    """Whether a model card describes a DGMN2 model."""
    arch = (card or {}).get("architecture") if isinstance(card, dict) else None
    return isinstance(arch, dict) and arch.get("family") == "dgmn2"


def not_applicable(name: str, card: dict | None, panel: str) -> str | None:
    """``"<name>: <why>"`` (plain text) when ``panel`` (a key of :data:`PANELS`) does not apply to the model, else None."""
    if panel not in PANELS:
        raise ValueError(f"unknown panel {panel!r}; one of {', '.join(PANELS)}")
    return f"{name}: {PANELS[panel]}" if is_dgmn2(card) else None


def not_applicable_lines(explorer, names, panel: str) -> list[str]:
    """:func:`not_applicable` for each of ``names`` that ``explorer`` offers (plain text); a model that cannot be
    loaded is left to the panel's own message."""
    from .explorer import InputError

    lines = []
    for name in names or []:
        if not isinstance(name, str) or name not in explorer.available():
            continue
        try:
            card = explorer.card(name)
        except InputError:
            continue
        line = not_applicable(name, card, panel)
        if line:
            lines.append(line)
    return lines
