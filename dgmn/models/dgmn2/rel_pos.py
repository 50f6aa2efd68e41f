"""DGMN2's relative-position term of the attention logits, exactly as the original computes it.

Two learned tables per block, ``rel_height`` (h₀ + 8, d) and ``rel_width`` (w₀ + 8, d), made for a feature map of
h₀ × w₀ (d = head dim). For a feature map of H × W they are first resized along their length, linearly,
``align_corners=False`` (``F.interpolate(..., mode="bilinear")`` on the table as a 1-channel image whose
second axis keeps its size d):

    T_w = resize(rel_width, W + 8),  T_h = resize(rel_height, H + 8)

The width term of pixel (y, x), sample k ∈ 0..8 (the original's "relative to absolute" trick) is

    L_w[y, x, k] = q[y, x] · T_w[W − 1 − x + k]

— k is the sample's index, *not* its 3×3 tap offset, and the term does not depend on where the sample went.
The height term is computed the same way on the transposed map, as a (W, H) grid,

    G[x, y, k] = q[y, x] · T_h[H − 1 − y + k],

and that grid is then bilinearly *resized* (``align_corners=False``) from (W, H) to (H, W) and read as (y, x):

    L_h[:, :, k] = resize(G[:, :, k], (H, W)),   position logits = L_w + L_h   (not scaled by d^−½)

For a square map the resize is the identity, so L_h[y, x, k] = q[x, y] · T_h[H − 1 − x + k] there: the
original's height term reads the query of the transposed pixel. We reproduce it as it is: the published
weights were trained with it.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_SAMPLES = 9


class RelPosEmb(nn.Module):
    """The two tables (parameters ``rel_height`` (h₀ + 8, d) and ``rel_width`` (w₀ + 8, d)) and the logits above."""

    def __init__(self, table_size: tuple[int, int], head_dim: int, num_samples: int = NUM_SAMPLES):
        super().__init__()
        h0, w0 = table_size
        self.num_samples = num_samples
        scale = head_dim ** -0.5
        self.rel_height = nn.Parameter(torch.randn(h0 + num_samples - 1, head_dim) * scale)
        self.rel_width = nn.Parameter(torch.randn(w0 + num_samples - 1, head_dim) * scale)

    @staticmethod
    def resize_table(table: torch.Tensor, length: int) -> torch.Tensor:
        """(L, d) → (length, d): linear along L, ``align_corners=False`` (identity when L == length)."""
        return F.interpolate(table[None, None], size=(length, table.shape[1]), mode="bilinear", align_corners=False)[0, 0]

    def rows(self, table: torch.Tensor, size: int) -> torch.Tensor:
        """(size, d, 9): row ``size − 1 − i + k`` of the table resized to size + 8, for position i and sample k."""
        t = self.resize_table(table, size + self.num_samples - 1)
        i = torch.arange(size, device=t.device)[:, None]
        k = torch.arange(self.num_samples, device=t.device)[None, :]
        return t[size - 1 - i + k].transpose(1, 2)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """q: (B, d, H, W) queries (one head per batch entry) → position logits (B, 9, H, W)."""
        B, d, H, W = q.shape
        n = self.num_samples
        # width term, one matrix product per column x: (B·H, d) @ (d, 9) with T_w's rows for that x
        qx = q.permute(3, 0, 2, 1).reshape(W, B * H, d)
        width = torch.bmm(qx, self.rows(self.rel_width, W)).view(W, B, H, n).permute(1, 3, 2, 0)  # (B, 9, H, W)
        # height term on the (W, H) grid G[b, k, x, y] = q[b, :, y, x] · T_h[H − 1 − y + k], per row y
        qy = q.permute(2, 0, 3, 1).reshape(H, B * W, d)
        grid = torch.bmm(qy, self.rows(self.rel_height, H)).view(H, B, W, n).permute(1, 3, 2, 0)  # (B, 9, W, H)
        if H != W:  # resized from (W, H) to (H, W); for a square map that is the identity
            grid = F.interpolate(grid, size=(H, W), mode="bilinear", align_corners=False)
        return width + grid
