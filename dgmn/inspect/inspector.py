"""Inspection: for any pixel, which nodes every DGMN layer sampled, where the walks went, and with what
affinities and weights; the Non-local attention of the same pixel; the 9 points a deformable convolution
(DCNv2) sampled; and the criss-cross attention (CCNet) of the pixel, pass 1 and the effective R-pass attention.

``Inspector(model)`` hooks every :class:`dgmn.DGMN`, :class:`dgmn.NonLocal2d`,
:class:`dgmn.modules.DeformableContext` and :class:`dgmn.modules.CrissCross2d` inside any ``nn.Module`` (also
ResNets with layers inserted by :func:`dgmn.models.insert_dgmn`). ``run(image)`` runs the model once and keeps,
per layer, what a query needs at feature resolution (batch element 0): walks, affinities, dynamic filters and
node weights of every rate and iteration; Non-local's θ and φ maps; DCN's offsets (2K, h, w) and masks (K, h, w);
CCNet's row (h, w, w) and column (h, w, h) attention of every pass. ``query(y, x)`` then answers in O(S·K) per
DGMN layer, O(N·C') per Non-local layer, O(K) per DCN layer and O(R·N·(h + w)) per CCNet layer without
re-running the model, and never builds an N×N matrix.

DGMN2 models (:mod:`dgmn.models.dgmn2`): every attention block of a :class:`DGMN2Backbone` inside the model is hooked
too, recorded under the layer name ``"stage s, block b"`` (b 1-based: ``backbone.block{s}[b − 1]``). The hook
recomputes the block's :meth:`DGMN2Attention.internals` from its input (one more attention forward per block)
and keeps, per head, the offsets (9, 2, h, w), the content logits d^−½·q·k (9, h, w) and the relative-position
logits (9, h, w) — 36 numbers per head and feature position; positions and weights are derived from them at
query time (:meth:`query_dgmn2`). ``run(image, slide=(crop, stride))`` runs mmseg's sliding-window inference
(:func:`dgmn.models.dgmn2.slide_inference`, averaged logits) and keeps the records of *every* crop; a pixel is
answered from the crop whose centre is nearest to it (the first such crop in window order on a tie), which is
the whole image when it fits one crop; of each crop only the feature positions of the pixels it answers for are
kept (overlaps are not stored twice). That crop saw the most context around the pixel; the logits at the
pixel, though, are the average over all crops covering it, as the original's test mode computes them.

Coordinates: image pixel (y, x) ↔ feature position ((y + ½)·h/H − ½, (x + ½)·w/W − ½), the convention of
bilinear upsampling with ``align_corners=False``; the queried feature pixel is the nearest one. DGMN2 blocks use
their head's convention, ``align_corners=True`` in every published configuration: crop pixel (y, x) ↔ feature
position (y·(h − 1)/(H − 1), x·(w − 1)/(W − 1)) of the crop's (H, W) and the block's (h, w).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..models.dgmn2 import DGMN2Backbone, slide_inference
from ..models.dgmn2.slide import window_starts
from ..modules import DGMN, CrissCross2d, CrossAttention, DeformableContext, DeformableGraph, NonLocal2d, RateGraph
from ..modules.graph_stats import collapsed_mask, node_positions, outside_mask
from .coordinates import feature_to_image, image_to_feature, nearest_feature
from .records import (AttentionPeak, CCNetQuery, DCNQuery, DeformableNode, DGMN2Head, DGMN2Node, DGMN2Query, DGMNQuery,
                      GraphNode, NonLocalQuery)

CONTEXT_TYPES = (DGMN, NonLocal2d, DeformableContext, CrissCross2d)  # the layers the inspector records


@dataclass
class DGMNRecord:
    """What one DGMN layer did on the last image: per iteration, per rate, tensors of batch element 0 (CPU)."""

    kernel_size: int
    groups: int
    feature_size: tuple[int, int]
    alpha: float = 1.0  # the message scale α of h = ReLU(f + α·m)
    beta: list[float] = field(default_factory=list)  # β per rate (already inside every RateGraph.weight)
    iterations: list[list[RateGraph]] = field(default_factory=list)


@dataclass
class NonLocalRecord:
    feature_size: tuple[int, int]
    theta: torch.Tensor | None = None  # (C', h, w)
    phi: torch.Tensor | None = None  # (C', h, w)


@dataclass
class DCNRecord:
    """What one deformable-convolution layer sampled on the last image (batch element 0 kept as a batch of 1, CPU)."""

    feature_size: tuple[int, int]
    kernel_size: int
    graph: DeformableGraph  # dilation d, offset (1, 2K, h, w) [k][dy, dx], mask (1, K, h, w), as the layer used them


@dataclass
class CCNetRecord:
    """What one criss-cross attention layer attended to on the last image: every pass's attention (batch of 1, CPU)."""

    feature_size: tuple[int, int]
    attentions: list[CrossAttention] = field(default_factory=list)  # R × (row (1, h, w, w), column (1, h, w, h))


@dataclass
class DGMN2Crop:
    """One DGMN2 attention block on one crop (or the whole image), batch element 0, CPU: per head h."""

    box: tuple[int, int, int, int]  # (y1, x1, y2, x2) of the crop in image pixels (y2, x2 exclusive)
    feature_size: tuple[int, int]  # the block's (h, w) map for this crop
    offsets: torch.Tensor  # (heads, 9, 2, h', w') [dy, dx], feature pixels
    content: torch.Tensor  # (heads, 9, h', w') d^−½ · q · k(sampled)
    position: torch.Tensor  # (heads, 9, h', w') relative-position logits
    origin: tuple[int, int] = (0, 0)  # the feature position of the kept [0, 0]: (h', w') may be a part of (h, w)

    @property
    def crop_size(self) -> tuple[int, int]:
        return self.box[2] - self.box[0], self.box[3] - self.box[1]


@dataclass
class DGMN2Record:
    """What one DGMN2 attention block computed on the last image: one :class:`DGMN2Crop` per slide-inference crop
    (one for the whole image without sliding), in window order."""

    stage: int
    block: int  # 1-based
    heads: int
    crops: list[DGMN2Crop] = field(default_factory=list)
    align_corners: bool = True  # how the model's head reads its maps (the crop's feature ↔ pixel mapping)

    @property
    def feature_size(self) -> tuple[int, int]:
        """The first crop's map size (every crop's, for crops of one size)."""
        return self.crops[0].feature_size

    def crop_for(self, y: float, x: float) -> DGMN2Crop:
        """The crop whose centre is nearest image pixel (y, x) (the first in window order on a tie)."""
        return self.crops[nearest_crop([c.box for c in self.crops], y, x)]


def nearest_crop(boxes, y: float, x: float) -> int:
    """The index of the box (y1, x1, y2, x2) whose centre is nearest (y, x); the first one on a tie."""
    def dist(i):
        y1, x1, y2, x2 = boxes[i]
        return (y - (y1 + y2 - 1) / 2) ** 2 + (x - (x1 + x2 - 1) / 2) ** 2

    return min(range(len(boxes)), key=dist)


def dgmn2_blocks(model: nn.Module) -> dict[str, tuple[int, int, nn.Module]]:
    """{"stage s, block b": (s, b, attention module)} of every DGMN2 backbone inside ``model`` (b 1-based)."""
    out = {}
    for prefix, bb in model.named_modules():
        if isinstance(bb, DGMN2Backbone):
            for s, (_, blocks) in enumerate(bb.stages(), 1):
                for b, blk in enumerate(blocks, 1):
                    name = f"stage {s}, block {b}"
                    out[name if name not in out else f"{prefix}: {name}"] = (s, b, blk.attn)
    return out


def slide_settings(card: dict | None) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """((crop h, w), (stride h, w)) when a model card says ``"inference": {"mode": "slide", "crop_size", "stride"}``
    (converted DGMN2 checkpoints), else None (one forward of the whole image)."""
    inf = (card or {}).get("inference") if isinstance(card, dict) else None
    if not isinstance(inf, dict) or inf.get("mode") != "slide":
        return None

    def pair(v):
        t = [v, v] if isinstance(v, int) else v
        ok = isinstance(t, (list, tuple)) and len(t) == 2 and all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in t)
        return tuple(t) if ok else None

    crop, stride = pair(inf.get("crop_size")), pair(inf.get("stride"))
    return (crop, stride) if crop and stride else None


def slide_windows(size: tuple[int, int], slide) -> list[tuple[int, int, int, int]]:
    """The (y1, x1, y2, x2) crops :func:`slide_inference` runs on an image of ``size`` (H, W), in its order."""
    (hc, wc), (hs, ws) = slide
    return [(y1, x1, y2, x2) for (y1, y2) in window_starts(size[0], hc, hs) for (x1, x2) in window_starts(size[1], wc, ws)]


def _first(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t[0].detach().float().cpu()


def _first_batch(t: torch.Tensor) -> torch.Tensor:
    """Batch element 0 as a batch of one on the CPU, contiguous (own storage): float64 stays float64 (a layer run in
    double keeps its precision), every other dtype becomes float32."""
    t = t[:1].detach()
    return t.to("cpu", torch.float64 if t.dtype == torch.float64 else torch.float32).contiguous()


def context_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The DGMN, NonLocal2d, DeformableContext and CrissCross2d layers of ``model`` by module name (the model's own
    class name at the top)."""
    return {name or type(m).__name__: m for name, m in model.named_modules() if isinstance(m, CONTEXT_TYPES)}


class Inspector:
    """Hooks into ``model``'s DGMN, NonLocal2d, DeformableContext and CrissCross2d layers and DGMN2 attention blocks;
    see the module docstring.

    Use as a context manager (or call :meth:`close`) to remove the hooks.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers: dict[str, nn.Module] = context_layers(model)
        self.records: dict[str, DGMNRecord | NonLocalRecord | DCNRecord | CCNetRecord] = {}
        self.image_size: tuple[int, int] | None = None
        self.dgmn2_blocks = dgmn2_blocks(model)
        self.crops: list[tuple[int, int, int, int]] = []  # the crops of the last run, (y1, x1, y2, x2)
        self._windows: list[tuple[int, int, int, int]] = []
        self._handles = []
        for name, (stage, block, attn) in self.dgmn2_blocks.items():
            self._handles.append(attn.register_forward_hook(self._dgmn2_hook(name, stage, block)))
        if self.dgmn2_blocks:
            self._handles.append(model.register_forward_pre_hook(self._next_crop))
        for name, m in self.layers.items():
            if isinstance(m, DGMN):
                self._handles.append(m.register_graph_hook(self._dgmn_hook(name)))
            elif isinstance(m, DeformableContext):
                self._handles.append(m.register_graph_hook(self._dcn_hook(name)))
            elif isinstance(m, CrissCross2d):
                self._handles.append(m.register_attention_hook(self._ccnet_hook(name)))
            else:
                self._handles.append(m.theta.register_forward_hook(self._nonlocal_hook(name, "theta")))
                self._handles.append(m.phi.register_forward_hook(self._nonlocal_hook(name, "phi")))

    # hooks --------------------------------------------------------------------------------------
    def _dgmn_hook(self, name):
        def hook(layer: DGMN, f: torch.Tensor, history):
            rec = DGMNRecord(layer.kernel_size, layer.groups, tuple(f.shape[-2:]), float(layer.alpha), [float(b) for b in layer.beta])
            for graphs in history:
                rec.iterations.append([
                    RateGraph(g.dilation, _first(g.offset), _first(g.affinity), _first(g.filters), _first(g.weight))
                    for g in graphs
                ])
            self.records[name] = rec

        return hook

    def _dcn_hook(self, name):
        def hook(layer: DeformableContext, f: torch.Tensor, graph: DeformableGraph):
            self.records[name] = DCNRecord(tuple(f.shape[-2:]), layer.kernel_size,
                                           DeformableGraph(graph.dilation, _first_batch(graph.offset), _first_batch(graph.mask)))

        return hook

    def _ccnet_hook(self, name):
        def hook(layer: CrissCross2d, f: torch.Tensor, atts):
            self.records[name] = CCNetRecord(tuple(f.shape[-2:]), [CrossAttention(_first_batch(a.row), _first_batch(a.column)) for a in atts])

        return hook

    def _next_crop(self, module, args):
        """Before each forward of the whole model: which crop (or the whole image) it runs on."""
        x = args[0] if args else None
        n = len(self.crops)
        if n < len(self._windows):
            box = self._windows[n]
        else:  # a forward outside run(): the input is its own whole image
            box = (0, 0, *tuple(x.shape[-2:])) if isinstance(x, torch.Tensor) else (0, 0, 0, 0)
        self.crops.append(box)

    def _dgmn2_hook(self, name, stage, block):
        def hook(attn, args, output):
            x, H, W = args[0][:1], int(args[1]), int(args[2])
            with torch.no_grad():
                it = attn.internals(x, H, W)
            rec = self.records.get(name)
            if not isinstance(rec, DGMN2Record):
                rec = self.records[name] = DGMN2Record(stage, block, attn.num_heads,
                                                       align_corners=bool(getattr(self.model, "align_corners", True)))
            box = self.crops[-1] if self.crops else (0, 0, H, W)
            rec.crops.append(DGMN2Crop(box, (H, W), _first_batch(it.offsets)[0], _first_batch(it.content)[0],
                                       _first_batch(it.position)[0]))

        return hook

    def _nonlocal_hook(self, name, which):
        def hook(module, inputs, output):
            rec = self.records.get(name)
            if not isinstance(rec, NonLocalRecord) or rec.feature_size != tuple(output.shape[-2:]) or getattr(rec, which) is not None:
                rec = NonLocalRecord(tuple(output.shape[-2:]))
                self.records[name] = rec
            setattr(rec, which, _first(output))

        return hook

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # running and querying ------------------------------------------------------------------------
    @torch.no_grad()
    def run(self, image: torch.Tensor, slide=None, progress=None) -> torch.Tensor:
        """Run the model once on ``image`` (3, H, W) or (1, 3, H, W); returns its output and keeps the records.

        ``slide=((crop_h, crop_w), (stride_h, stride_w))`` (see :func:`slide_settings`): mmseg's sliding-window
        inference instead (:func:`dgmn.models.dgmn2.slide_inference`: averaged logits of overlapping crops; one
        crop, the whole image, when it fits), keeping every crop's records; ``progress(done, total)`` after each
        crop."""
        x = image.unsqueeze(0) if image.dim() == 3 else image
        if x.dim() != 4 or x.shape[0] != 1:
            raise ValueError(f"Inspector.run: expected one image, (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
        self.records = {}
        self.crops = []
        self.model.eval()
        size = tuple(x.shape[-2:])
        try:
            if slide is not None:
                self._windows = slide_windows(size, slide)
                out = slide_inference(self.model, x, slide[0], slide[1], getattr(self.model, "num_classes", None), progress)
            else:
                self._windows = [(0, 0, *size)]
                out = self.model(x)
        finally:
            self._windows = []
        self.image_size = size
        if len(self.crops) > 1:
            self._keep_nearest(size)
        return out

    def _keep_nearest(self, size) -> None:
        """After a sliding-window run: keep of each crop's DGMN2 records only the feature positions that pixels
        answered from that crop can map to (the pixels nearer its centre than any other crop's), so overlapping
        crops do not store their overlap twice. Crops come as a grid (rows × columns, row-major), so the nearest
        crop is the nearest row of crops and the nearest column, found per axis."""
        H, W = size
        boxes = self.crops
        ranges = []  # per crop: (ymin, ymax, xmin, xmax) of its pixels, or None
        ys = [nearest_crop([(b[0], 0, b[2], 1) for b in boxes], y, 0) for y in range(H)]
        xs = [nearest_crop([(0, b[1], 1, b[3]) for b in boxes], 0, x) for x in range(W)]
        for i, (y1, x1, y2, x2) in enumerate(boxes):
            rows = [y for y in range(H) if boxes[ys[y]][0::2] == (y1, y2)]
            cols = [x for x in range(W) if boxes[xs[x]][1::2] == (x1, x2)]
            ranges.append((rows[0], rows[-1], cols[0], cols[-1]) if rows and cols else None)
        for rec in self.records.values():
            if not isinstance(rec, DGMN2Record):
                continue
            for crop, r in zip(rec.crops, ranges):
                y1, x1 = crop.box[:2]
                if r is None:
                    iy0, ix0, iy1, ix1 = 0, 0, -1, -1
                else:
                    iy0, ix0 = nearest_feature(r[0] - y1, r[2] - x1, crop.feature_size, crop.crop_size, rec.align_corners)
                    iy1, ix1 = nearest_feature(r[1] - y1, r[3] - x1, crop.feature_size, crop.crop_size, rec.align_corners)
                part = (..., slice(iy0, iy1 + 1), slice(ix0, ix1 + 1))
                crop.offsets, crop.content, crop.position = (t[part].clone(memory_format=torch.contiguous_format)
                                                             for t in (crop.offsets, crop.content, crop.position))
                crop.origin = (iy0, ix0)

    def to_feature(self, y: float, x: float, feature_size) -> tuple[float, float]:
        """Image pixel (y, x) of the last image → feature position (see :mod:`dgmn.inspect.coordinates`)."""
        return image_to_feature(y, x, feature_size, self.image_size)

    def to_image(self, fy: float, fx: float, feature_size) -> tuple[float, float]:
        """Feature position (fy, fx) → image pixel of the last image (see :mod:`dgmn.inspect.coordinates`)."""
        return feature_to_image(fy, fx, feature_size, self.image_size)

    def query(self, y: float, x: float, layers: list[str] | None = None, iteration: int = -1) -> dict[str, DGMNQuery | NonLocalQuery | DCNQuery | CCNetQuery]:
        """Everything recorded about image pixel (y, x), per layer (typed records, :mod:`dgmn.inspect.records`). See
        :meth:`query_dgmn`, :meth:`query_nonlocal`, :meth:`query_dcn` and :meth:`query_ccnet`."""
        if self.image_size is None:
            raise ValueError("Inspector.query: no image has been run yet; call run(image) first")
        H, W = self.image_size
        if not (0 <= y < H and 0 <= x < W):
            raise ValueError(f"Inspector.query: pixel (y={y}, x={x}) is outside the {H}×{W} image")
        out = {}
        for name in layers or list(self.records):
            rec = self.records[name]
            if isinstance(rec, DGMNRecord):
                out[name] = self.query_dgmn(name, y, x, iteration)
            elif isinstance(rec, DCNRecord):
                out[name] = self.query_dcn(name, y, x)
            elif isinstance(rec, CCNetRecord):
                out[name] = self.query_ccnet(name, y, x)
            elif isinstance(rec, DGMN2Record):
                out[name] = self.query_dgmn2(name, y, x)
            else:
                out[name] = self.query_nonlocal(name, y, x)
        return out

    def _feature_pixel(self, y, x, size) -> tuple[int, int]:
        return nearest_feature(y, x, size, self.image_size)

    def query_dgmn(self, name: str, y: float, x: float, iteration: int = -1) -> DGMNQuery:
        """For every rate s and node k of the pixel's feature position (iy, ix): the uniform position
        (iy + (ky−c0)·d, ix + (kx−c0)·d), the walk (dy, dx), the sampled position (feature and image
        coordinates), the affinity, the per-group dynamic weights, the node weight the op sums with
        (β·A·w per group) and the node's share Σ_g|weight| / Σ_all nodes Σ_g|weight|."""
        rec = self.records[name]
        graphs = rec.iterations[iteration]
        size = rec.feature_size
        iy, ix = self._feature_pixel(y, x, size)
        ks, G = rec.kernel_size, rec.groups
        K, c0 = ks * ks, (ks - 1) / 2
        nodes = []
        for s, g in enumerate(graphs):
            off = g.offset[:, iy, ix].view(K, 2)
            wt = g.weight[:, iy, ix].view(K, -1)
            for k in range(K):
                ky, kx = divmod(k, ks)
                uy, ux = iy + (ky - c0) * g.dilation, ix + (kx - c0) * g.dilation
                dy, dx = float(off[k, 0]), float(off[k, 1])
                py, px = uy + dy, ux + dx
                nodes.append(GraphNode(
                    rate=s, dilation=g.dilation, node=k, uniform=[uy, ux], walk=[dy, dx], sampled=[py, px],
                    sampled_image=list(self.to_image(py, px, size)), inside=bool(-1 < py < size[0] and -1 < px < size[1]),
                    affinity=None if g.affinity is None else float(g.affinity[k, iy, ix]),
                    filters=None if g.filters is None else [float(v) for v in g.filters.view(K, G, *size)[k, :, iy, ix]],
                    weight=[float(v) for v in wt[k]], uniform_image=list(self.to_image(uy, ux, size)),
                ))
        total = sum(sum(abs(v) for v in n.weight) for n in nodes) or 1.0
        for n in nodes:
            n.share = sum(abs(v) for v in n.weight) / total
        return DGMNQuery(
            feature_size=list(size), feature_pixel=[iy, ix], iteration=iteration % len(rec.iterations),
            iterations=len(rec.iterations), groups=G, alpha=rec.alpha, beta=rec.beta,
            dilations=[g.dilation for g in graphs], nodes=nodes,
        )

    def query_nonlocal(self, name: str, y: float, x: float) -> NonLocalQuery:
        """softmax_j(θ_pᵀ φ_j) for the pixel's feature position p alone: (h, w) map, plus its top nodes."""
        rec = self.records[name]
        iy, ix = self._feature_pixel(y, x, rec.feature_size)
        h, w = rec.feature_size
        q = rec.theta[:, iy, ix]  # (C',)
        att = torch.softmax(torch.einsum("c,chw->hw", q, rec.phi).flatten(), 0).view(h, w)
        return NonLocalQuery(feature_size=[h, w], feature_pixel=[iy, ix], attention=att.numpy(), top=self._peaks(att),
                             entropy=_entropy(att))

    def _peaks(self, att: torch.Tensor, n: int = 10) -> list[AttentionPeak]:
        """The n largest entries of an (h, w) attention map, largest first, at their feature and image positions."""
        h, w = att.shape
        top = torch.topk(att.flatten(), min(n, h * w))
        return [AttentionPeak(feature=[int(i) // w, int(i) % w], image=list(self.to_image(int(i) // w, int(i) % w, (h, w))),
                              weight=float(v)) for v, i in zip(top.values, top.indices)]

    def query_dcn(self, name: str, y: float, x: float) -> DCNQuery:
        """The K taps the deformable convolution sampled for the pixel's feature position p = (iy, ix)
        (:meth:`DeformableContext.pixel_points` of the recorded graph): tap k = ky·ks + kx has the uniform
        position u_k = (iy + (ky − c0)·d, ix + (kx − c0)·d), the learned offset Δ_k, the sampled position
        u_k + Δ_k (feature pixels, and image pixels by :mod:`dgmn.inspect.coordinates`), the mask m_k and the
        share |m_k| / Σ_k' |m_k'|. The layer's output there is ReLU(f_p + BN(Σ_k m_k·W_k·bilinear(f, u_k + Δ_k)))."""
        rec = self.records[name]
        size = rec.feature_size
        iy, ix = self._feature_pixel(y, x, size)
        pts = self.layers[name].pixel_points(rec.graph, iy, ix)
        nodes = []
        for k in range(pts.uniform.shape[0]):
            (uy, ux), (dy, dx), (py, px) = pts.uniform[k].tolist(), pts.offset[0, k].tolist(), pts.sampled[0, k].tolist()
            m = float(pts.mask[0, k])
            nodes.append(DeformableNode(
                rate=0, dilation=pts.dilation, node=k, uniform=[uy, ux], walk=[dy, dx], sampled=[py, px],
                sampled_image=list(self.to_image(py, px, size)), inside=bool(pts.inside[0, k]), affinity=None, filters=None,
                weight=[m], share=float(pts.share[0, k]), uniform_image=list(self.to_image(uy, ux, size)), offset=[dy, dx], mask=m,
            ))
        return DCNQuery(feature_size=list(size), feature_pixel=[iy, ix], dilations=[pts.dilation], nodes=nodes)

    def query_ccnet(self, name: str, y: float, x: float) -> CCNetQuery:
        """The criss-cross attention of the pixel's feature position p (:meth:`CrissCross2d.pixel_attention` of the
        recorded passes): the effective attention E[p, ·] = δ_p·A_R···A_1 over the (h, w) map (for p alone, R
        vector–attention products, never N×N), its top positions, its entropy, and pass 1's attention of p
        (its row and column, as an (h, w) map)."""
        rec = self.records[name]
        iy, ix = self._feature_pixel(y, x, rec.feature_size)
        h, w = rec.feature_size
        q = self.layers[name].pixel_attention(rec.attentions, iy, ix)
        att = q.effective[0].float()
        return CCNetQuery(feature_size=[h, w], feature_pixel=[iy, ix], attention=att.numpy(), top=self._peaks(att),
                          entropy=_entropy(att), recurrence=len(rec.attentions), cross=q.cross[0, 0].float().numpy())

    def query_dgmn2(self, name: str, y: float, x: float) -> DGMN2Query:
        """A DGMN2 block at image pixel (y, x), from the crop whose centre is nearest the pixel
        (:meth:`DGMN2Record.crop_for`): the pixel in crop coordinates is mapped to its nearest feature position
        (iy, ix) of that crop's map the way the model's head reads it (:mod:`dgmn.inspect.coordinates`; DGMN2:
        ``align_corners=True``, which on mmseg's 769-pixel crops puts position i of a stride-S map at pixel S·i, its
        receptive field's centre). Per head and node k = ky·3 + kx: the grid
        position (iy + ky − 1, ix + kx − 1), the recorded offset (the walk), the sampled position = grid + walk
        (feature pixels; image pixels = the crop's feature → image mapping plus the crop's corner), the content
        logit c_k, the position logit r_k, the logit c_k + r_k and the weight softmax_k(c + r) — what the block
        summed its values with. Per head, how much of the choice is position vs content (:class:`DGMN2Head`)."""
        rec = self.records[name]
        crop = rec.crop_for(y, x)
        y1, x1 = crop.box[:2]
        size, csize = crop.feature_size, crop.crop_size
        iy, ix = nearest_feature(y - y1, x - x1, size, csize, rec.align_corners)
        oy, ox = iy - crop.origin[0], ix - crop.origin[1]  # where (iy, ix) is kept
        if not (0 <= oy < crop.content.shape[-2] and 0 <= ox < crop.content.shape[-1]):
            raise RuntimeError(f"Inspector.query_dgmn2: feature position {(iy, ix)} of crop {crop.box} was not kept")

        def image(fy, fx):
            Y, X = feature_to_image(fy, fx, size, csize, rec.align_corners)
            return [Y + y1, X + x1]

        heads = []
        for h in range(crop.offsets.shape[0]):
            off = crop.offsets[h, :, :, oy, ox]  # (9, 2)
            c, r = crop.content[h, :, oy, ox], crop.position[h, :, oy, ox]
            logit = c + r
            w = torch.softmax(logit, 0)
            nodes = []
            for k in range(off.shape[0]):
                ky, kx = divmod(k, 3)
                gy, gx = iy + ky - 1, ix + kx - 1
                dy, dx = float(off[k, 0]), float(off[k, 1])
                py, px = gy + dy, gx + dx
                nodes.append(DGMN2Node(node=k, grid=[gy, gx], walk=[dy, dx], sampled=[py, px], sampled_image=image(py, px),
                                       inside=bool(-1 < py < size[0] and -1 < px < size[1]), weight=float(w[k]),
                                       content=float(c[k]), position=float(r[k]), logit=float(logit[k]), grid_image=image(gy, gx)))
            heads.append(DGMN2Head(head=h, nodes=nodes, **position_vs_content(c, r)))
        return DGMN2Query(stage=rec.stage, block=rec.block, feature_size=list(size), feature_pixel=[iy, ix],
                          crop=list(crop.box), heads=heads)

    def diagnostics(self, name: str, bins: int = 20) -> dict:
        """Offset diagnostics of a DGMN layer (last iteration) or a DCN layer (its offsets, as one rate): per rate,
        the walk-length histogram (feature pixels), the fraction of sampled nodes outside the map, the mean walk
        field (2, h, w) and warnings (NaN walks; collapsed walks: the K nodes of a rate within 0.5 px of each
        other at most pixels)."""
        rec = self.records[name]
        if isinstance(rec, DCNRecord):
            graphs = [rec.graph._replace(offset=rec.graph.offset[0])]
        elif isinstance(rec, DGMNRecord):
            graphs = rec.iterations[-1]
        else:
            raise ValueError(f"Inspector.diagnostics: layer {name!r} is not a DGMN or deformable-convolution layer (it has no walks)")
        h, w = rec.feature_size
        K = rec.kernel_size**2
        rates, warnings = [], []
        for s, g in enumerate(graphs):
            off = g.offset.view(K, 2, h, w)
            length = off.norm(dim=1)
            finite = torch.isfinite(length)
            if not finite.all():
                warnings.append(f"rate {s} (dilation {g.dilation}): {int((~finite).sum())} walks are NaN or infinite")
            pos = node_positions(g.offset[None], g.dilation, rec.kernel_size)[0]  # (K, h, w, 2)
            outside = outside_mask(pos, (h, w))
            collapsed = float(collapsed_mask(pos[None]).float().mean())
            if collapsed > 0.5 and K > 1:
                warnings.append(f"rate {s} (dilation {g.dilation}): walks collapsed at {collapsed:.0%} of pixels (all K nodes within 0.5 px)")
            vals = length[finite]
            top = float(vals.max()) if vals.numel() else 0.0
            hist = torch.histc(vals, bins=bins, min=0.0, max=max(top, 1e-6)) if vals.numel() else torch.zeros(bins)
            rates.append({
                "rate": s, "dilation": g.dilation, "walk_length_mean": float(vals.mean()) if vals.numel() else math.nan,
                "walk_length_max": top, "histogram": hist.tolist(), "histogram_edges": torch.linspace(0, max(top, 1e-6), bins + 1).tolist(),
                "outside_fraction": float(outside.float().mean()), "collapsed_fraction": collapsed,
                "mean_walk": off.mean(0).tolist(),
            })
        return {"layer": name, "feature_size": [h, w], "rates": rates, "warnings": warnings}


def _entropy(att: torch.Tensor) -> float:
    """H(att) / log(h·w) ∈ [0, 1] of an (h, w) attention map summing to 1 (0 for a single position)."""
    n = att.numel()
    return float(-(att * att.clamp_min(1e-12).log()).sum() / math.log(n)) if n > 1 else 0.0


def position_vs_content(content: torch.Tensor, position: torch.Tensor) -> dict:
    """How much of a head's choice among its nodes comes from the position term r vs the content term c (both
    (K,)). Softmax ignores what the K logits share, so the measure looks at how they vary across the nodes:
    ``position_share`` = Var(r) / (Var(c) + Var(r)) (0.5 when both are constant), ``content_share`` = 1 − it,
    ``content_spread`` / ``position_spread`` = std(c) / std(r), ``correlation`` = corr(c, r) (None when either is
    constant): > 0 the terms favour the same nodes, < 0 they work against each other (population statistics,
    float64)."""
    c, r = content.double(), position.double()
    vc, vr = float(c.var(unbiased=False)), float(r.var(unbiased=False))
    share = vr / (vc + vr) if vc + vr > 0 else 0.5
    corr = None
    if vc > 0 and vr > 0:
        corr = float(((c - c.mean()) * (r - r.mean())).mean() / math.sqrt(vc * vr))
    return {"position_share": share, "content_share": 1.0 - share, "content_spread": math.sqrt(vc),
            "position_spread": math.sqrt(vr), "correlation": corr}
