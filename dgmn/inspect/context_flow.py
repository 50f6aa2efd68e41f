"""Context flow: where the messages of a whole class come from, for one context layer (issue 11).

Definition (a public contract). Take a context layer with feature maps of size (h, w), run on an image of
size (H, W), and a label map L (H, W) — the ground truth, or the model's own prediction (``labels`` says
which). Positions are mapped with :mod:`dgmn.inspect.coordinates` (pixels are (y, x)):

* **target** of feature position p = (iy, ix): t(p) = L[nearest_index(feature_to_image(iy, ix))] (rounded,
  clamped). Positions whose target is the ignore label are skipped.
* **DGMN** (iteration T, default the last), rates s with dilation d_s, nodes k = ky·ks + kx of K = ks², groups G,
  node weights W_s = β_s·A_s·w_s of shape (K·G, h, w) (layout [k][g]) and walks Δ_s of shape (2K, h, w):

      pos_{s,k}(p)   = (iy + (ky − c0)·d_s + Δy, ix + (kx − c0)·d_s + Δx),  c0 = (ks − 1)/2     (node_grid)
      share_{s,k}(p) = Σ_g |W_s[k, g](p)| / Σ_{s', k'} Σ_g |W_{s'}[k', g](p)|
      source         = "outside" unless −1 < py < h and −1 < px < w, else L[nearest_index(feature_to_image(pos))]

  (the share and the ``inside`` test of :meth:`Inspector.query_dgmn`). Positions whose weights sum to 0 or
  are not finite have no shares; they are skipped and counted in ``skipped``.
* **Non-local**: share_j(p) = softmax_j(θ_pᵀ φ_j) over the N = h·w positions j, θ and φ of shape (C', h, w);
  source(j) = L[nearest_index(feature_to_image(j))]. Computed in chunks of query rows (never N×N at once).
* **Deformable convolution (DCNv2)**: as DGMN with one rate (dilation d) whose K taps are the nodes: pos_k(p) =
  (iy + (ky − c0)·d + Δy, ix + (kx − c0)·d + Δx) with Δ the learned offsets (2K, h, w), and
  share_k(p) = |m_k(p)| / Σ_k' |m_k'(p)| with m the modulation masks (K, h, w) (issue 15); positions whose masks
  are all 0 (or not finite) are skipped.
* **Criss-cross attention (CCNet)**, R passes: share_j(p) = E[p, j], the effective attention
  E = A_R·A_{R−1}···A_1 of the R passes (each A_r nonzero on the cross of its query only; rows sum to 1);
  source(j) as for Non-local (``"outside"`` always 0). The flow's sums for target a are computed as
  Σ_{p: t(p)=a} E[p, ·] = 1_aᵀ·A_R···A_1, carried back through the passes
  (:meth:`dgmn.modules.CrissCross2d.spread`), so neither N×N nor per-position rows are built.
* **flow**[a, b] = (1 / #{p : t(p) = a}) · Σ_{p : t(p) = a} Σ_{n : source(n) = b} share_n(p).

Each row sums to 1 over the sources: the classes, ``"outside"`` (always 0 for Non-local) and, only when a
share lands on a pixel holding the ignore label, ``"ignore"``. Over a dataset, :class:`ContextFlow` adds
up (``a + b``): the sums of the per-position rows and the position counts, so the dataset's flow is the mean
over all positions of the split with t(p) = a.

For one image and one class, :func:`class_heat` gives where that class's messages come from, per image
pixel (what the app draws), and the class's own pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..data.augment import IGNORE
from ..modules import CrossAttention
from .coordinates import feature_to_image, image_to_feature
from .inspector import CCNetRecord, DCNRecord, DGMNRecord, Inspector, NonLocalRecord

OUTSIDE = "outside"
IGNORED = "ignore"
LABEL_KINDS = ("truth", "prediction")
CHUNK_ELEMENTS = 1 << 22  # Non-local attention rows held at once: chunk × N ≤ 4M float32 (16 MB)


@dataclass
class ContextFlow:
    """The flow of one layer, summed over positions (and images): ``sums[a, b]`` = Σ_{p: t(p)=a} (share of
    p's messages from source b); ``counts[a]`` = #{p : t(p) = a}; ``matrix`` = sums / counts.

    Columns of ``sums``: the C classes, then ``"outside"``, then ``"ignore"`` — shape (C, C + 2), float64.
    """

    layer: str
    labels: str  # "truth" | "prediction"
    classes: tuple[str, ...]
    sums: torch.Tensor  # (C, C + 2) float64
    counts: torch.Tensor  # (C,) int64
    images: int = 1
    skipped: int = 0  # positions whose DGMN node weights sum to 0 or are not finite

    @property
    def sources(self) -> list[str]:
        """Column names: the classes and ``"outside"``, plus ``"ignore"`` when any share landed on it."""
        extra = [IGNORED] if float(self.sums[:, -1].abs().sum()) > 0 else []
        return [*self.classes, OUTSIDE, *extra]

    @property
    def matrix(self) -> torch.Tensor:
        """(C, len(sources)) mean shares; rows of classes without positions are NaN."""
        m = self.sums[:, : len(self.sources)] / self.counts[:, None].double()
        m[self.counts == 0] = float("nan")
        return m

    def class_index(self, name) -> int:
        return _class_index(name, self.classes)

    def row(self, target) -> dict[str, float]:
        """{source: share} of target class ``target`` (name or index); NaN shares if it has no positions."""
        a = self.class_index(target)
        return dict(zip(self.sources, self.matrix[a].tolist()))

    def positions(self, target) -> int:
        return int(self.counts[self.class_index(target)])

    def to_json(self) -> dict:
        """``{"layer", "labels", "matrix": {target: {source: share}}, "positions": {target: count}}``; only
        targets with at least one position have a matrix row."""
        m = self.matrix
        return {
            "layer": self.layer, "labels": self.labels,
            "matrix": {c: dict(zip(self.sources, m[a].tolist())) for a, c in enumerate(self.classes) if self.counts[a] > 0},
            "positions": {c: int(n) for c, n in zip(self.classes, self.counts)},
        }

    def __add__(self, other: "ContextFlow") -> "ContextFlow":
        if (self.layer, self.labels, self.classes) != (other.layer, other.labels, other.classes):
            raise ValueError(
                f"ContextFlow: cannot add the flow of layer {other.layer!r} ({other.labels} labels) to that of layer "
                f"{self.layer!r} ({self.labels} labels); add flows of the same layer, labels and classes only")
        return ContextFlow(self.layer, self.labels, self.classes, self.sums + other.sums, self.counts + other.counts,
                           self.images + other.images, self.skipped + other.skipped)


@dataclass
class ClassHeat:
    """Where the messages of one class's positions come from on one image.

    ``heat`` (H, W): per image pixel, the mean over positions p with t(p) = class of the shares landing there.
    DGMN and DCN: each node's share splatted bilinearly at its sampled position in image coordinates (clamped into
    the image like its source pixel; outside nodes are dropped), so ``heat.sum() == 1 − outside``. Non-local and
    CCNet: the mean attention row (h, w) (CCNet: of the effective attention E) upsampled bilinearly with the
    coordinates mapping and rescaled to sum to 1.
    ``mask`` (H, W): the class's own pixels, L == class. ``heat`` is all zero if the class has no positions
    (``positions == 0``: no feature position's nearest pixel holds the class, e.g. a class absent or tiny).
    """

    layer: str
    labels: str
    class_name: str
    class_index: int
    heat: np.ndarray  # (H, W) float64
    mask: np.ndarray  # (H, W) bool
    positions: int
    outside: float  # share of the messages from outside the map (0 for Non-local and CCNet)


# ---------------------------------------------------------------------------------------------------------
def context_layers(inspector: Inspector) -> list[str]:
    """Names of the model's context layers (DGMN, Non-local, DCN, CCNet) that recorded the last run, in the model's order."""
    return [n for n in inspector.layers if n in inspector.records]


def context_flow(inspector: Inspector, labels, *, labels_from: str, classes=None, layer: str | None = None,
                 iteration: int = -1, ignore_index: int = IGNORE, targets=None) -> ContextFlow:
    """The flow of ``layer`` (default: the model's first context layer) on the image the inspector
    ran last, for label map ``labels`` (H, W) of class indices (``ignore_index`` = no label).

    ``labels_from`` is ``"truth"`` or ``"prediction"`` (said in every output); ``classes`` the class names
    (default: the model card's). ``targets`` (class names or indices) computes only those rows, the others
    having no positions — what one class's bar chart needs, at a fraction of the cost for Non-local on a
    large image. Returns a :class:`ContextFlow` of one image.
    """
    name, rec, L, classes, kind = _prepare(inspector, labels, labels_from, classes, layer, ignore_index)
    C = len(classes)
    target = _targets(rec.feature_size, L).flatten()  # (N,)
    valid = target != ignore_index
    if targets is not None:
        valid &= torch.isin(target, torch.tensor([_class_index(t, classes) for t in targets], dtype=torch.long))
    skipped = 0
    if isinstance(rec, CCNetRecord):
        layer = inspector.layers[name]
        source = _columns(target, C, ignore_index)  # (N,) source column of each key position
        sums = torch.zeros(C, C + 2, dtype=torch.float64)
        t = target[valid]
        for a in t.unique().tolist():
            reach = _carried(layer, rec, (valid & (target == a)).view(rec.feature_size)).flatten()  # Σ_{p: t(p)=a} E[p, ·]
            sums[a] = torch.zeros(C + 2, dtype=torch.float64).index_add_(0, source, reach)
        return ContextFlow(name, kind, tuple(classes), sums, torch.bincount(t, minlength=C), 1, 0)
    if isinstance(rec, (DGMNRecord, DCNRecord)):
        nodes = _nodes(rec, iteration, L.shape)
        cols = nodes.columns(L, C, ignore_index)  # (S·K, N)
        rows = torch.zeros(target.numel(), C + 2, dtype=torch.float64).scatter_add_(1, cols.T, nodes.share.T)
        skipped = int((valid & ~nodes.usable).sum())
        valid &= nodes.usable
        rows = rows[valid]
    else:
        onehot = torch.nn.functional.one_hot(_columns(target, C, ignore_index), C + 2).float()  # (N, C + 2): source of j
        rows = torch.cat([att @ onehot for att in _attention_rows(rec, valid.nonzero()[:, 0])] or [torch.zeros(0, C + 2)]).double()
    t = target[valid]
    sums = torch.zeros(C, C + 2, dtype=torch.float64).index_add_(0, t, rows)
    counts = torch.bincount(t, minlength=C)
    return ContextFlow(name, kind, tuple(classes), sums, counts, 1, skipped)


def class_heat(inspector: Inspector, labels, class_name, *, labels_from: str, classes=None, layer: str | None = None,
               iteration: int = -1, ignore_index: int = IGNORE) -> ClassHeat:
    """Where the messages of class ``class_name`` (name or index) come from on the last image: a
    :class:`ClassHeat` with the per-pixel heat map (H, W) and the class's own pixels. Arguments as
    :func:`context_flow`."""
    name, rec, L, classes, kind = _prepare(inspector, labels, labels_from, classes, layer, ignore_index)
    a = _class_index(class_name, classes)
    H, W = L.shape
    mask = (L == a).numpy()
    sel = (_targets(rec.feature_size, L).flatten() == a)
    heat = torch.zeros(H * W, dtype=torch.float64)
    outside = 0.0
    if isinstance(rec, (DGMNRecord, DCNRecord)):
        nodes = _nodes(rec, iteration, L.shape)
        sel &= nodes.usable
        n = int(sel.sum())
        if n:
            share, inside = nodes.share[:, sel], nodes.inside[:, sel]
            Y = nodes.Y[:, sel][inside].clamp(0, H - 1)
            X = nodes.X[:, sel][inside].clamp(0, W - 1)
            y0, x0 = Y.floor(), X.floor()
            wy, wx = Y - y0, X - x0
            y0, x0 = y0.long(), x0.long()
            y1, x1 = (y0 + 1).clamp(max=H - 1), (x0 + 1).clamp(max=W - 1)
            s = share[inside]
            for yy, xx, wgt in ((y0, x0, (1 - wy) * (1 - wx)), (y0, x1, (1 - wy) * wx), (y1, x0, wy * (1 - wx)), (y1, x1, wy * wx)):
                heat.index_add_(0, yy * W + xx, s * wgt)
            heat /= n
            outside = float(share[~inside].sum()) / n
    else:
        n = int(sel.sum())
        if n:
            h, w = rec.feature_size
            if isinstance(rec, CCNetRecord):
                mean = _carried(inspector.layers[name], rec, sel.view(h, w)) / n
            else:
                mean = sum(att.double().sum(0) for att in _attention_rows(rec, sel.nonzero()[:, 0])).view(h, w) / n
            up = _upsample(mean, (H, W))
            heat = (up * (mean.sum() / up.sum())).flatten()
    return ClassHeat(name, kind, classes[a], a, heat.view(H, W).numpy(), mask, n, outside)


# ---------------------------------------------------------------------------------------------------------
def _class_index(name, classes) -> int:
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool) and 0 <= int(name) < len(classes):
        return int(name)
    if isinstance(name, str) and name in classes:
        return list(classes).index(name)
    raise ValueError(f"unknown class {name!r}; choose one of: {', '.join(classes)} (or an index below {len(classes)})")


def _prepare(inspector: Inspector, labels, labels_from, classes, layer, ignore_index):
    """Validate the arguments: (layer name, record, labels (H, W) long tensor, class names, labels_from)."""
    if labels_from not in LABEL_KINDS:
        raise ValueError(f"labels_from must be 'truth' (ground-truth labels) or 'prediction' (the model's own), got {labels_from!r}")
    if not inspector.layers:
        raise ValueError(f"the model ({type(inspector.model).__name__}) has no DGMN or Non-local layer (nor a DCN or CCNet layer), so there is no context "
                         "flow to measure; use a model with a context layer")
    names = context_layers(inspector)
    if not names:
        raise ValueError("no image has been run through the inspector yet; call inspector.run(image) first")
    if layer is None:
        layer = names[0]
    elif layer not in names:
        raise ValueError(f"{layer!r} is not a context layer of this model; choose one of: {', '.join(names)}")
    if classes is None:
        classes = (getattr(inspector.model, "card", None) or {}).get("classes")
        if classes is None:
            raise ValueError("the model has no card naming its classes; pass classes=[...] (one name per class index)")
    classes = tuple(classes)
    L = torch.as_tensor(np.asarray(labels)).long()
    if L.dim() != 2:
        raise ValueError(f"the label map must be (H, W) class indices, got shape {tuple(L.shape)}")
    if inspector.image_size is not None and tuple(L.shape) != tuple(inspector.image_size):
        raise ValueError(f"the label map is {tuple(L.shape)} but the image the inspector ran is {tuple(inspector.image_size)}; "
                         "pass the labels of that image, at its size")
    bad = (L != ignore_index) & ((L < 0) | (L >= len(classes)))
    if bad.any():
        raise ValueError(f"the label map holds {int(L[bad][0])}, which is neither a class index (0–{len(classes) - 1}) nor the "
                         f"ignore label {ignore_index}; pass class indices, or set ignore_index")
    return layer, inspector.records[layer], L, classes, labels_from


def _nearest(y: torch.Tensor, x: torch.Tensor, size) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`dgmn.inspect.coordinates.nearest_index` for tensors: round (half to even, as Python's round), clamp."""
    return y.round().clamp(0, size[0] - 1).long(), x.round().clamp(0, size[1] - 1).long()


def _targets(feature_size, L: torch.Tensor) -> torch.Tensor:
    """t(p) for every feature position: (h, w) labels at the image pixels nearest to the positions' centres."""
    h, w = feature_size
    fy = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    fx = torch.arange(w, dtype=torch.float64)[None, :].expand(h, w)
    iy, ix = _nearest(*feature_to_image(fy, fx, feature_size, L.shape), L.shape)
    return L[iy, ix]


def _columns(labels: torch.Tensor, C: int, ignore_index: int) -> torch.Tensor:
    """Source column of each label: the class index, or C + 1 (``"ignore"``) for the ignore label."""
    return torch.where(labels == ignore_index, C + 1, labels)


def _nodes(rec, iteration: int, image_size) -> "_Nodes":
    """The nodes of a DGMN record (iteration ``iteration``; magnitude Σ_g |β·A·w| per node) or of a DCN record
    (one rate, its K taps; magnitude |m_k|), as :class:`_Nodes`."""
    h, w = rec.feature_size
    K = rec.kernel_size**2
    if isinstance(rec, DCNRecord):
        return _Nodes([rec.graph.mask[0].double().abs().view(K, h * w)], [rec.graph.offset[0]], [rec.graph.dilation],
                      rec.kernel_size, (h, w), image_size)
    graphs = rec.iterations[iteration]
    return _Nodes([g.weight.double().abs().view(K, -1, h * w).sum(1) for g in graphs], [g.offset for g in graphs],
                  [g.dilation for g in graphs], rec.kernel_size, (h, w), image_size)


def _carried(layer, rec: CCNetRecord, weights: torch.Tensor) -> torch.Tensor:
    """(h, w) float64: Σ_p weights[p]·E[p, ·] for (h, w) query weights (bool or numbers), carried back through the
    recorded passes, e ← e·A_r for r = R…1 (:meth:`dgmn.modules.CrissCross2d.spread`)."""
    e = weights.double()[None]
    for att in reversed(rec.attentions):
        e = layer.spread(e, CrossAttention(att.row.double(), att.column.double()))
    return e[0]


class _Nodes:
    """Every node of every rate of one DGMN or DCN record, positions p flattened (N = h·w): ``share`` (S·K, N)
    float64, ``Y``/``X`` (S·K, N) sampled positions in image coordinates, ``inside`` (S·K, N) and ``usable`` (N,):
    positions whose node magnitudes have a finite, non-zero total. ``mags``: per rate (K, N) node magnitudes;
    ``offsets``: per rate (2K, h, w) walks."""

    def __init__(self, mags, offsets, dilations, kernel_size: int, feature_size, image_size):
        from ..ops import node_grid

        h, w = feature_size
        mag = torch.cat(mags)  # (S·K, N)
        total = mag.sum(0)
        self.usable = torch.isfinite(total) & (total > 0)
        self.share = torch.where(self.usable, mag / torch.where(self.usable, total, 1.0), 0.0)
        pos = torch.cat([node_grid(off[None].double(), (d,), kernel_size)[0] for off, d in zip(offsets, dilations)])  # (S·K, h, w, 2)
        py, px = pos[..., 0].flatten(1), pos[..., 1].flatten(1)
        self.inside = (py > -1) & (py < h) & (px > -1) & (px < w)
        # NaN walks are outside; park them at 0 so that rounding and indexing stay defined
        py, px = torch.where(self.inside, py, 0.0), torch.where(self.inside, px, 0.0)
        self.Y, self.X = feature_to_image(py, px, (h, w), image_size)

    def columns(self, L: torch.Tensor, C: int, ignore_index: int) -> torch.Tensor:
        """(S·K, N) source column of every node: class index, C (``"outside"``) or C + 1 (``"ignore"``)."""
        iy, ix = _nearest(self.Y, self.X, L.shape)
        return torch.where(self.inside, _columns(L[iy, ix], C, ignore_index), C)


def _attention_rows(rec: NonLocalRecord, queries: torch.Tensor) -> Iterator[torch.Tensor]:
    """softmax_j(θ_pᵀ φ_j) for the flattened positions p in ``queries`` (n,), in order, as chunks of rows
    (≤ ``CHUNK_ELEMENTS // N`` rows, N) float32 (relative error ~1e-7; float64 would be 3–5× slower)."""
    theta = rec.theta.float().flatten(1)  # (C', N)
    phi = rec.phi.float().flatten(1)
    step = max(1, CHUNK_ELEMENTS // phi.shape[1])
    for i in range(0, queries.numel(), step):
        yield torch.softmax(theta[:, queries[i : i + step]].T @ phi, dim=1)


def _upsample(values: torch.Tensor, image_size) -> torch.Tensor:
    """(h, w) → (H, W) bilinearly, each image pixel reading the map at ``image_to_feature`` (clamped to the map)."""
    (h, w), (H, W) = values.shape, image_size
    fy, fx = image_to_feature(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), (h, w), (H, W))
    fy, fx = fy.clamp(0, h - 1), fx.clamp(0, w - 1)
    y0, x0 = fy.floor().long(), fx.floor().long()
    y1, x1 = (y0 + 1).clamp(max=h - 1), (x0 + 1).clamp(max=w - 1)
    wy, wx = (fy - y0)[:, None], (fx - x0)[None, :]
    v = values.double()
    return ((1 - wy) * ((1 - wx) * v[y0][:, x0] + wx * v[y0][:, x1]) + wy * ((1 - wx) * v[y1][:, x0] + wx * v[y1][:, x1]))
