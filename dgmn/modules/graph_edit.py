"""Graph edits: data that transforms a context layer's graph where the layer computes it.

A layer with ``layer.graph_edit = edit`` (``None``: unedited) passes each stage of its computation through the
edit, so an edited run is exactly the layer's own math with that stage changed — never a second copy of it.

DGMN, per rate s (K nodes, G groups, feature map (h, w)):

    walks            Δ_s (B, 2K, h, w)   → edit.walks(layer, s, Δ_s)          before filters/affinities read the nodes
    affinity logits  a_s (B, K, h, w)    → edit.affinity_logits(layer, s, a_s) before the softmax over K
    node weights     β_s·A_s·w_s (B, K·G, h, w) → edit.node_weights(layer, s, ·)  what the op sums with
    message          Σ_s m_s (B, C, h, w) → edit.message(layer, Σ)             before W_out

Non-local (N = h·w positions):

    attention mask   edit.attention_keep(layer, (h, w), i0, i1) → None or an (i1 − i0, N) bool mask of the keys
                     that queries i0…i1−1 keep (the softmax runs over the kept keys only: the others are
                     removed and the weights re-normalised); asked per chunk of queries, so N×N never exists
    output           y (B, C', h, w)      → edit.attention_output(layer, y)     before W_z

DCNv2 (:class:`dgmn.modules.DeformableContext`, one "rate" s = 0 with K taps): its offsets Δ (B, 2K, h, w) pass
through ``walks``, its modulation masks m (B, K, h, w) through ``node_weights`` (so ``NoWalks``, ``DropNode(rate=0,
node=k)`` and ``DropRate(rate=0)`` apply unchanged) and its output D before the BN through ``message``.
Criss-cross attention (:class:`dgmn.modules.CrissCross2d`): ``attention_keep`` (read at each query's row and column
only) and ``attention_output`` (y before γ) in every pass, as for Non-local.

Every edit can be limited to some feature positions with ``where``, an (h, w) bool mask (``None``: every
position): outside it the layer computes exactly what it would unedited.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class GraphEdit:
    """The identity edit; subclasses override the stages they change. ``where``: (h, w) bool or None."""

    where: Optional[torch.Tensor] = None

    def _at(self, edited: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        if self.where is None:
            return edited
        where = self.where.to(original.device)
        if tuple(where.shape) != tuple(original.shape[-2:]):
            raise ValueError(f"{type(self).__name__}: `where` has shape {tuple(where.shape)}, the layer's map is {tuple(original.shape[-2:])}")
        return torch.where(where, edited, original)

    def walks(self, layer, s: int, offset: torch.Tensor) -> torch.Tensor:
        return offset

    def affinity_logits(self, layer, s: int, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def node_weights(self, layer, s: int, weight: torch.Tensor) -> torch.Tensor:
        return weight

    def message(self, layer, total: torch.Tensor) -> torch.Tensor:
        return total

    def attention_keep(self, layer, size: tuple[int, int], start: int, stop: int) -> Optional[torch.Tensor]:
        return None

    def attention_output(self, layer, y: torch.Tensor) -> torch.Tensor:
        return y


@dataclass
class DropRate(GraphEdit):
    """Rate s sends no message: its node weights are 0 (the layer with β_s = 0)."""

    rate: int = 0

    def node_weights(self, layer, s, weight):
        return self._at(torch.zeros_like(weight), weight) if s == self.rate else weight


@dataclass
class DropNode(GraphEdit):
    """Node k of rate s contributes nothing; the other nodes' weights stay as they were."""

    rate: int = 0
    node: int = 0

    def node_weights(self, layer, s, weight):
        if s != self.rate:
            return weight
        G = weight.shape[1] // layer.kernel_size**2
        edited = weight.clone()
        edited[:, self.node * G:(self.node + 1) * G] = 0
        return self._at(edited, weight)


@dataclass
class NoWalks(GraphEdit):
    """Walks of rate ``rate`` (None: every rate) are zero: the nodes sit on the dilated grid, and the filters
    and affinities are computed from those nodes (the layer with that rate's walk conv outputting zero)."""

    rate: Optional[int] = None

    def walks(self, layer, s, offset):
        return self._at(torch.zeros_like(offset), offset) if self.rate in (None, s) else offset


@dataclass
class UniformAffinity(GraphEdit):
    """Affinities 1/K for rate ``rate`` (None: every rate): the affinity logits are zero."""

    rate: Optional[int] = None

    def affinity_logits(self, layer, s, logits):
        return self._at(torch.zeros_like(logits), logits) if self.rate in (None, s) else logits


@dataclass
class NoContext(GraphEdit):
    """Every message is zero: DGMN's Σ_s m_s before W_out, Non-local's attention output y before W_z."""

    def message(self, layer, total):
        return self._at(torch.zeros_like(total), total)

    def attention_output(self, layer, y):
        return self._at(torch.zeros_like(y), y)


@dataclass
class MaskAttention(GraphEdit):
    """Non-local: attention to the key positions in ``keys`` ((h, w) bool) is removed and the remaining
    weights re-normalised, for the queries in ``where`` (all if None). Keeps at least one key per query."""

    keys: Optional[torch.Tensor] = None

    def attention_keep(self, layer, size, start, stop):
        if self.keys is None:
            return None
        if tuple(self.keys.shape) != tuple(size):
            raise ValueError(f"MaskAttention: `keys` has shape {tuple(self.keys.shape)}, the layer's map is {tuple(size)}")
        masked = self.keys.flatten()
        if bool(masked.all()):
            raise ValueError("MaskAttention: the box covers every position; nothing would be left to attend to")
        rows = torch.ones(stop - start, dtype=torch.bool) if self.where is None else self.where.flatten()[start:stop]
        return ~(rows[:, None] & masked[None, :])  # queries in `where` drop the masked keys, the others keep all


@dataclass
class EditList(GraphEdit):
    """Several edits, applied in order at every stage."""

    edits: tuple = ()

    def walks(self, layer, s, offset):
        for e in self.edits:
            offset = e.walks(layer, s, offset)
        return offset

    def affinity_logits(self, layer, s, logits):
        for e in self.edits:
            logits = e.affinity_logits(layer, s, logits)
        return logits

    def node_weights(self, layer, s, weight):
        for e in self.edits:
            weight = e.node_weights(layer, s, weight)
        return weight

    def message(self, layer, total):
        for e in self.edits:
            total = e.message(layer, total)
        return total

    def attention_keep(self, layer, size, start, stop):
        keep = None
        for e in self.edits:
            k = e.attention_keep(layer, size, start, stop)
            keep = k if keep is None else (keep if k is None else keep & k)
        return keep

    def attention_output(self, layer, y):
        for e in self.edits:
            y = e.attention_output(layer, y)
        return y
