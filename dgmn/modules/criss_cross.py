"""Recurrent criss-cross attention (CCNet, Huang et al. 2019), preceded by a 3×3 conv like :class:`dgmn.NonLocal2d`.

For f (B, C, H, W), C' = C / reduction, R = ``recurrence`` passes of one module (shared weights):

    h_0 = u = ReLU(BN(Conv3×3(f)))                                          (B, C, H, W)
    pass r = 1..R:  q = W_q·h, k = W_k·h (B, C', H, W),  v = W_v·h (B, C, H, W)   1×1 convs
        cross(p) = p's row and column, H + W − 1 positions (p itself once)
        A_r[p, j] = softmax_{j ∈ cross(p)}(q_pᵀ k_j)                        (row: (B, H, W, W), column: (B, H, W, H))
        y_p = Σ_{j ∈ cross(p)} A_r[p, j] v_j                                (B, C, H, W)
        h_r = h_{r−1} + γ·y                                                 γ a scalar, zero-initialised
    out = h_R

Only the criss-cross attention of every position exists, N×(H+W) numbers per pass, never N×N: the row part
is a batched (W × C')·(C' × W) product per image row, the column part the same per column. Two passes reach
every position: the effective attention of p over the whole map is E[p, i] = Σ_j A_R[p, j] · A_{R−1}[j, i] (for
R = 2; in general the R-fold composition), what :meth:`CrissCross2d.pixel_attention` computes for one pixel.

``layer.graph_edit`` (a :class:`dgmn.modules.graph_edit.GraphEdit`) applies in every pass, as for Non-local:
``attention_keep(layer, (H, W), i0, i1)`` is asked per chunk of query rows and read at the cross positions only
(``MaskAttention``: masked keys leave the softmax, the rest re-normalised; a query whose whole cross is masked
gets y = 0), and ``attention_output(layer, y)`` sees y before γ (``NoContext``: out = u).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple, Optional

import torch
import torch.nn as nn


class CrossAttention(NamedTuple):
    """One pass's attention of every position over its cross (rows of the softmax; row + column sums to 1)."""

    row: torch.Tensor  # (B, H, W, W): row[b, y, x, x'] = A[(y, x), (y, x')]
    column: torch.Tensor  # (B, H, W, H): column[b, y, x, y'] = A[(y, x), (y', x)]; 0 at y' = y (p is in the row part)


class CrissCrossQuery(NamedTuple):
    """The attention of one pixel p = (y, x) in every pass, and its effective attention over the whole map."""

    pixel: tuple[int, int]  # (y, x)
    row: torch.Tensor  # (B, R, W): pass r's attention of p to (y, x')
    column: torch.Tensor  # (B, R, H): pass r's attention of p to (y', x); 0 at y' = y
    effective: torch.Tensor  # (B, H, W): E[p, ·], the R passes composed (sums to 1; everywhere non-zero for R ≥ 2)

    @property
    def cross(self) -> torch.Tensor:
        """(B, R, H, W): each pass's attention of p as a map (zero off p's row and column; sums to 1)."""
        (y, x), (B, R, W), H = self.pixel, self.row.shape, self.column.shape[-1]
        out = self.row.new_zeros(B, R, H, W)
        out[:, :, :, x] = self.column
        out[:, :, y, :] = self.row
        return out


class CrissCross2d(nn.Module):
    """Recurrent criss-cross attention block with a preceding 3×3 conv; see the module docstring.

    Args:
        channels: C, input and output channels.
        reduction: C' = C / reduction query/key channels (8 in CCNet).
        recurrence: R, passes of the shared criss-cross module (2 in CCNet).
        chunk_size: at most this many queries (whole rows, at least one) per ``attention_keep`` call of a graph
            edit, which bounds its (queries × N) bool mask; the block itself needs no chunks.
    """

    def __init__(self, channels: int, reduction: int = 8, recurrence: int = 2, chunk_size: int = 4096):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"CrissCross2d: `channels` must be a positive int, got {channels!r}")
        if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1 or channels % reduction:
            raise ValueError(f"CrissCross2d: `reduction`={reduction!r} must be a positive int dividing channels={channels}")
        if isinstance(recurrence, bool) or not isinstance(recurrence, int) or recurrence < 1:
            raise ValueError(f"CrissCross2d: `recurrence` must be a positive int, got {recurrence!r}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"CrissCross2d: `chunk_size` must be a positive int, got {chunk_size!r}")
        self.channels, self.inner, self.recurrence, self.chunk_size = channels, channels // reduction, recurrence, int(chunk_size)
        self.pre = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.query_conv = nn.Conv2d(channels, self.inner, 1)
        self.key_conv = nn.Conv2d(channels, self.inner, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(()))
        self._attention_hooks: OrderedDict = OrderedDict()
        self.graph_edit = None  # a dgmn.modules.graph_edit.GraphEdit applied in every pass (None: unedited)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, inner={self.inner}, recurrence={self.recurrence}"

    def _check(self, f: torch.Tensor) -> None:
        if not isinstance(f, torch.Tensor) or f.dim() != 4 or f.shape[1] != self.channels:
            shape = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
            raise ValueError(f"CrissCross2d: input must have shape (B, {self.channels}, H, W), got {shape}")

    def _keep(self, size: tuple[int, int], device) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """The edit's kept keys at the cross positions: (H, W, W) for the row part, (H, W, H) for the column part."""
        edit = self.graph_edit
        if edit is None:
            return None
        H, W = size
        step = max(1, self.chunk_size // W)  # query rows per call
        rows, cols, any_mask = [], [], False
        for y0 in range(0, H, step):
            y1 = min(y0 + step, H)
            keep = edit.attention_keep(self, (H, W), y0 * W, y1 * W)  # (queries y0·W…y1·W − 1, N) or None
            if keep is None:
                keep = torch.ones((y1 - y0) * W, H * W, dtype=torch.bool)
            else:
                any_mask = True
            keep = keep.view(y1 - y0, W, H, W)  # [query y, query x, key y', key x']
            r = torch.arange(y1 - y0)
            rows.append(keep[r, :, r + y0, :])  # key y' = query y: (rows, W, W)
            cols.append(torch.diagonal(keep, dim1=1, dim2=3).permute(0, 2, 1).clone())  # key x' = query x: (rows, W, H), a copy
        return (torch.cat(rows).to(device), torch.cat(cols).to(device)) if any_mask else None

    def attention(self, h: torch.Tensor) -> CrossAttention:
        """A (row, column) of every position for the pass input h (B, C, H, W) — after the edit's key mask."""
        B, _, H, W = h.shape
        q, k = self.query_conv(h), self.key_conv(h)
        row = torch.matmul(q.permute(0, 2, 3, 1), k.permute(0, 2, 1, 3))  # (B, H, W, W): q_(y,x)ᵀ k_(y,x')
        col = torch.matmul(q.permute(0, 3, 2, 1), k.permute(0, 3, 1, 2)).permute(0, 2, 1, 3)  # (B, H, W, H): q_(y,x)ᵀ k_(y',x)
        self_in_column = torch.eye(H, dtype=torch.bool, device=h.device).view(H, 1, H)  # (y, ·, y' = y): counted in the row
        col = col.masked_fill(self_in_column, float("-inf"))
        keep = self._keep((H, W), h.device)
        if keep is not None:
            row = row.masked_fill(~keep[0], float("-inf"))
            col = col.masked_fill(~keep[1], float("-inf"))
        a = torch.softmax(torch.cat([row, col], dim=-1), dim=-1)
        if keep is not None:  # a query whose whole cross is masked: no message (softmax of only −inf is NaN)
            a = a.masked_fill(~(keep[0].any(-1) | keep[1].any(-1))[..., None], 0.0)
        return CrossAttention(a[..., :W], a[..., W:])

    def aggregate(self, h: torch.Tensor, att: CrossAttention) -> torch.Tensor:
        """y_p = Σ_{j ∈ cross(p)} A[p, j] (W_v·h)_j: (B, C, H, W)."""
        v = self.value_conv(h)
        y_row = torch.matmul(att.row, v.permute(0, 2, 3, 1))  # (B, H, W, C)
        y_col = torch.matmul(att.column.permute(0, 2, 1, 3), v.permute(0, 3, 2, 1))  # (B, W, H, C)
        return (y_row + y_col.transpose(1, 2)).permute(0, 3, 1, 2)

    def forward_with_attention(self, f: torch.Tensor) -> tuple[torch.Tensor, list[CrossAttention]]:
        """The block's output (B, C, H, W) and every pass's :class:`CrossAttention`."""
        self._check(f)
        h = self.pre(f)
        atts = []
        for _ in range(self.recurrence):
            att = self.attention(h)
            y = self.aggregate(h, att)
            if self.graph_edit is not None:
                y = self.graph_edit.attention_output(self, y)
            h = h + self.gamma * y
            atts.append(att)
        return h, atts

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        out, atts = self.forward_with_attention(f)
        for hook in list(self._attention_hooks.values()):
            hook(self, f, atts)
        return out

    def register_attention_hook(self, hook) -> "torch.utils.hooks.RemovableHandle":
        """``hook(layer, f, attentions)`` is called after every forward with the input f and the list of R
        :class:`CrossAttention` (for inspection). Returns a handle with ``.remove()``."""
        handle = torch.utils.hooks.RemovableHandle(self._attention_hooks)
        self._attention_hooks[handle.id] = hook
        return handle

    @staticmethod
    def spread(e: torch.Tensor, att: CrossAttention) -> torch.Tensor:
        """e′[i] = Σ_p e[p] · A[p, i]: weights e (B, H, W) on the queries carried to the keys through one pass."""
        return torch.einsum("byx,byxw->byw", e, att.row) + torch.einsum("byx,byxh->bhx", e, att.column)

    def pixel_attention(self, attentions: list[CrossAttention], y: int, x: int) -> CrissCrossQuery:
        """Pixel p = (y, x)'s attention in every pass (row and column) and its effective attention over the map,
        E_R = δ_p·A_R·A_{R−1}···A_1 (computed for p alone: R vector–attention products, never N×N), from the
        passes' attentions of one forward (:meth:`forward_with_attention` or a hook)."""
        B, H, W, _ = attentions[0].row.shape
        if isinstance(y, bool) or isinstance(x, bool) or y != int(y) or x != int(x) or not (0 <= int(y) < H and 0 <= int(x) < W):
            raise ValueError(f"CrissCross2d.pixel_attention: pixel ({y}, {x}) must be integer and inside the {H}×{W} feature map")
        y, x = int(y), int(x)
        row = torch.stack([a.row[:, y, x] for a in attentions], dim=1)
        column = torch.stack([a.column[:, y, x] for a in attentions], dim=1)
        e = attentions[0].row.new_zeros(B, H, W)
        e[:, y, x] = 1.0
        for att in reversed(attentions):
            e = self.spread(e, att)
        return CrissCrossQuery((y, x), row, column, e)

    @torch.no_grad()
    def query(self, f: torch.Tensor, y: int, x: int) -> CrissCrossQuery:
        """:meth:`pixel_attention` of pixel (y, x) for features f (B, C, H, W), running the block."""
        return self.pixel_attention(self.forward_with_attention(f)[1], y, x)
