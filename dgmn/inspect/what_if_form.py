"""The app's "What if…" form as data: its choices → edit objects for :mod:`dgmn.inspect.what_if`, the node
chooser's labels, and the answer in words ("dgmn-full: boathouse 0.94 → house 0.81")."""
from __future__ import annotations

from .rate_labels import RATE_LABELS, rates_from_labels
from .records import DCNQuery, Inspection, NODE_QUERIES
from .what_if import WhatIfResult

MAX_RATES = 8


def node_choices(inspection: Inspection | None, top: int = 12) -> list[tuple[str, str]]:
    """(label, value) of the clicked pixel's DGMN nodes (or deformable-convolution taps) in the first model that has
    them, largest share first: ("rate 2 · node 7 · 12% of the message", "2:7"); a DCN tap is
    ("tap 4 · 15% of the output", "0:4"), its one grid being rate 0. Rates are 1-based in labels, 0-based in values."""
    if inspection is None:
        return []
    for answer in inspection.models.values():
        first = answer.first_layer()
        if first is not None and isinstance(first[1], NODE_QUERIES):
            nodes = sorted(first[1].nodes, key=lambda n: -n.share)[:top]
            if isinstance(first[1], DCNQuery):
                return [(f"tap {n.node} · {100 * n.share:.0f}% of the output", f"0:{n.node}") for n in nodes]
            return [(f"rate {n.rate + 1} · node {n.node} · {100 * n.share:.0f}% of the message", f"{n.rate}:{n.node}") for n in nodes]
    return []


def edits_from_form(rates_off=(), no_walks=False, uniform_affinity=False, no_context=False, nodes_off=(),
                    occlude_box=None, fill="mean") -> list[dict]:
    """The edit objects the form describes. ``rates_off``: rate labels ("rate #2"); ``nodes_off``: "s:k" values;
    ``occlude_box``: [x0, y0, x1, y1] or None."""
    edits = [{"op": "drop_rate", "rate": r} for r in rates_from_labels(list(rates_off or []), min(len(RATE_LABELS), MAX_RATES))]
    for value in nodes_off or []:
        s, k = (int(v) for v in str(value).split(":"))
        edits.append({"op": "drop_node", "rate": s, "node": k})
    if no_walks:
        edits.append({"op": "no_walks"})
    if uniform_affinity:
        edits.append({"op": "uniform_affinity"})
    if no_context:
        edits.append({"op": "no_context"})
    if occlude_box is not None:
        edits.append({"op": "occlude", "box": [float(v) for v in occlude_box], "fill": fill})
    return edits


def describe(result: WhatIfResult) -> str:
    """'dgmn-full: boathouse 0.94 → house 0.81' (or '… stays boathouse 0.94 → 0.90'), and pixels changed."""
    b, a = result.before, result.after
    pb, pa = b.probabilities[b.class_name], a.probabilities[a.class_name]
    if a.class_name != b.class_name:
        text = f"{result.model}: {b.class_name} {pb:.2f} → {a.class_name} {pa:.2f}"
    else:
        text = f"{result.model}: stays {b.class_name} {pb:.2f} → {a.probabilities[b.class_name]:.2f}"
    return text + f" ({result.changed_pixels} pixel{'s' if result.changed_pixels != 1 else ''} of the image changed class)"


def iou_changes(result: WhatIfResult) -> str:
    """'house 91.0 → 62.3 · boathouse 90.2 → 40.1 …' for the classes whose IoU moved by ≥ 0.1 points."""
    if not result.iou:
        return ""
    before, after = result.iou["before"], result.iou["after"]
    moved = [f"{c} {before.get(c, float('nan')):.1f} → {after.get(c, float('nan')):.1f}" for c in before
             if abs(after.get(c, 0.0) - before[c]) >= 0.1]
    return f"{result.model} IoU: " + (" · ".join(moved) if moved else "no class moved by 0.1 points")
