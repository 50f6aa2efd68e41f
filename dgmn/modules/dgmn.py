"""The DGMN layer: dynamic graph message passing (Zhang, Xu, Arnab, Torr; Sec. 3, Eq. 1–7).

For a feature map f (B, C, H, W), with S rates d_1..d_S, K = kernel_size² nodes per rate and G groups,
one iteration computes, for every rate s:

1. walks (Eq. 4, random walks only): Δ_s = Conv3×3_{dil d_s}(h) ∈ (B, 2K, H, W), zero-initialised so a
   fresh layer samples exactly the dilated uniform grid; without random walks Δ_s = 0;
2. filters and affinities, jointly, conditioned on the sampled nodes (Eq. 6): a 3×3 conv at dilation d_s
   whose taps read the walked nodes (:func:`dgmn.ops.deform_conv2d`) predicts K·G filter maps w_s
   (dynamic weights, layout [k][g]) followed by K affinity logits; A_s = softmax over the K nodes (Eq. 7);
3. the message (Eq. 5): m_s = dynamic_aggregate(W_q,s·h, Δ_s, β_s·A_s·w_s, (d_s,)) ∈ (B, C, H, W), where
   W_q,s is a 1×1 conv (C→C) and β_s a learned scalar. The node weight β_s·A_s[k]·w_s[k, g] is what the
   op sums with; without dynamic weights it is β_s·A_s[k] (G = 1), without dynamic affinity β_s·w_s[k, g],
   with neither β_s/K;

then the update (Eq. 2): h ← ReLU(f + α·W_out(Σ_s m_s)) with a shared 1×1 output conv W_out and a learned
scalar α, repeated for ``iterations`` steps (weights shared across steps).

``layer.graph_edit`` (a :class:`dgmn.modules.graph_edit.GraphEdit`, default None) transforms the walks, the
affinity logits, the node weights or the message sum where they are computed (what-if inspection).

Table 1a/5/6 variants by configuration: ``DGMN(C, (1,), groups=None, random_walk=False)`` is "DA";
``DGMN(C, (1,), groups=4, random_walk=False)`` is "DA+DW"; more rates make "+US"; ``random_walk=True``
with ρ={1,6,12,24,36}, G=4 is the full model. Parameters at C=512: 0.567M, 0.733M, 3.03M.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops import all_finite, deform_conv2d, dilated_conv2d, dynamic_aggregate


def grid_conv(conv: nn.Conv2d, h: torch.Tensor) -> torch.Tensor:
    """``conv(h)`` for a dilated conv that reads the uniform grid; on the CPU as a 1×1 conv + shifted sums,
    which is faster than oneDNN's direct dilated convolution for these few output channels."""
    if h.device.type == "cpu" and not torch.compiler.is_compiling():  # compiled: one extern conv, not 9 slices
        return dilated_conv2d(h, conv.weight, conv.bias, conv.dilation[0])
    return conv(h)


class RateGraph(NamedTuple):
    """The dynamic graph of one rate for every pixel (feature resolution). K = kernel_size²."""

    dilation: int
    offset: torch.Tensor  # (B, 2K, H, W) walk of each node in feature pixels, layout [k][dy, dx]; zeros without walks
    affinity: Optional[torch.Tensor]  # (B, K, H, W) softmax over K, or None without dynamic affinity
    filters: Optional[torch.Tensor]  # (B, K·G, H, W) dynamic weights, layout [k][g], or None without them
    weight: torch.Tensor  # (B, K·G, H, W) what the op sums with: β·A·w (G = 1 without dynamic weights)


class DGMN(nn.Module):
    """Dynamic graph message passing layer; see the module docstring for the math and the variants.

    Args:
        channels: C, the feature channels (input and output).
        dilations: the uniform sampling rates ρ (positive ints), one message per rate.
        groups: G, channel groups of the dynamic weights; 0 or None disables dynamic weights.
        dynamic_affinity: predict node affinities (softmax over the K nodes of a rate).
        dynamic_weights: predict per-node, per-group filter weights (needs groups ≥ 1).
        random_walk: predict walks from the uniformly sampled nodes (learned random-walk sampling).
        kernel_size: nodes per rate along each axis (K = kernel_size², odd).
        iterations: T, message-passing steps with shared weights.
    """

    def __init__(
        self,
        channels: int,
        dilations: Sequence[int] = (1, 6, 12, 24, 36),
        groups: Optional[int] = 4,
        dynamic_affinity: bool = True,
        dynamic_weights: bool = True,
        random_walk: bool = True,
        kernel_size: int = 3,
        iterations: int = 1,
    ):
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"DGMN: `channels` must be a positive int, got {channels!r}")
        dilations = tuple(dilations)
        if not dilations or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations):
            raise ValueError(f"DGMN: `dilations` must be a non-empty sequence of positive ints, got {dilations!r}")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"DGMN: `kernel_size` must be a positive odd int, got {kernel_size!r}")
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"DGMN: `iterations` must be a positive int, got {iterations!r}")
        groups = int(groups or 0)
        if groups < 0:
            raise ValueError(f"DGMN: `groups` must be ≥ 0 (0 or None: no dynamic weights), got {groups}")
        self.dynamic_weights = bool(dynamic_weights) and groups > 0
        if self.dynamic_weights and channels % groups != 0:
            raise ValueError(f"DGMN: `groups`={groups} must divide `channels`={channels}")
        self.channels = channels
        self.dilations = dilations
        self.groups = groups if self.dynamic_weights else 1
        self.dynamic_affinity = bool(dynamic_affinity)
        self.random_walk = bool(random_walk)
        self.kernel_size = kernel_size
        self.iterations = iterations
        K, S = kernel_size * kernel_size, len(dilations)
        pad = (kernel_size - 1) // 2

        self.message_transforms = nn.ModuleList(nn.Conv2d(channels, channels, 1, bias=False) for _ in dilations)
        n_pred = (K * self.groups if self.dynamic_weights else 0) + (K if self.dynamic_affinity else 0)
        self.filter_affinity_convs = nn.ModuleList(
            nn.Conv2d(channels, n_pred, kernel_size, padding=pad * d, dilation=d) for d in dilations
        ) if n_pred else None
        self.walk_convs = nn.ModuleList(
            nn.Conv2d(channels, 2 * K, kernel_size, padding=pad * d, dilation=d) for d in dilations
        ) if self.random_walk else None
        self.output_conv = nn.Conv2d(channels, channels, 1)
        self.beta = nn.Parameter(torch.ones(S))
        self.alpha = nn.Parameter(torch.ones(()))
        self._graph_hooks: OrderedDict = OrderedDict()  # weak-referenceable, as RemovableHandle needs
        self.graph_edit = None  # a dgmn.modules.graph_edit.GraphEdit applied where the layer computes (None: unedited)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.walk_convs is not None:
            for conv in self.walk_convs:  # walks start at zero: the uniform dilated grid
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        if self.filter_affinity_convs is not None:
            for conv in self.filter_affinity_convs:  # small start: uniform affinities, small filters
                nn.init.normal_(conv.weight, std=1e-2 / conv.weight[0].numel() ** 0.5)
                nn.init.zeros_(conv.bias)
                if self.dynamic_weights:
                    K = self.kernel_size**2
                    with torch.no_grad():
                        # filters start at 1 (affinity-weighted mean), or 1/K without affinities (plain mean)
                        conv.bias[: K * self.groups].fill_(1.0 if self.dynamic_affinity else 1.0 / K)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, dilations={self.dilations}, groups={self.groups if self.dynamic_weights else 0}, "
            f"dynamic_affinity={self.dynamic_affinity}, dynamic_weights={self.dynamic_weights}, "
            f"random_walk={self.random_walk}, kernel_size={self.kernel_size}, iterations={self.iterations}"
        )

    def sample_graph(self, h: torch.Tensor) -> list[RateGraph]:
        """Walks, affinities, filters and node weights of every rate for features h (B, C, H, W)."""
        B, _, H, W = h.shape
        K, G = self.kernel_size**2, self.groups
        edit = self.graph_edit
        graphs = []
        for s, d in enumerate(self.dilations):
            if self.walk_convs is not None:
                offset = grid_conv(self.walk_convs[s], h)
            else:
                offset = h.new_zeros(B, 2 * K, H, W)
            if edit is not None:
                offset = edit.walks(self, s, offset)
            affinity = filters = None
            if self.filter_affinity_convs is not None:
                conv = self.filter_affinity_convs[s]
                if self.walk_convs is not None:
                    pred = deform_conv2d(h, offset, conv.weight, conv.bias, d)
                else:  # the walked nodes are the grid: a plain dilated conv is the same thing, faster
                    pred = grid_conv(conv, h)
                n_filters = K * G if self.dynamic_weights else 0
                if self.dynamic_weights:
                    filters = pred[:, :n_filters]
                if self.dynamic_affinity:
                    logits = pred[:, n_filters:] if edit is None else edit.affinity_logits(self, s, pred[:, n_filters:])
                    affinity = torch.softmax(logits, dim=1)
            if affinity is not None and filters is not None:
                a = affinity  # softmax gives NCHW; a channels-last product with channels-last filters is ~15× faster
                if filters.stride(1) == 1 and K > 1:
                    a = affinity.contiguous(memory_format=torch.channels_last)
                weight = (a.unsqueeze(2) * filters.view(B, K, G, H, W)).reshape(B, K * G, H, W)
            elif affinity is not None:
                weight = affinity
            elif filters is not None:
                weight = filters
            else:
                weight = h.new_full((B, K, H, W), 1.0 / K)
            weight = weight * self.beta[s]
            if edit is not None:
                weight = edit.node_weights(self, s, weight)
            graphs.append(RateGraph(d, offset, affinity, filters, weight))
        return graphs

    def message(self, h: torch.Tensor, graphs: list[RateGraph]) -> torch.Tensor:
        """W_out(Σ_s dynamic_aggregate(W_q,s·h, Δ_s, β_s·A_s·w_s, (d_s,))) — (B, C, H, W)."""
        total = None
        for s, g in enumerate(graphs):
            m = dynamic_aggregate(self.message_transforms[s](h), g.offset, g.weight, (g.dilation,), self.kernel_size)
            # one (B, C, H, W) buffer for all rates: the first rate's output (a fresh tensor), later rates add into it
            total = m if s == 0 else total.add_(m)
        if self.graph_edit is not None:
            total = self.graph_edit.message(self, total)
        return self.output_conv(total)

    def forward_with_graphs(self, f: torch.Tensor) -> tuple[torch.Tensor, list[list[RateGraph]]]:
        """The layer's output and, for every iteration, the graph of every rate."""
        if f.dim() != 4 or f.shape[1] != self.channels:
            raise ValueError(
                f"DGMN: input must have shape (B, {self.channels}, H, W), got {tuple(f.shape)}"
            )
        # a branch on the data: eager only (torch.compile and torch.export cannot trace it; the op still refuses
        # non-finite walks at run time, compiled or not)
        tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
        if f.device.type != "meta" and not tracing and not all_finite(f):
            raise ValueError("DGMN: input contains NaN or infinite values; check the layers before it")
        if f.device.type == "cpu":  # the fused CPU op and the convs both prefer channels-last
            f = f.contiguous(memory_format=torch.channels_last)
        h, history = f, []
        for _ in range(self.iterations):
            graphs = self.sample_graph(h)
            h = F.relu(torch.addcmul(f, self.alpha, self.message(h, graphs)))  # f + α·message in one pass
            history.append(graphs)
        return h, history

    def register_graph_hook(self, hook) -> "torch.utils.hooks.RemovableHandle":
        """``hook(layer, f, graphs)`` is called after every forward with the layer's input f and, per
        iteration, the list of :class:`RateGraph` (for inspection). Returns a handle with ``.remove()``."""
        handle = torch.utils.hooks.RemovableHandle(self._graph_hooks)
        self._graph_hooks[handle.id] = hook
        return handle

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        h, history = self.forward_with_graphs(f)
        for hook in list(self._graph_hooks.values()):
            hook(self, f, history)
        return h
