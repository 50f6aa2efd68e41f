"""One DGMN2 transformer block (pre-norm):  x ← x + Attn(LN₁(x));  x ← x + MLP(LN₂(x)),  tokens (B, H·W, C).

MLP(x) = fc2(GELU(fc1(x))) with a hidden width of int(C · mlp_ratio). Drop-path and dropout are identities at
inference and are left out. Parameter names are the original's (``norm1``, ``attn``, ``norm2``, ``mlp.fc1/fc2``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .attention import DGMN2Attention


class Mlp(nn.Module):
    """fc2(GELU(fc1(x))): (…, C) → (…, hidden) → (…, C)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DGMN2Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, table_size: tuple[int, int], qkv_bias: bool = True,
                 ln_eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=ln_eps)
        self.attn = DGMN2Attention(dim, num_heads, table_size, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=ln_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """x: (B, H·W, C) → (B, H·W, C)."""
        x = x + self.attn(self.norm1(x), H, W)
        return x + self.mlp(self.norm2(x))
