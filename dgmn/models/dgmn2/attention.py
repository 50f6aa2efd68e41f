"""DGMN2's attention: each pixel attends to 9 sampled positions per head (a 3×3 grid moved by learned offsets).

With x (B, N = H·W, C) the block's *normalised* input, h heads of d = C/h channels, and per head (heads folded
into the batch where the op runs)::

    q, k, v = split(x W_qkv + b_qkv)                       each (B·h, d, H, W)
    Δ       = x_head W_off + b_off                         (B·h, 18, H, W), layout [k][dy, dx]; one Linear(d, 18)
                                                           shared by the heads, applied to each head's slice of x
    p_k     = (y + ky − 1 + Δy_k, x + kx − 1 + Δx_k)       sample k = ky·3 + kx, in feature pixels
    a_k     = d^−½ · q · bilinear(k, p_k)  +  r_k          content term (scaled) + position term r (RelPosEmb,
                                                           not scaled)
    w       = softmax_k(a)                                 (B·h, 9, H, W)
    m       = Σ_k w_k · bilinear(v, p_k)                   (B·h, d, H, W)
    out     = concat_heads(m) W_proj + b_proj              (B, N, C)

bilinear is zero outside the map, corner by corner (the original's CUDA ``DeformUnfold``, padding 1, dilation 1).

Implementation: :meth:`DGMN2Attention.forward` calls :func:`dgmn.ops.sampled_attention` on views into the
qkv projection, (B, H, W, h, d), and the offsets as ``conv_offset`` returns them, (B, H, W, h, 18): without
gradients a fused kernel (C++/OpenMP on the CPU, Triton on CUDA) computes the 9 samples, the softmax and the
weighted sum in one pass; its output (B, H, W, h, d) is the projection's input without a copy. When autograd needs
gradients (training) the op takes its gradient from its differentiable reference path (the value stays the fused
kernel's, see :func:`dgmn.ops.sampled_attention`). With ``fused = False`` (a class attribute, per module too) the
module's unfused path runs: the
weighted sum of the values is :func:`dgmn.ops.dynamic_aggregate` (x = v, the offsets as they are, weight = w,
dilation 1, G = 1: the same positions and the same zero-padded bilinear); the keys are sampled for the dot
products with :func:`dgmn.ops.sample_nodes` (``F.grid_sample``, the same positions). :meth:`DGMN2Attention.internals`
(the inspector) computes the logits and weights on the unfused path (the message and output on the forward's) and
returns everything in between; :meth:`forward` computes only what the output needs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ...ops import dynamic_aggregate, node_grid, sample_nodes, sampled_attention
from .rel_pos import NUM_SAMPLES, RelPosEmb

DILATIONS = (1,)


@dataclass
class AttentionInternals:
    """What one DGMN2 attention computed, per head (h heads, head dim d, feature map H × W, sample k = ky·3 + kx).

    offsets (B, h, 9, 2, H, W)   learned offsets [dy, dx] in feature pixels
    positions (B, h, 9, 2, H, W) sampled positions [y, x] = (y + ky − 1, x + kx − 1) + offsets
    content (B, h, 9, H, W)      d^−½ · q · k(position), the content logits
    position (B, h, 9, H, W)     the relative-position logits
    weights (B, h, 9, H, W)      softmax over the 9 samples of content + position (sums to 1)
    values (B, h, d, H, W)       the value maps the samples are read from
    message (B, h, d, H, W)      Σ_k weights_k · bilinear(values, positions_k), before the output projection
    out (B, H·W, C)              the attention's output (after the projection)
    """

    offsets: torch.Tensor
    positions: torch.Tensor
    content: torch.Tensor
    position: torch.Tensor
    weights: torch.Tensor
    values: torch.Tensor
    message: torch.Tensor
    out: torch.Tensor


class DGMN2Attention(nn.Module):
    """Parameters named as the original's (``qkv``, ``proj``, ``conv_offset``, ``pos_emb.rel_height/rel_width``).

    ``fused``: take :func:`dgmn.ops.sampled_attention` in :meth:`forward` (default); False runs the unfused path
    (the benchmark's "fused off"). Either gives the same numbers to float tolerance."""

    fused = True

    def __init__(self, dim: int, num_heads: int, table_size: tuple[int, int], qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"DGMN2Attention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.conv_offset = nn.Linear(self.head_dim, NUM_SAMPLES * 2, bias=qkv_bias)
        self.pos_emb = RelPosEmb(table_size, self.head_dim)

    def _prepare(self, x: torch.Tensor, H: int, W: int):
        """(q, k, v, offset): q, k, v (B·h, d, H, W) (v channels-last, as the op likes it), offset (B·h, 18, H, W)."""
        B, N, C = x.shape
        if N != H * W or C != self.num_heads * self.head_dim:
            raise ValueError(f"DGMN2Attention: tokens of shape {tuple(x.shape)} do not fit a {H}×{W} map of "
                             f"{self.num_heads * self.head_dim} channels")
        h, d = self.num_heads, self.head_dim
        qkv = self.qkv(x).view(B, H, W, 3, h, d).permute(3, 0, 4, 5, 1, 2)  # (3, B, h, d, H, W)
        q = qkv[0].reshape(B * h, d, H, W)
        k = qkv[1].reshape(B * h, d, H, W)
        v = qkv[2].permute(0, 1, 3, 4, 2).reshape(B * h, H, W, d).permute(0, 3, 1, 2)  # channels-last
        offset = self.conv_offset(x.reshape(B, H, W, h, d)).permute(0, 3, 4, 1, 2).reshape(B * h, 2 * NUM_SAMPLES, H, W)
        return q, k, v, offset

    def _logits(self, q, k, offset):
        """(content, position), each (B·h, 9, H, W)."""
        keys = sample_nodes(k, offset, DILATIONS, 3)  # (B·h, d, 9, H, W)
        # Σ_c q_c · key_c, accumulated channel by channel: 4× faster on a CPU than one broadcast product and sum
        # over a (B·h, d, 9, H, W) temporary (the same terms, summed in channel order)
        content = torch.zeros_like(keys[:, 0])
        qs = q.unsqueeze(2)
        for c in range(keys.shape[1]):
            content.addcmul_(keys[:, c], qs[:, c])
        return content * self.scale, self.pos_emb(q)

    def _project(self, message: torch.Tensor, B: int, H: int, W: int) -> torch.Tensor:
        h, d = self.num_heads, self.head_dim
        m = message.permute(0, 2, 3, 1).reshape(B, h, H * W, d).transpose(1, 2).reshape(B, H * W, h * d)
        return self.proj(m)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """x: (B, H·W, C) the normalised tokens → (B, H·W, C)."""
        if self.fused:
            return self._forward_fused(x, H, W)
        return self._forward_unfused(x, H, W)

    def _forward_fused(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, C = x.shape
        return self.proj(self._fused_message(x, H, W).view(B, N, C))

    def _fused_message(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """The message before the projection, (B, H, W, h, d) contiguous, from :func:`dgmn.ops.sampled_attention`."""
        B, N, C = x.shape
        if N != H * W or C != self.num_heads * self.head_dim:
            raise ValueError(f"DGMN2Attention: tokens of shape {tuple(x.shape)} do not fit a {H}×{W} map of "
                             f"{self.num_heads * self.head_dim} channels")
        h, d = self.num_heads, self.head_dim
        q, k, v = self.qkv(x).view(B, H, W, 3, h, d).unbind(3)  # views, each (B, H, W, h, d)
        offset = self.conv_offset(x.reshape(B, H, W, h, d))  # (B, H, W, h, 18)
        pos = self.pos_emb(q.permute(0, 3, 4, 1, 2).reshape(B * h, d, H, W)).reshape(B, h, NUM_SAMPLES, H, W)
        return sampled_attention(q, k, v, offset, pos, self.scale)  # (B, H, W, h, d) contiguous

    def _forward_unfused(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B = x.shape[0]
        q, k, v, offset = self._prepare(x, H, W)
        content, position = self._logits(q, k, offset)
        weights = (content + position).softmax(dim=1)
        message = dynamic_aggregate(v, offset, weights, DILATIONS, 3)
        return self._project(message, B, H, W)

    def internals(self, x: torch.Tensor, H: int, W: int) -> AttentionInternals:
        """Everything :meth:`forward` computes, per head (see :class:`AttentionInternals`); its ``out`` is the
        forward's output. The logits and weights come from the unfused path (the fused op does not return them);
        the message and the output from the path :meth:`forward` takes, so ``out`` is its output bit for bit."""
        B = x.shape[0]
        h, d = self.num_heads, self.head_dim
        q, k, v, offset = self._prepare(x, H, W)
        content, position = self._logits(q, k, offset)
        weights = (content + position).softmax(dim=1)
        if self.fused:
            fused = self._fused_message(x, H, W)  # (B, H, W, h, d)
            out = self.proj(fused.view(B, H * W, h * d))
            message = fused.permute(0, 3, 4, 1, 2).reshape(B * h, d, H, W)
        else:
            message = dynamic_aggregate(v, offset, weights, DILATIONS, 3)
            out = self._project(message, B, H, W)
        positions = node_grid(offset, DILATIONS, 3).permute(0, 1, 4, 2, 3)  # (B·h, 9, 2, H, W)

        def heads(t):
            return t.reshape(B, h, *t.shape[1:])

        return AttentionInternals(
            offsets=heads(offset.view(B * h, NUM_SAMPLES, 2, H, W)), positions=heads(positions), content=heads(content),
            position=heads(position), weights=heads(weights), values=heads(v.contiguous()), message=heads(message.contiguous()),
            out=out)
