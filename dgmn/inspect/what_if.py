"""What if: re-run a model with an edited graph (or an edited input) and see the pixel's decision change.

Edits are JSON objects; each applies to every DGMN layer of the model unless ``"layer"`` names one:

    {"op": "drop_rate", "rate": s}                rate s (0-based, in the order of the layer's dilations) sends no message (β_s = 0)
    {"op": "drop_node", "rate": s, "node": k}     node k = ky·kernel_size + kx of rate s contributes nothing (no re-normalisation)
    {"op": "no_walks"[, "rate": s]}               walks zero: nodes on the dilated grid; filters and affinities computed from them
    {"op": "uniform_affinity"[, "rate": s]}       affinities 1/K (the affinity logits are zero)
    {"op": "no_context"}                          every DGMN and Non-local message is zero (Σ_s m_s; Non-local's y before W_z)
    {"op": "mask_attention", "box": [x0, y0, x1, y1]}   Non-local: attention to positions whose centre lies in the box
                                                  (image pixels, x0 ≤ X < x1, y0 ≤ Y < y1) is removed, the rest re-normalised
    {"op": "occlude", "box": [x0, y0, x1, y1], "fill": "mean" | "blur"}   the input: the box is filled with the image's
                                                  mean colour or a strong blur before the model runs (every model)

The other context modules take the edits that mean something for them (issue 15):

* deformable convolution (DCN, :class:`dgmn.modules.DeformableContext`), one "rate" 0 whose nodes are its K taps:
  ``drop_node`` (rate 0: tap k's modulation mask is 0), ``no_walks`` ("no offsets": the taps on the dilated grid,
  the masks computed as before) and ``no_context`` (its output D before the BN is zero);
* criss-cross attention (CCNet, :class:`dgmn.modules.CrissCross2d`): ``mask_attention`` (in every pass, at the
  keys on the query's row and column) and ``no_context`` (every pass's y before γ is zero), as for Non-local.

An edit a model's layers do not take is refused with a message naming the edit and the layers it needs.
At pixel scope CCNet's edits apply to the footprint's queries in every pass; the other positions' first pass is
unedited, so a ``mask_attention`` at the pixel is not the image scope's effect there (the pixel's second pass
reads positions whose first pass did see the box). ``no_context`` is: the pixel's own messages are zero in both.

Scope ``"pixel"``: the graph edits apply only at the feature positions from which the clicked pixel's logits
are interpolated (its bilinear footprint, ≤ 4 positions per layer), so the pixel's new probabilities are the
full effect of the edit and the rest of the image is untouched up to that footprint. ``"image"``: at every
position (an inference-time ablation of the whole layer). An occlusion always edits the input.

The result is what the model computes with that graph — the layers apply the edits where they compute the
graph (:mod:`dgmn.modules.graph_edit`), nothing is approximated.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..evaluate.metrics import ConfusionMatrix
from ..modules import DGMN, CrissCross2d, DeformableContext, NonLocal2d
from ..modules.graph_edit import (DropNode, DropRate, EditList, GraphEdit, MaskAttention, NoContext, NoWalks,
                                  UniformAffinity)
from .coordinates import bilinear_footprint, inside_box
from .explorer import Analysis, Explorer, InputError
from .inspector import Inspector, context_layers, slide_settings

OPS = ("drop_rate", "drop_node", "no_walks", "uniform_affinity", "no_context", "mask_attention", "occlude")
SCOPES = ("pixel", "image")
_FIELDS = {"drop_rate": {"rate"}, "drop_node": {"rate", "node"}, "no_walks": set(), "uniform_affinity": set(),
           "no_context": set(), "mask_attention": {"box"}, "occlude": {"box", "fill"}}
_OPTIONAL = {"drop_rate": {"layer"}, "drop_node": {"layer"}, "no_walks": {"rate", "layer"}, "uniform_affinity": {"rate", "layer"},
             "no_context": {"layer"}, "mask_attention": {"layer"}, "occlude": set()}


class EditError(ValueError):
    """An edit that is malformed or does not apply to the model; the message names the edit and what is allowed."""


@dataclass
class Decision:
    class_name: str
    probabilities: dict[str, float]

    def to_json(self) -> dict:
        return {"class": self.class_name, "probabilities": self.probabilities}


@dataclass
class WhatIfResult:
    """What the model decided at (y, x) before and after the edits (see the module docstring)."""

    model: str
    scope: str
    edits: list[dict]
    y: float
    x: float
    before: Decision
    after: Decision
    changed_pixels: int
    label_map: np.ndarray | None = None  # (H, W) uint8, image scope only
    iou: dict | None = None  # {"before": {class: IoU %}, "after": {...}} when the truth is known (image scope)
    graph: dict | None = None  # occlude: the pixel's new graph per layer (records, as inspect_xy's "layers")
    extra: dict = field(default_factory=dict)

    def to_json(self, label_map_json=None) -> dict:
        """The JSON result; ``label_map_json(label_map)`` renders the label map (e.g. as a base64 PNG)."""
        out: dict[str, Any] = {"model": self.model, "scope": self.scope, "edits": self.edits, "pixel": {"x": self.x, "y": self.y},
                               "before": self.before.to_json(), "after": self.after.to_json(), "changed_pixels": self.changed_pixels}
        if self.label_map is not None:
            out["label_map"] = label_map_json(self.label_map) if label_map_json else self.label_map.tolist()
        if self.iou is not None:
            out["iou"] = self.iou
        if self.graph is not None:
            out["graph"] = {ln: q.to_json() for ln, q in self.graph.items()}
        return out


def parse_edits(edits) -> list[dict]:
    """JSON text or a list of edit objects → a list of dicts with known ops and fields (EditError otherwise)."""
    if isinstance(edits, str):
        try:
            edits = json.loads(edits) if edits.strip() else []
        except json.JSONDecodeError as exc:
            raise EditError(f"the edits are not valid JSON ({exc.msg}); give a list such as [{{\"op\": \"drop_rate\", \"rate\": 1}}]") from None
    if isinstance(edits, dict):
        edits = [edits]
    if not isinstance(edits, list) or not edits:
        raise EditError("give at least one edit: a list of objects such as [{\"op\": \"no_walks\"}]")
    out = []
    for e in edits:
        if not isinstance(e, dict) or e.get("op") not in OPS:
            raise EditError(f"edit {json.dumps(e)}: unknown op; choose one of {', '.join(OPS)}")
        op = e["op"]
        missing = _FIELDS[op] - set(e)
        unknown = set(e) - _FIELDS[op] - _OPTIONAL[op] - {"op"}
        if missing or unknown:
            allowed = sorted(_FIELDS[op] | _OPTIONAL[op])
            raise EditError(f"edit {json.dumps(e)}: {'missing ' + ', '.join(sorted(missing)) if missing else 'unknown field ' + ', '.join(sorted(unknown))}; "
                            f"{op} takes {', '.join(allowed) or 'no fields'}")
        for key in ("rate", "node"):
            if key in e and (isinstance(e[key], bool) or not isinstance(e[key], int) or e[key] < 0):
                raise EditError(f"edit {json.dumps(e)}: {key} must be an integer ≥ 0")
        if op == "occlude" and e["fill"] not in ("mean", "blur"):
            raise EditError(f"edit {json.dumps(e)}: fill must be \"mean\" or \"blur\"")
        out.append(dict(e))
    return out


def _check_box(e: dict, image_size) -> tuple[float, float, float, float]:
    H, W = image_size
    box = e["box"]
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        raise EditError(f"edit {json.dumps(e)}: box must be [x0, y0, x1, y1] in image pixels")
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H):
        raise EditError(f"edit {json.dumps(e)}: the box must lie inside the {W}×{H} image with x0 < x1 and y0 < y1")
    return x0, y0, x1, y1


# which layers take each graph edit, and how the message names them
_KINDS = {
    "drop_rate": ((DGMN,), "a DGMN layer"),
    "drop_node": ((DGMN, DeformableContext), "a DGMN layer (or a deformable-convolution, DCN, layer)"),
    "no_walks": ((DGMN, DeformableContext), "a DGMN layer (or a deformable-convolution, DCN, layer)"),
    "uniform_affinity": ((DGMN,), "a DGMN layer"),
    "no_context": ((DGMN, NonLocal2d, DeformableContext, CrissCross2d), "a DGMN or Non-local layer (or a DCN or CCNet layer)"),
    "mask_attention": ((NonLocal2d, CrissCross2d), "a Non-local layer (or a criss-cross attention, CCNet, layer)"),
}


def _targets(e: dict, layers: dict[str, torch.nn.Module]) -> list[str]:
    kind, what = _KINDS[e["op"]]
    names = [n for n, m in layers.items() if isinstance(m, kind)]
    if "layer" in e:
        if e["layer"] not in layers:
            raise EditError(f"edit {json.dumps(e)}: the model has no context layer {e['layer']!r}; its layers: {', '.join(layers) or 'none'}")
        names = [e["layer"]] if isinstance(layers[e["layer"]], kind) else []
    if not names:
        raise EditError(f"edit {json.dumps(e)}: {e['op']} needs {what}, and this model has none"
                        + (f" named {e['layer']!r}" if "layer" in e else ""))
    return names


def _deformable_edit(e: dict, name: str, layer: DeformableContext, w) -> GraphEdit:
    """drop_node / no_walks for a DCN layer, its one sampling grid being DGMN's rate 0."""
    K = layer.kernel_size**2
    if e.get("rate", 0) != 0:
        raise EditError(f"edit {json.dumps(e)}: layer {name!r} is a deformable convolution with one sampling grid (rate 0); rate must be 0")
    if e["op"] == "drop_node":
        if e["node"] >= K:
            raise EditError(f"edit {json.dumps(e)}: layer {name!r} has {K} taps; node must be 0…{K - 1}")
        return DropNode(where=w, rate=0, node=e["node"])
    return NoWalks(where=w, rate=0)  # "no offsets": the taps on the dilated grid


def layer_edits(edits: list[dict], layers: dict[str, torch.nn.Module], feature_sizes: dict[str, tuple[int, int]],
                image_size: tuple[int, int], where: dict[str, torch.Tensor | None]) -> dict[str, GraphEdit]:
    """{layer name: the GraphEdit to install} for the graph edits (occlusions are input edits, skipped here).
    ``where``: per layer the (h, w) positions the edits are limited to (None: all). EditError when an edit
    does not apply."""
    per_layer: dict[str, list[GraphEdit]] = {}
    for e in edits:
        op = e["op"]
        if op == "occlude":
            _check_box(e, image_size)
            continue
        for name in _targets(e, layers):
            layer, w = layers[name], where.get(name)
            if isinstance(layer, DeformableContext) and op in ("drop_node", "no_walks"):
                edit = _deformable_edit(e, name, layer, w)
            elif op == "no_context":
                edit = NoContext(where=w)
            elif op == "mask_attention":
                keys = torch.from_numpy(inside_box(_check_box(e, image_size), feature_sizes[name], image_size))
                if bool(keys.all()):
                    raise EditError(f"edit {json.dumps(e)}: the box covers every position of layer {name!r}; leave something to attend to")
                edit = MaskAttention(where=w, keys=keys)
            else:
                S, K = len(layer.dilations), layer.kernel_size**2
                if "rate" in e and e["rate"] >= S:
                    raise EditError(f"edit {json.dumps(e)}: layer {name!r} has {S} rate(s) (dilations {list(layer.dilations)}); rate must be 0…{S - 1}")
                if op == "drop_node" and e["node"] >= K:
                    raise EditError(f"edit {json.dumps(e)}: layer {name!r} has {K} nodes per rate; node must be 0…{K - 1}")
                if op == "no_walks" and not layer.random_walk:
                    raise EditError(f"edit {json.dumps(e)}: layer {name!r} has no learned walks (its nodes already sit on the grid)")
                if op == "uniform_affinity" and not layer.dynamic_affinity:
                    raise EditError(f"edit {json.dumps(e)}: layer {name!r} has no dynamic affinities")
                edit = {"drop_rate": lambda: DropRate(where=w, rate=e["rate"]),
                        "drop_node": lambda: DropNode(where=w, rate=e["rate"], node=e["node"]),
                        "no_walks": lambda: NoWalks(where=w, rate=e.get("rate")),
                        "uniform_affinity": lambda: UniformAffinity(where=w, rate=e.get("rate"))}[op]()
            per_layer.setdefault(name, []).append(edit)
    return {n: es[0] if len(es) == 1 else EditList(edits=tuple(es)) for n, es in per_layer.items()}


def occluded(image: np.ndarray, edits: list[dict]) -> np.ndarray:
    """The input with every occlusion applied: (H, W, 3) uint8."""
    import cv2

    out = image
    for e in edits:
        if e["op"] != "occlude":
            continue
        x0, y0, x1, y1 = _check_box(e, image.shape[:2])
        out = out.copy()
        r0, r1, c0, c1 = int(np.floor(y0)), int(np.ceil(y1)), int(np.floor(x0)), int(np.ceil(x1))
        if e["fill"] == "mean":
            out[r0:r1, c0:c1] = image.reshape(-1, 3).mean(0).round().astype(np.uint8)
        else:
            sigma = max(8.0, 0.25 * max(r1 - r0, c1 - c0))
            out[r0:r1, c0:c1] = cv2.GaussianBlur(out, (0, 0), sigma)[r0:r1, c0:c1]
    return out


def footprint_mask(y: float, x: float, feature_size, image_size) -> torch.Tensor:
    """(h, w) bool: the feature positions the pixel's logits are interpolated from."""
    mask = torch.zeros(feature_size, dtype=torch.bool)
    for iy, ix, _ in bilinear_footprint(y, x, feature_size, image_size):
        mask[iy, ix] = True
    return mask


def _iou(pred: np.ndarray, truth: np.ndarray, classes: list[str]) -> dict[str, float]:
    cm = ConfusionMatrix(len(classes))
    cm.update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(truth.astype(np.int64)))
    return {c: round(v, 4) for c, v in zip(classes, cm.iou()) if v == v}


def what_if(explorer: Explorer, analysis: Analysis, name: str, y: float, x: float, edits, scope: str = "pixel") -> WhatIfResult:
    """Re-run model ``name`` on the analysed image with ``edits`` (see the module docstring) and compare its
    decision at image pixel (y, x) with the unedited one. Raises EditError naming a bad edit."""
    if scope not in SCOPES:
        raise EditError(f"scope must be \"pixel\" or \"image\", got {scope!r}")
    edits = parse_edits(edits)
    H, W = analysis.image.shape[:2]
    if not (0 <= y < H and 0 <= x < W):
        raise EditError(f"the pixel (x={x:.0f}, y={y:.0f}) is outside the {W}×{H} image")
    if name not in analysis.results:
        raise InputError(f"model {name!r} has not analysed this image; select it and run the analysis again")
    res = analysis.results[name]
    model, card = explorer.model(name), explorer.card(name)
    classes = card["classes"]
    layers = context_layers(model)
    sizes = {ln: tuple(rec.feature_size) for ln, rec in res.inspector.records.items()}
    where = {ln: footprint_mask(y, x, sizes[ln], (H, W)) if scope == "pixel" else None for ln in sizes}
    installed = layer_edits(edits, layers, sizes, (H, W), where)
    image = occluded(analysis.image, edits)
    with explorer.lock:
        ins = Inspector(model)
        try:
            for ln, edit in installed.items():
                layers[ln].graph_edit = edit
            logits = ins.run(explorer.to_tensor(image, card), slide=slide_settings(card))[0].float().cpu().numpy()
        finally:
            for ln in installed:
                layers[ln].graph_edit = None
            ins.close()
    iy, ix = int(y), int(x)
    z = logits[:, iy, ix].astype(np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    after_pred = logits.argmax(0).astype(np.uint8)
    before_p = res.probabilities(iy, ix)
    result = WhatIfResult(
        model=name, scope=scope, edits=edits, y=y, x=x,
        before=Decision(classes[int(res.prediction[iy, ix])], dict(zip(classes, map(float, before_p)))),
        after=Decision(classes[int(p.argmax())], dict(zip(classes, map(float, p)))),
        changed_pixels=int((after_pred != res.prediction).sum()),
    )
    if scope == "image":
        result.label_map = after_pred
        if analysis.truth is not None:
            result.iou = {"before": _iou(res.prediction, analysis.truth, classes), "after": _iou(after_pred, analysis.truth, classes)}
    if any(e["op"] == "occlude" for e in edits):
        result.graph = ins.query(float(y), float(x)) if ins.records else {}
    return result


def applicable_edits(explorer: Explorer, name: str, edits: list[dict], image_size) -> tuple[list[dict], list[str]]:
    """The edits that apply to model ``name`` and a note for each one that does not (the app skips those)."""
    layers = context_layers(explorer.model(name))
    sizes = {ln: (8, 8) for ln in layers}  # shapes do not matter for applicability
    kept, notes = [], []
    for e in edits:
        try:
            layer_edits([e], layers, sizes, image_size, {})
            kept.append(e)
        except EditError as exc:
            notes.append(f"{name}: skipped — {exc}")
    return kept, notes
