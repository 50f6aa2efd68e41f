"""Which DGMN2 model a state dict holds, read from its keys and shapes (mmseg 0.x ``EncoderDecoder`` keys,
after :func:`dgmn.models.dgmn2.map_keys`), and whether every tensor fits it.

Per stage s = 1..4 (``b = backbone``):

* embed dim C_s: output channels of ``b.patch_embed1.conv3.weight`` (s = 1) / ``b.patch_embed{s}.conv.weight``;
* depth: the number of blocks ``b.block{s}.{i}.*`` (i = 0, 1, …);
* head dim d_s: ``b.block{s}.0.attn.pos_emb.rel_height`` is (h₀ + 8, d_s) — cross-checked with
  ``attn.conv_offset.weight`` (18, d_s); heads = C_s / d_s, which must divide exactly. (The qkv and proj
  shapes do not depend on the heads; the tables and the offset predictor do, so the heads are always
  decided by the checkpoint.)
* MLP ratio: ``b.block{s}.0.mlp.fc1.weight`` is (C_s · ratio, C_s);
* relative-position table sizes: ``rel_height`` / ``rel_width`` lengths − 8;
* ``qkv_bias``: whether ``b.block1.0.attn.qkv.bias`` exists.

LayerNorm eps is not stored in a checkpoint: 1e-6, as in all four of DGMN2's size-specific backbone classes.

The head: ``neck.lateral_convs.*`` → Semantic FPN (channels from ``neck.lateral_convs.0.conv.weight`` and
``decode_head.scale_heads.0.0.conv.weight``); ``decode_head.mlahead.*`` → SETR-MLA (``mlahead.head2.0.weight``);
``decode_head.conv_0.*`` → SETR-PUP (``conv_0.weight``); only ``decode_head.conv_seg.*`` → SETR-Naive. Classes:
``decode_head.conv_seg.weight`` (K, …). ``img_size`` and ``align_corners`` are not in the weights: the caller
passes them (from the checkpoint's config text, else the published configs' 769 and True).

Then every tensor is compared with the inferred architecture built on the meta device: missing, unexpected and
wrongly shaped tensors are named.
"""
from __future__ import annotations

import re

import torch

from ..models.checkpoint import build_from_card, state_mismatch
from ..models.dgmn2 import BackboneConfig, DGMN2Config
from ..models.dgmn2.config import HEAD_TITLES, HEADS, SIZES
from .errors import ConvertError

B = "backbone."


def describe(config: DGMN2Config) -> str:
    size = f"DGMN2-{config.size.capitalize()}" if config.size != "custom" else "DGMN2 (custom size)"
    return f"{size} + {HEAD_TITLES[config.head]}"


def infer_dgmn2(state: dict[str, torch.Tensor], size: str | None = None, head: str | None = None,
                img_size: int = 769, align_corners: bool = True) -> DGMN2Config:
    """The :class:`DGMN2Config` the state dict holds. ``size`` / ``head``, if given, must agree with what the
    checkpoint holds. :class:`ConvertError` naming the key that decides, otherwise. ``img_size`` (SETR-Naive and
    -MLA) and ``align_corners`` are not in the weights (see :mod:`.mmseg_config`)."""
    if size is not None and size not in SIZES:
        raise ConvertError(f"--size {size!r} is not a DGMN2 size; choose one of {', '.join(SIZES)}")
    if head is not None and head not in HEADS:
        raise ConvertError(f"--head {head!r} is not a DGMN2 head; choose one of {', '.join(HEADS)}")
    first = B + "patch_embed1.conv3.weight"
    if first not in state or B + "block1.0.attn.pos_emb.rel_height" not in state:
        raise ConvertError(f"not a DGMN2 checkpoint: it has no {first} / {B}block1.0.attn.pos_emb.rel_height "
                           f"({_looks_like(state)})")

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise ConvertError(f"the checkpoint lacks {key}, which the DGMN2 architecture is read from")
        return tuple(state[key].shape)

    def dims(key: str, n: int) -> tuple[int, ...]:
        s = shape(key)
        if len(s) != n:
            raise ConvertError(f"{key} has shape {s}; a DGMN2 checkpoint has a {n}-D tensor there")
        return s

    embed, depths, heads, ratios, tables = [], [], [], [], []
    for s in range(1, 5):
        key = B + ("patch_embed1.conv3.weight" if s == 1 else f"patch_embed{s}.conv.weight")
        C = dims(key, 4)[0]
        embed.append(C)
        idx = {int(m.group(1)) for k in state if (m := re.match(rf"{B}block{s}\.(\d+)\.", k))}
        depth = max(idx) + 1 if idx else 0
        depths.append(depth)
        if depth == 0:
            heads.append(1)
            ratios.append(4)
            tables.append((1, 1))
            continue
        blk = f"{B}block{s}.0."
        rh, rw = dims(blk + "attn.pos_emb.rel_height", 2), dims(blk + "attn.pos_emb.rel_width", 2)
        d = rh[1]
        off = dims(blk + "attn.conv_offset.weight", 2)
        if off != (18, d) or rw[1] != d:
            raise ConvertError(f"{blk}attn.conv_offset.weight {off}, pos_emb.rel_height {rh} and rel_width {rw} disagree "
                               f"on the head dim; a DGMN2 checkpoint has (18, d), (h + 8, d), (w + 8, d)")
        if d < 1 or C % d:
            raise ConvertError(f"{blk}attn.pos_emb.rel_height {rh}: head dim {d} does not divide the stage's embed dim {C} "
                               f"({key}), so the number of heads cannot be decided; this is not a DGMN2 checkpoint")
        heads.append(C // d)
        if rh[0] < 9 or rw[0] < 9:
            raise ConvertError(f"{blk}attn.pos_emb.rel_height {rh} / rel_width {rw}: a table has at least 9 rows (size + 8)")
        tables.append((rh[0] - 8, rw[0] - 8))
        hidden = dims(blk + "mlp.fc1.weight", 2)[0]
        ratio = hidden / C
        ratio = int(ratio) if ratio.is_integer() else ratio
        if int(C * ratio) != hidden:
            raise ConvertError(f"{blk}mlp.fc1.weight has {hidden} outputs, not a whole multiple of C={C} that DGMN2's "
                               "int(C · mlp_ratio) gives")
        ratios.append(ratio)
    qkv_bias = B + "block1.0.attn.qkv.bias" in state
    try:
        backbone = BackboneConfig(tuple(embed), tuple(heads), tuple(ratios), tuple(depths), qkv_bias, tuple(tables))
    except ValueError as exc:
        raise ConvertError(f"the backbone read from the checkpoint is outside what this port builds: {exc}") from None

    seg = "decode_head.conv_seg.weight"
    K = dims(seg, 4)[0]
    if "neck.lateral_convs.0.conv.weight" in state:
        found, cfg = "fpn", {"neck_channels": dims("neck.lateral_convs.0.conv.weight", 4)[0],
                             "channels": dims("decode_head.scale_heads.0.0.conv.weight", 4)[0]}
    elif "decode_head.mlahead.head2.0.weight" in state:
        found, cfg = "setr_mla", {"mla_channels": dims("decode_head.mlahead.head2.0.weight", 4)[0], "img_size": img_size}
    elif "decode_head.conv_0.weight" in state:
        found, cfg = "setr_pup", {"channels": dims("decode_head.conv_0.weight", 4)[0]}
    else:
        found, cfg = "setr_naive", {"img_size": img_size}
    try:
        config = DGMN2Config(found, K, backbone, cfg, align_corners)
    except ValueError as exc:
        raise ConvertError(f"the decode head read from the checkpoint is outside what this port builds: {exc}") from None
    if size is not None and config.size != size:
        raise ConvertError(f"--size {size} does not match the checkpoint: it holds {describe(config)} (embed dims "
                           f"{list(embed)}, depths {list(depths)}); drop --size or pick the right file")
    if head is not None and head != found:
        raise ConvertError(f"--head {head} does not match the checkpoint: it holds {describe(config)} "
                           f"(decided by {_head_key(found)}); drop --head or pick the right file")
    return config


def _head_key(head: str) -> str:
    return {"fpn": "neck.lateral_convs.*", "setr_mla": "decode_head.mlahead.*", "setr_pup": "decode_head.conv_0.*",
            "setr_naive": "only decode_head.conv_seg.*"}[head]


def _looks_like(state) -> str:
    keys = list(state)
    if any(k.startswith(B + "layer1.") for k in keys):
        return "its backbone.layer1.* keys are a ResNet's"
    if not any(k.startswith(B) for k in keys):
        return "it has no backbone.* keys at all; e.g. " + ", ".join(keys[:3])
    return "its backbone keys start " + ", ".join(k for k in keys[:3])


def check_tensors(state: dict[str, torch.Tensor], config: DGMN2Config) -> None:
    """Every key and shape of ``state`` against ``config``'s model (built on the meta device); float tensors
    must be finite. :class:`ConvertError` naming the tensors at fault."""
    want = build_from_card({"name": "check", "architecture": config.to_architecture()}, "meta").state_dict()
    missing, unexpected, wrong = state_mismatch({k: v.shape for k, v in want.items()}, {k: v.shape for k, v in state.items()})
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({', '.join(missing[:4])}{', …' if len(missing) > 4 else ''})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:4])}{', …' if len(unexpected) > 4 else ''})")
    if wrong:
        problems.append(f"{len(wrong)} with the wrong shape (" + ", ".join(
            f"{k}: {tuple(state[k].shape)} in the file, {tuple(want[k].shape)} expected" for k in wrong[:3])
            + (", …" if len(wrong) > 3 else "") + ")")
    if problems:
        raise ConvertError(f"the tensors do not fit {describe(config)} (read from the checkpoint's shapes): "
                           + "; ".join(problems))
    for k, v in want.items():
        t = state[k]
        if v.dtype.is_floating_point != t.dtype.is_floating_point:
            raise ConvertError(f"tensor {k} has dtype {t.dtype}, expected {v.dtype}")
        if t.dtype.is_floating_point and not bool(torch.isfinite(t).all()):
            raise ConvertError(f"tensor {k} holds NaN or infinite values")
