"""Typed answers of the inspector: a graph node, a DGMN query, a Non-local query, a model's answer at a pixel.

Each record is a dataclass with ``to_json()``, which gives exactly the JSON the public ``inspect_xy``
endpoint returns (the schema below; positions are [y, x] lists, feature positions in feature pixels of the
layer's (h, w) map, image positions in pixels of the analysed image). Records also answer ``record[key]``
for the JSON keys, so code written against the plain dicts keeps working.

``inspect_xy`` → ``{model name: ModelAnswer}``::

    ModelAnswer   {"class": str, "class_index": int, ["truth": str | None,]  # "truth" only when the image has ground truth
                   "layers": {layer name: DGMNQuery | NonLocalQuery | DCNQuery | CCNetQuery | DGMN2Query},
                   "probabilities": {class name: p}}  # softmax of the logits at the pixel, every class, sums to 1
    DGMNQuery     {"type": "dgmn", "feature_size": [h, w], "feature_pixel": [iy, ix], "iteration": int,
                   "iterations": int, "groups": G, "alpha": α, "beta": [β_s], "dilations": [d_s],
                   "nodes": [GraphNode × S·K]}
    GraphNode     {"rate": s, "dilation": d_s, "node": k, "uniform": [uy, ux], "walk": [dy, dx],
                   "sampled": [py, px], "sampled_image": [Y, X], "inside": bool, "affinity": A_k | None,
                   "filters": [w_k,g × G] | None, "weight": [β·A·w × G], "share": Σ_g|weight| / Σ_all nodes}
    NonLocalQuery {"type": "nonlocal", "feature_size": [h, w], "feature_pixel": [iy, ix],
                   "attention": h × w nested lists (softmax_j θ_pᵀφ_j, sums to 1),
                   "top": [AttentionPeak × ≤10], "entropy": H / log(h·w) ∈ [0, 1]}
    AttentionPeak {"feature": [jy, jx], "image": [Y, X], "weight": float}
    DCNQuery      {"type": "dcn", "feature_size": [h, w], "feature_pixel": [iy, ix], "dilations": [d],
                   "nodes": [DeformableNode × K]}                        # one DGMN rate: its K taps
    DeformableNode  a GraphNode with rate 0, "walk" = "offset" = the learned offset Δ_k [dy, dx], "affinity" and
                   "filters" None, "weight" = [m_k], "share" = |m_k| / Σ_k' |m_k'|; plus "offset" and "mask" (m_k)
    CCNetQuery    {"type": "ccnet", "feature_size", "feature_pixel", "attention" (h × w: the effective R-pass
                   attention E[p, ·] = δ_p·A_R···A_1, sums to 1), "top": [AttentionPeak × ≤10], "entropy",
                   "recurrence": R, "cross": h × w (pass 1's attention of p: zero off p's row and column, sums to 1)}

    DGMN2Query    {"type": "dgmn2", "stage": s, "block": b (1-based: backbone.block{s}[b − 1]), "feature_size": [h, w],
                   "feature_pixel": [iy, ix], "crop": [y1, x1, y2, x2] (the image region the records come from: the
                   whole image, or the slide-inference crop whose centre is nearest the pixel), "heads": [DGMN2Head × h]}
    DGMN2Head     {"head": i, "nodes": [DGMN2Node × 9], "position_share": Var_k(r) / (Var_k(c) + Var_k(r)) ∈ [0, 1],
                   "content_share": 1 − position_share, "content_spread": std_k(c), "position_spread": std_k(r),
                   "correlation": corr_k(c, r) | None}       # over the 9 nodes; both terms constant: shares 0.5
    DGMN2Node     {"node": k (= ky·3 + kx), "grid": [gy, gx] (= (iy + ky − 1, ix + kx − 1), dilation 1),
                   "walk": [dy, dx] (the learned offset), "sampled": [py, px] = grid + walk, "sampled_image": [Y, X],
                   "inside": bool, "weight": w_k (softmax_k of the logits, sums to 1 per head),
                   "content": c_k = d^−½·q·key(p_k), "position": r_k (relative-position logit), "logit": c_k + r_k}

DCN and CCNet entries have the form of a DGMN rate and of a Non-local entry, so code that reads ``nodes`` or
``attention``/``top`` reads them too. :data:`NODE_QUERIES` and :data:`ATTENTION_QUERIES` group the record types
drawn as sampled nodes and as an attention map.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Union

import numpy as np

NOT_KNOWN = object()  # a field left out of the JSON (e.g. "truth" when the image has no ground truth)


def _json_value(v: Any) -> Any:
    if isinstance(v, JsonRecord):
        return v.to_json()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    return v


class JsonRecord:
    """Base of the records: ``to_json()`` over the dataclass fields (a field's JSON key is its
    ``metadata["json"]``, default its name; ``None`` keeps it out of the JSON), and read-only ``record[key]``."""

    def _json_items(self):
        for f in fields(self):  # type: ignore[arg-type]
            key = f.metadata.get("json", f.name)
            value = getattr(self, f.name)
            if key is not None and value is not NOT_KNOWN:
                yield key, f.name, value

    def to_json(self) -> dict:
        return {key: _json_value(value) for key, _, value in self._json_items()}

    def __getitem__(self, key: str):
        for k, _, value in self._json_items():
            if k == key:
                return value
        raise KeyError(key)

    def __contains__(self, key: str) -> bool:
        return any(k == key for k, _, _ in self._json_items())

    def get(self, key: str, default=None):
        return self[key] if key in self else default

    def keys(self) -> list[str]:
        return [k for k, _, _ in self._json_items()]


@dataclass
class GraphNode(JsonRecord):
    """One sampled node of one rate at the queried feature position (see the module docstring)."""

    rate: int
    dilation: int
    node: int  # k = ky·kernel_size + kx
    uniform: list[float]  # [uy, ux]: the dilated-grid position, feature pixels
    walk: list[float]  # [dy, dx]: the learned walk, feature pixels
    sampled: list[float]  # [py, px] = uniform + walk
    sampled_image: list[float]  # [Y, X]: sampled, in image pixels
    inside: bool  # -1 < py < h and -1 < px < w (outside: the node reads zeros)
    affinity: float | None
    filters: list[float] | None
    weight: list[float]  # per group: β_s·A_k·w_k,g, what the op sums with
    share: float = 0.0
    uniform_image: list[float] = field(default_factory=list, metadata={"json": None})  # [Y, X] of uniform (figures)


@dataclass
class DGMNQuery(JsonRecord):
    """A DGMN layer at one pixel: every rate's nodes (S·K of them, rate-major)."""

    feature_size: list[int]
    feature_pixel: list[int]
    iteration: int
    iterations: int
    groups: int
    alpha: float
    beta: list[float]
    dilations: list[int]
    nodes: list[GraphNode]
    type: str = field(default="dgmn", init=False)

    def _json_items(self):  # "type" first, as the endpoint has always sent it
        items = list(super()._json_items())
        return [items[-1]] + items[:-1]


@dataclass
class AttentionPeak(JsonRecord):
    feature: list[int]  # [jy, jx]
    image: list[float]  # [Y, X]
    weight: float


@dataclass
class NonLocalQuery(JsonRecord):
    """A Non-local layer at one pixel: its attention over every position and the strongest ones."""

    feature_size: list[int]
    feature_pixel: list[int]
    attention: np.ndarray  # (h, w) float32, sums to 1
    top: list[AttentionPeak]
    entropy: float
    type: str = field(default="nonlocal", init=False)

    def _json_items(self):
        items = list(super()._json_items())
        return [items[-1]] + items[:-1]


@dataclass
class DeformableNode(GraphNode):
    """One tap k of a deformable convolution (DCNv2) at the queried feature position, as a DGMN node of rate 0:
    ``walk`` is the learned offset Δ_k, ``weight`` = [m_k] (the modulation mask, one "group"), ``share`` =
    |m_k| / Σ_k' |m_k'|, ``affinity`` and ``filters`` None. ``offset`` repeats ``walk`` under DCN's name."""

    offset: list[float] = field(default_factory=list)  # [dy, dx] = walk
    mask: float = 0.0  # m_k = sigmoid(a_k) (0 where an edit dropped the tap)


@dataclass
class DCNQuery(JsonRecord):
    """A deformable-convolution layer at one pixel: its K taps, the form of one DGMN rate (``dilations`` = [d])."""

    feature_size: list[int]
    feature_pixel: list[int]
    dilations: list[int]  # [d]: the one grid the offsets start from
    nodes: list[DeformableNode]
    type: str = field(default="dcn", init=False)

    def _json_items(self):
        items = list(super()._json_items())
        return [items[-1]] + items[:-1]


@dataclass
class CCNetQuery(JsonRecord):
    """A criss-cross attention layer at one pixel: the effective R-pass attention over the map (the form of a
    Non-local entry: ``attention``, ``top``, ``entropy``) and pass 1's attention on the pixel's row and column."""

    feature_size: list[int]
    feature_pixel: list[int]
    attention: np.ndarray  # (h, w) float32: E[p, ·], sums to 1
    top: list[AttentionPeak]
    entropy: float
    recurrence: int  # R
    cross: np.ndarray  # (h, w) float32: pass 1's attention of p, zero off row iy and column ix
    type: str = field(default="ccnet", init=False)

    def _json_items(self):
        items = list(super()._json_items())
        return [items[-1]] + items[:-1]


@dataclass
class DGMN2Node(JsonRecord):
    """One of the 9 positions a DGMN2 attention head sampled for the queried feature position (see the module
    docstring). Feature positions are in feature pixels of the block's map (of the crop the record comes from),
    image positions in pixels of the analysed image."""

    node: int  # k = ky·3 + kx
    grid: list[float]  # [gy, gx] = (iy + ky − 1, ix + kx − 1): the 3×3 grid at dilation 1
    walk: list[float]  # [dy, dx]: the learned offset, feature pixels
    sampled: list[float]  # [py, px] = grid + walk
    sampled_image: list[float]  # [Y, X]
    inside: bool  # -1 < py < h and -1 < px < w (outside: reads zeros)
    weight: float  # softmax over the 9 nodes of content + position
    content: float  # d^−½ · q · key(sampled)
    position: float  # the relative-position logit
    logit: float  # content + position
    grid_image: list[float] = field(default_factory=list, metadata={"json": None})  # [Y, X] of grid (figures)


@dataclass
class DGMN2Head(JsonRecord):
    """One head of a DGMN2 block at one pixel: its 9 nodes and how much of the choice is position vs content.

    Softmax ignores a constant added to all 9 logits, so only how the logits *vary across the nodes* shapes the
    weights. ``position_share`` = Var_k(r) / (Var_k(c) + Var_k(r)): the share of that variation the
    relative-position term brings, the content term bringing the rest (``content_share``); their covariance is
    not attributed to either — ``correlation`` says whether the terms push the same nodes up (> 0) or work
    against each other (< 0); None when a term is constant over the nodes. ``*_spread``: the standard deviations
    over the 9 nodes, in logit units (how strongly each term separates the nodes at all)."""

    head: int
    nodes: list[DGMN2Node]
    position_share: float
    content_share: float
    content_spread: float
    position_spread: float
    correlation: float | None


@dataclass
class DGMN2Query(JsonRecord):
    """A DGMN2 attention block at one pixel: per head, the 9 sampled positions and their weights and logits."""

    stage: int
    block: int  # 1-based within the stage
    feature_size: list[int]
    feature_pixel: list[int]
    crop: list[int]  # [y1, x1, y2, x2], image pixels (y2, x2 exclusive)
    heads: list[DGMN2Head]
    type: str = field(default="dgmn2", init=False)

    def _json_items(self):
        items = list(super()._json_items())
        return [items[-1]] + items[:-1]


LayerQuery = Union[DGMNQuery, NonLocalQuery, DCNQuery, CCNetQuery, DGMN2Query]
NODE_QUERIES = (DGMNQuery, DCNQuery)  # answered with sampled nodes (``nodes``, ``dilations``): drawn as a graph
ATTENTION_QUERIES = (NonLocalQuery, CCNetQuery)  # answered with an attention map (``attention``, ``top``)


@dataclass
class ModelAnswer(JsonRecord):
    """One model at one pixel: its predicted class, the truth when known, every inspected layer."""

    class_name: str = field(metadata={"json": "class"})
    class_index: int
    truth: Any = NOT_KNOWN  # str, None (truth outside the model's classes) or NOT_KNOWN (no ground truth)
    layers: dict[str, LayerQuery] = field(default_factory=dict)
    probabilities: Any = NOT_KNOWN  # {class name: p} at the pixel (every class, summing to 1)

    def top_classes(self, n: int = 3) -> list[tuple[str, float]]:
        """The n most probable classes at the pixel, most probable first."""
        probs = self.probabilities if isinstance(self.probabilities, dict) else {}
        return sorted(probs.items(), key=lambda kv: -kv[1])[:n]

    def first_layer(self) -> tuple[str, LayerQuery] | None:
        """(name, query) of the first inspected layer, or None for a model without a context layer."""
        return next(iter(self.layers.items()), None)


@dataclass
class Inspection(JsonRecord):
    """Every selected model's answer at one pixel (y, x) of one analysed image."""

    y: float = field(metadata={"json": None})
    x: float = field(metadata={"json": None})
    image_id: str = field(metadata={"json": None})
    models: dict[str, ModelAnswer] = field(default_factory=dict, metadata={"json": None})

    def to_json(self) -> dict:
        """The ``inspect_xy`` answer: ``{model name: ModelAnswer JSON}``."""
        return {name: answer.to_json() for name, answer in self.models.items()}

    # read like the ``{model name: answer}`` mapping it stands for
    def __getitem__(self, name: str) -> ModelAnswer:
        return self.models[name]

    def __contains__(self, name: str) -> bool:
        return name in self.models

    def __iter__(self):
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def keys(self) -> list[str]:
        return list(self.models)

    def items(self):
        return self.models.items()

    def summary(self) -> str:
        """One line for a status bar: 'Pixel (x=…, y=…) — model: class, … (truth: …)'."""
        parts = ", ".join(f"{n}: {a.class_name}" for n, a in self.models.items())
        truth = next((a.truth for a in self.models.values() if isinstance(a.truth, str) and a.truth), None)
        return f"Pixel (x={self.x:.0f}, y={self.y:.0f}) — {parts}" + (f" (truth: {truth})" if truth else "")
