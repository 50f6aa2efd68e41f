"""Inspection: for any pixel, which nodes every DGMN layer sampled, where the walks went, and with what
affinities and weights; and the Non-local attention of the same pixel.

``Inspector(model)`` hooks every :class:`dgmn.DGMN` and :class:`dgmn.NonLocal2d` inside any ``nn.Module``
(also ResNets with layers inserted by :func:`dgmn.models.insert_dgmn`). ``run(image)`` runs the model once
and keeps, per layer, what a query needs at feature resolution (batch element 0): walks, affinities,
dynamic filters and node weights of every rate and iteration, and Non-local's θ and φ maps.
``query(y, x)`` then answers in O(S·K) per DGMN layer and O(N·C') per Non-local layer without re-running
the model, and never builds Non-local's N×N matrix.

Coordinates: image pixel (y, x) ↔ feature position ((y + ½)·h/H − ½, (x + ½)·w/W − ½), the convention of
bilinear upsampling with ``align_corners=False``; the queried feature pixel is the nearest one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..modules import DGMN, NonLocal2d, RateGraph
from ..modules.graph_stats import collapsed_mask, node_positions, outside_mask
from .coordinates import feature_to_image, image_to_feature, nearest_feature
from .records import AttentionPeak, DGMNQuery, GraphNode, NonLocalQuery


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


def _first(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t[0].detach().float().cpu()


def context_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The DGMN and NonLocal2d layers of ``model`` by module name (the model's own class name at the top)."""
    return {name or type(m).__name__: m for name, m in model.named_modules() if isinstance(m, (DGMN, NonLocal2d))}


class Inspector:
    """Hooks into ``model``'s DGMN and NonLocal2d layers; see the module docstring.

    Use as a context manager (or call :meth:`close`) to remove the hooks.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers: dict[str, nn.Module] = context_layers(model)
        self.records: dict[str, DGMNRecord | NonLocalRecord] = {}
        self.image_size: tuple[int, int] | None = None
        self._handles = []
        for name, m in self.layers.items():
            if isinstance(m, DGMN):
                self._handles.append(m.register_graph_hook(self._dgmn_hook(name)))
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

    def query(self, y: float, x: float, layers: list[str] | None = None, iteration: int = -1) -> dict[str, DGMNQuery | NonLocalQuery]:
        """Everything recorded about image pixel (y, x), per layer (typed records, :mod:`dgmn.inspect.records`). See :meth:`query_dgmn` and :meth:`query_nonlocal`."""
        if self.image_size is None:
            raise ValueError("Inspector.query: no image has been run yet; call run(image) first")
        H, W = self.image_size
        if not (0 <= y < H and 0 <= x < W):
            raise ValueError(f"Inspector.query: pixel (y={y}, x={x}) is outside the {H}×{W} image")
        out = {}
        for name in layers or list(self.records):
            rec = self.records[name]
            out[name] = self.query_dgmn(name, y, x, iteration) if isinstance(rec, DGMNRecord) else self.query_nonlocal(name, y, x)
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
        top = torch.topk(att.flatten(), min(10, h * w))
        return NonLocalQuery(
            feature_size=[h, w], feature_pixel=[iy, ix], attention=att.numpy(),
            top=[AttentionPeak(feature=[int(i) // w, int(i) % w], image=list(self.to_image(int(i) // w, int(i) % w, (h, w))),
                               weight=float(v)) for v, i in zip(top.values, top.indices)],
            entropy=float(-(att * att.clamp_min(1e-12).log()).sum() / math.log(h * w)) if h * w > 1 else 0.0,
        )

    def diagnostics(self, name: str, bins: int = 20) -> dict:
        """Offset diagnostics of a DGMN layer (last iteration): per rate, the walk-length histogram (feature
        pixels), the fraction of sampled nodes outside the map, the mean walk field (2, h, w) and warnings
        (NaN walks; collapsed walks: the K nodes of a rate within 0.5 px of each other at most pixels)."""
        rec = self.records[name]
        if not isinstance(rec, DGMNRecord):
            raise ValueError(f"Inspector.diagnostics: layer {name!r} is not a DGMN layer")
        h, w = rec.feature_size
        K = rec.kernel_size**2
        rates, warnings = [], []
        for s, g in enumerate(rec.iterations[-1]):
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
