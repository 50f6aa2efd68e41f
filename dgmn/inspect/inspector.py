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

Coordinates: image pixel (y, x) ↔ feature position ((y + ½)·h/H − ½, (x + ½)·w/W − ½), the convention of
bilinear upsampling with ``align_corners=False``; the queried feature pixel is the nearest one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..modules import DGMN, CrissCross2d, CrossAttention, DeformableContext, DeformableGraph, NonLocal2d, RateGraph
from ..modules.graph_stats import collapsed_mask, node_positions, outside_mask
from .coordinates import feature_to_image, image_to_feature, nearest_feature
from .records import AttentionPeak, CCNetQuery, DCNQuery, DeformableNode, DGMNQuery, GraphNode, NonLocalQuery

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
    """Hooks into ``model``'s DGMN, NonLocal2d, DeformableContext and CrissCross2d layers; see the module docstring.

    Use as a context manager (or call :meth:`close`) to remove the hooks.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers: dict[str, nn.Module] = context_layers(model)
        self.records: dict[str, DGMNRecord | NonLocalRecord | DCNRecord | CCNetRecord] = {}
        self.image_size: tuple[int, int] | None = None
        self._handles = []
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
    def run(self, image: torch.Tensor) -> torch.Tensor:
        """Run the model once on ``image`` (3, H, W) or (1, 3, H, W); returns its output and keeps the records."""
        x = image.unsqueeze(0) if image.dim() == 3 else image
        if x.dim() != 4 or x.shape[0] != 1:
            raise ValueError(f"Inspector.run: expected one image, (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
        self.records = {}
        self.model.eval()
        out = self.model(x)
        self.image_size = tuple(x.shape[-2:])
        return out

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
