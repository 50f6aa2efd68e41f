"""Modulated deformable convolution (DCNv2, Zhu et al. 2019) as a context module of the Dilated FCN.

For f (B, C, H, W), K = kernel_size² taps, c0 = (kernel_size − 1)/2, tap k = ky·kernel_size + kx, dilation d:

    [Δ, a] = Conv3×3_{dil d}(f)                      Δ (B, 2K, H, W) offsets [k][dy, dx], a (B, K, H, W)
    m      = sigmoid(a)                              (B, K, H, W) modulation masks in (0, 1)
    p_k    = (y + (ky − c0)·d + Δ_k,y , x + (kx − c0)·d + Δ_k,x)       tap k's sampled position (feature pixels)
    D[o, y, x] = Σ_k m_k(y, x) · Σ_c W[o, c, ky, kx] · bilinear(f[c], p_k)                  (B, C, H, W)
    h      = ReLU(f + BN(D))                         (B, C, H, W)

The offset/mask conv is zero-initialised (as in DCNv2): a fresh layer samples the dilated grid with every
mask at sigmoid(0) = 0.5. bilinear is :func:`dgmn.ops.dynamic_aggregate`'s (zero outside the map, corner by
corner).

It transforms before it samples, exactly (bilinear sampling is linear in the features): z_k = W_k·f is a
1×1 conv (C → O, the same C·K·O MACs as the 3×3 conv), and each tap is one call of the project's op,
``dynamic_aggregate(z_k, p_k − (y, x), m_k, (1,), kernel_size=1)`` — one node per pixel at the tap's
position, weighted by its mask — summed over k. Only O channels are sampled per tap and pixel, and no
(B, C·K, H, W) im2col buffer exists.

``layer.graph_edit`` (a :class:`dgmn.modules.graph_edit.GraphEdit`) sees the sampling where it is computed, as
DGMN's single rate s = 0: ``walks(layer, 0, Δ)`` (``NoWalks``: no offsets, the taps on the dilated grid),
``node_weights(layer, 0, m)`` (``DropNode(rate=0, node=k)``: tap k's mask is 0, the others unchanged;
``DropRate(rate=0)``: every mask 0) and ``message(layer, D)`` before the BN (``NoContext``).

Inspection: :meth:`DeformableContext.forward_with_graph` returns the :class:`DeformableGraph` (offsets and
masks of every pixel, after edits), :meth:`DeformableContext.register_graph_hook` passes it to a hook after
every forward, and :meth:`DeformableContext.pixel_points` turns it into one pixel's K
:class:`DeformablePoints` (uniform position, offset, sampled position, mask, share).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops import dynamic_aggregate, node_grid


class DeformableGraph(NamedTuple):
    """The sampling of every pixel (feature resolution), as the layer used it (after any graph edit)."""

    dilation: int
    offset: torch.Tensor  # (B, 2K, H, W) learned offset of each tap in feature pixels, layout [k][dy, dx]
    mask: torch.Tensor  # (B, K, H, W) modulation mask m_k (sigmoid, in (0, 1); 0 where an edit dropped the tap)


class DeformablePoints(NamedTuple):
    """The K sampled points of one pixel p = (y, x). Positions are [y, x] in feature pixels."""

    pixel: tuple[int, int]  # (y, x)
    dilation: int
    uniform: torch.Tensor  # (K, 2) the dilated grid: (y + (ky − c0)·d, x + (kx − c0)·d)
    offset: torch.Tensor  # (B, K, 2) the learned offset Δ_k [dy, dx]
    sampled: torch.Tensor  # (B, K, 2) uniform + offset: where tap k read the features
    mask: torch.Tensor  # (B, K) the modulation mask m_k
    share: torch.Tensor  # (B, K) |m_k| / Σ_k' |m_k'| (0 when every mask is 0)
    inside: torch.Tensor  # (B, K) bool: the sampled position lies in (−1, H) × (−1, W) (else it reads zeros)


class DeformableContext(nn.Module):
    """h = ReLU(f + BN(DCNv2(f))) with a modulated deformable kernel_size×kernel_size conv C → C at ``dilation``.

    Args:
        channels: C, input and output channels.
        dilation: d, the spacing of the uniform grid the offsets start from (positive int).
        kernel_size: taps per axis (odd), K = kernel_size².

    Parameters at C = 512, d = 1: 2.48M (conv 2.36M, offset/mask conv 0.12M, BN).
    """

    def __init__(self, channels: int, dilation: int = 1, kernel_size: int = 3):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"DeformableContext: `channels` must be a positive int, got {channels!r}")
        if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
            raise ValueError(f"DeformableContext: `dilation` must be a positive int, got {dilation!r}")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"DeformableContext: `kernel_size` must be a positive odd int, got {kernel_size!r}")
        self.channels, self.dilation, self.kernel_size = channels, dilation, kernel_size
        K, pad = kernel_size * kernel_size, (kernel_size - 1) // 2 * dilation
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=pad, dilation=dilation, bias=False)  # W (its weight only)
        self.offset_mask = nn.Conv2d(channels, 3 * K, kernel_size, padding=pad, dilation=dilation)  # [Δ (2K), a (K)]
        self.bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)
        self._graph_hooks: OrderedDict = OrderedDict()
        self.graph_edit = None  # a dgmn.modules.graph_edit.GraphEdit applied where the layer samples (None: unedited)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, dilation={self.dilation}, kernel_size={self.kernel_size}"

    def _check(self, f: torch.Tensor) -> None:
        if not isinstance(f, torch.Tensor) or f.dim() != 4 or f.shape[1] != self.channels:
            shape = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
            raise ValueError(f"DeformableContext: input must have shape (B, {self.channels}, H, W), got {shape}")

    def _grid(self, like: torch.Tensor) -> torch.Tensor:
        """(K, 2) tap positions relative to the pixel, [(ky − c0)·d, (kx − c0)·d] (:func:`dgmn.ops.node_grid`)."""
        K = self.kernel_size**2
        return node_grid(like.new_zeros(1, 2 * K, 1, 1), (self.dilation,), self.kernel_size)[0, :, 0, 0]

    def sample_graph(self, f: torch.Tensor) -> DeformableGraph:
        """Offsets Δ (B, 2K, H, W) and masks m = sigmoid(a) (B, K, H, W) for features f, after ``graph_edit``."""
        K = self.kernel_size**2
        offset, logits = self.offset_mask(f).split([2 * K, K], dim=1)
        mask = torch.sigmoid(logits)
        edit = self.graph_edit
        if edit is not None:
            offset = edit.walks(self, 0, offset)
            mask = edit.node_weights(self, 0, mask)
        return DeformableGraph(self.dilation, offset, mask)

    def deform(self, f: torch.Tensor, graph: DeformableGraph) -> torch.Tensor:
        """D = Σ_k m_k · bilinear(W_k·f, p_k) (B, C, H, W), then ``graph_edit.message`` (see the module docstring)."""
        K = self.kernel_size**2
        rel = self._grid(graph.offset).reshape(1, 2 * K, 1, 1)  # the taps' grid displacements, layout [k][dy, dx]
        where = graph.offset + rel  # p_k − (y, x): the op's offset for one node (kernel_size 1) at the tap's position
        O, C = self.conv.weight.shape[:2]
        # one split per tensor, not K slices: autograd then joins the K gradients once instead of K zero-padded copies
        taps = self.conv.weight.permute(2, 3, 0, 1).reshape(K, O, C, 1, 1).unbind(0)  # W_k (O, C, 1, 1)
        total = None
        for w_k, off_k, m_k in zip(taps, where.split(2, dim=1), graph.mask.split(1, dim=1)):
            m = dynamic_aggregate(F.conv2d(f, w_k), off_k, m_k, (1,), 1)  # m_k · bilinear(W_k·f, p_k): (B, O, H, W)
            total = m if total is None else total + m  # out of place: an op's output may be a view it owns
        if self.graph_edit is not None:
            total = self.graph_edit.message(self, total)
        return total

    def forward_with_graph(self, f: torch.Tensor) -> tuple[torch.Tensor, DeformableGraph]:
        """The layer's output h (B, C, H, W) and the graph it sampled."""
        self._check(f)
        if f.device.type == "cpu":  # the op and the 1×1 convs prefer channels-last
            f = f.contiguous(memory_format=torch.channels_last)
        graph = self.sample_graph(f)
        return F.relu(f + self.bn(self.deform(f, graph))), graph

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        h, graph = self.forward_with_graph(f)
        for hook in list(self._graph_hooks.values()):
            hook(self, f, graph)
        return h

    def register_graph_hook(self, hook) -> "torch.utils.hooks.RemovableHandle":
        """``hook(layer, f, graph)`` is called after every forward with the input f and the
        :class:`DeformableGraph` (for inspection). Returns a handle with ``.remove()``."""
        handle = torch.utils.hooks.RemovableHandle(self._graph_hooks)
        self._graph_hooks[handle.id] = hook
        return handle

    def pixel_points(self, graph: DeformableGraph, y: int, x: int) -> DeformablePoints:
        """The K sampled points of pixel (y, x) read from ``graph`` (one forward's :class:`DeformableGraph`, e.g. as
        recorded by :meth:`register_graph_hook`): uniform position, offset, sampled position, mask and share.
        The layer's output there is h[:, y, x] = ReLU(f[:, y, x] + BN(Σ_k mask_k · W_k · bilinear(f, sampled_k)))."""
        B, _, H, W = graph.offset.shape
        if isinstance(y, bool) or isinstance(x, bool) or not (0 <= int(y) < H and 0 <= int(x) < W) or y != int(y) or x != int(x):
            raise ValueError(f"DeformableContext.pixel_points: pixel ({y}, {x}) must be integer and inside the {H}×{W} feature map")
        y, x = int(y), int(x)
        K = self.kernel_size**2
        here = graph.offset.new_tensor([y, x])
        offset = graph.offset[:, :, y, x].reshape(B, K, 2)
        uniform = self._grid(graph.offset) + here
        sampled = node_grid(graph.offset[:, :, y: y + 1, x: x + 1], (graph.dilation,), self.kernel_size)[:, :, 0, 0] + here
        mask = graph.mask[:, :, y, x]
        share = mask.abs() / mask.abs().sum(1, keepdim=True).clamp_min(torch.finfo(mask.dtype).tiny)
        inside = (sampled[..., 0] > -1) & (sampled[..., 0] < H) & (sampled[..., 1] > -1) & (sampled[..., 1] < W)
        return DeformablePoints((y, x), graph.dilation, uniform, offset, sampled, mask, share, inside)

    @torch.no_grad()
    def query(self, f: torch.Tensor, y: int, x: int) -> DeformablePoints:
        """:meth:`pixel_points` of pixel (y, x) for features f (B, C, H, W), sampling the graph afresh."""
        self._check(f)
        return self.pixel_points(self.sample_graph(f), y, x)

    def sampling_macs(self, height: int, width: int, batch: int = 1) -> int:
        """MACs of the op calls (not in :func:`dgmn.count_macs`, as for DGMN): per output channel, tap and pixel,
        4 bilinear corners + 1 mask weight, B·C·K·H·W·5."""
        return batch * self.channels * self.kernel_size**2 * height * width * 5
