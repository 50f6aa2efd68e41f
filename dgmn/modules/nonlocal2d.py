"""Non-local block (Wang et al. 2018, embedded Gaussian), preceded by a 3×3 conv as in the paper's baseline.

For f (B, C, H, W), N = H·W, C' = C / reduction:

    u = ReLU(BN(Conv3×3(f)))                       (B, C, H, W)
    θ = W_θ·u, φ = W_φ·u, g = W_g·u                (B, C', N) each, 1×1 convs
    y_i = Σ_j softmax_j(θ_iᵀ φ_j) g_j              (B, C', N)
    out = u + BN(W_z·y)                            (B, C, H, W), BN's γ zero-initialised (identity at start)

The N×N attention is never materialised: queries are processed in chunks of ``chunk_size`` with
``scaled_dot_product_attention`` on contiguous q, k, v (scale 1, the embedded-Gaussian softmax), so memory
stays bounded (1024×2048 images, 128×256 features, run in well under 4 GB).
:meth:`attention_row` returns the attention of one pixel alone, for inspection.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class NonLocal2d(nn.Module):
    """Embedded-Gaussian non-local block with a preceding 3×3 conv (+2.89M parameters at C=512)."""

    def __init__(self, channels: int, reduction: int = 2, chunk_size: int = 4096):
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"NonLocal2d: `channels` must be a positive int, got {channels!r}")
        if not isinstance(reduction, int) or reduction < 1 or channels % reduction != 0:
            raise ValueError(f"NonLocal2d: `reduction`={reduction!r} must be a positive int dividing channels={channels}")
        self.channels, self.inner, self.chunk_size = channels, channels // reduction, int(chunk_size)
        self.pre = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.theta = nn.Conv2d(channels, self.inner, 1)
        self.phi = nn.Conv2d(channels, self.inner, 1)
        self.g = nn.Conv2d(channels, self.inner, 1)
        self.out = nn.Conv2d(self.inner, channels, 1, bias=False)
        self.out_bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.out_bn.weight)
        self.graph_edit = None  # a dgmn.modules.graph_edit.GraphEdit applied where the block computes (None: unedited)

    def embed(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """u (B, C, H, W) and contiguous q, k, v of shape (B, 1, N, C')."""
        if f.dim() != 4 or f.shape[1] != self.channels:
            raise ValueError(f"NonLocal2d: input must have shape (B, {self.channels}, H, W), got {tuple(f.shape)}")
        u = self.pre(f)

        def tokens(conv):
            return conv(u).flatten(2).transpose(1, 2).contiguous().unsqueeze(1)

        return u, tokens(self.theta), tokens(self.phi), tokens(self.g)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        u, q, k, v = self.embed(f)
        B, _, H, W = u.shape
        N, edit = H * W, self.graph_edit
        ys = []
        for i in range(0, N, self.chunk_size):
            keep = None if edit is None else edit.attention_keep(self, (H, W), i, min(i + self.chunk_size, N))
            ys.append(F.scaled_dot_product_attention(q[:, :, i : i + self.chunk_size], k, v, scale=1.0,
                                                     attn_mask=None if keep is None else keep.to(q.device)))
        y = torch.cat(ys, dim=2).squeeze(1).transpose(1, 2).reshape(B, self.inner, H, W)
        if edit is not None:
            y = edit.attention_output(self, y)
        return u + self.out_bn(self.out(y))

    @torch.no_grad()
    def attention_row(self, f: torch.Tensor, y: int, x: int) -> torch.Tensor:
        """softmax_j(θ_pᵀ φ_j) for the single pixel p = (y, x) of f: (B, H, W), summing to 1 per image."""
        u, q, k, _ = self.embed(f)
        B, _, H, W = u.shape
        if not (0 <= y < H and 0 <= x < W):
            raise ValueError(f"NonLocal2d.attention_row: pixel ({y}, {x}) is outside the {H}×{W} feature map")
        logits = (k[:, 0] @ q[:, 0, y * W + x].unsqueeze(-1)).squeeze(-1)  # (B, N)
        return torch.softmax(logits, dim=-1).view(B, H, W)
