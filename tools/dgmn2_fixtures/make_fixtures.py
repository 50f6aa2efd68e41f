#!/usr/bin/env python
"""Make the DGMN2 port's test fixtures by running DGMN2's ORIGINAL segmentation code on a CPU.

    python tools/dgmn2_fixtures/make_fixtures.py --dgmn2 /path/to/DGMN2 --dgmn2-commit <sha> \\
        --out tests/fixtures/dgmn2

``--dgmn2`` is a checkout or ``git archive`` export of https://github.com/fudan-zvg/DGMN2. Their files are imported
unchanged (``segmentation/backbones``, ``segmentation/decode_heads``) and their Cityscapes configs are read; the
libraries they import (mmcv, mmseg, timm, and their CUDA-only ``dcn`` op) are replaced by the small stand-ins in
``standins/`` (see README.md). For each of the four decode heads it builds the model as the head's DGMN2-Tiny
Cityscapes config does, with reduced widths/depths, perturbs every parameter and buffer with seeded noise, and
writes an mmseg-style checkpoint, the reference logits (and intermediate features), attention internals (FPN model)
and a manifest. It also counts the parameters of the full-size published models. See README.md for the layout.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import standins  # noqa: E402
from standins import deform_unfold as du  # noqa: E402
from standins import mm  # noqa: E402
from standins.config import load_config  # noqa: E402

HEADS = {  # fixture name -> DGMN2 config prefix
    "fpn": "fpn",
    "setr_naive": "setr_naive",
    "setr_pup": "setr_pup",
    "setr_mla": "setr_mla",
}
SIZES = ("tiny", "small", "medium", "large")
CONFIG = "segmentation/configs/{head}_dgmn2_{size}_4x2_769x769_40k_cityscapes.py"

# The reduced backbone: DGMN2-Tiny's constructor arguments with smaller widths and depths. Kept as in Tiny:
# 4 stages, num_heads (1, 2, 5, 8), mlp_ratios (8, 8, 4, 4), qkv_bias, LayerNorm eps 1e-6, patch-embed layout,
# relative position tables sized for 224-pixel training (fea_size 56/28/14/7, set inside DGMN2), 9 samples.
# The head dims differ per stage (16, 12, 8, 6) so that a mixed-up head split cannot pass.
FIXTURE_BACKBONE = dict(embed_dims=(16, 24, 40, 48), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4),
                        depths=(2, 1, 2, 1), qkv_bias=True, qk_scale=None, layernorm_eps=1e-6)
D = list(FIXTURE_BACKBONE["embed_dims"])
# Overrides merged into each head's DGMN2-Tiny config ``model`` dict (everything else comes from their config).
HEAD_OVERRIDES = {
    "fpn": dict(neck=dict(in_channels=D, out_channels=32),
                decode_head=dict(in_channels=[32, 32, 32, 32], channels=16)),
    "setr_naive": dict(decode_head=dict(in_channels=D[3], channels=D[3], embed_dim=D[3])),
    # channels stays 256: their VisionTransformerUpHead hard-codes 256 channels for num_conv=4 (conv_0..conv_2,
    # syncbn_fc_0..2), and conv_seg (channels -> classes) reads that 256-channel map.
    "setr_pup": dict(decode_head=dict(in_channels=D[3], channels=256, embed_dim=D[3])),
    "setr_mla": dict(decode_head=dict(in_channels=4 * 16, channels=4 * 16, mla_channels=D, mlahead_channels=16)),
}
SEEDS = {"fpn": 101, "setr_naive": 202, "setr_pup": 303, "setr_mla": 404}
INPUT_SEED = 7
# Per head: one non-square input with odd sizes and one square with even sizes, as small as their code allows.
# Every stage map must stay ≥ 3×3: their CUDA op refuses smaller inputs (see README). FPN (strides 4/8/16/32):
# 65×97 → stage maps 17×25, 9×13, 5×7, 3×4 and 70×70 → 18, 9, 5, 3 (65 px is the minimum). SETR heads (strides
# 4/8/8/8, minimum 17 px): 33×49 → 9×13, 5×7, 5×7, 5×7 and 36×36 → 9, 5, 5, 5.
INPUT_SHAPES = {
    "fpn": [(1, 3, 65, 97), (1, 3, 70, 70)],
    "setr_naive": [(1, 3, 33, 49), (1, 3, 36, 36)],
    "setr_pup": [(1, 3, 33, 49), (1, 3, 36, 36)],
    "setr_mla": [(1, 3, 33, 49), (1, 3, 36, 36)],
}
# The attention internals (fpn.attention.safetensors) are recorded for these inputs and blocks only (file size).
ATTENTION_INPUTS = (0,)
ATTENTION_BLOCKS = (0,)
# Every floating tensor of the checkpoints is stored as float16 (file size: setr_pup's hard-coded 256-channel
# convs alone are 1.4 M parameters); the model the references come from has exactly those values (see README).
CHECKPOINT_DTYPE = torch.float16
NOISE_SEED_OFFSET = 10_000
NUM_BATCHES_TRACKED = 40_000  # a plausible value (40k iterations); unused in eval

CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
           "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
PALETTE = [[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153], [153, 153, 153],
           [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60],
           [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100], [0, 0, 230], [119, 11, 32]]

THEIR_FILES = ["segmentation/backbones/__init__.py", "segmentation/backbones/dgmn2.py",
               "segmentation/backbones/dgmn2_block.py", "segmentation/decode_heads/__init__.py",
               "segmentation/decode_heads/vit_up_head.py", "segmentation/decode_heads/vit_mla_head.py",
               "segmentation/backbones/dcn/src/deform_conv_cuda_kernel.cu",
               "segmentation/backbones/dcn/functions/deform_unfold.py"]


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------ importing theirs
def import_dgmn2(root: Path):
    """Install the stand-ins, then import THEIR ``backbones`` and ``decode_heads`` packages from ``root``."""
    seg = root / "segmentation"
    if not (seg / "backbones" / "dgmn2_block.py").is_file():
        raise SystemExit(f"{root} does not look like a DGMN2 checkout (no segmentation/backbones/dgmn2_block.py)")
    for name in ("backbones", "decode_heads"):
        if name in sys.modules:
            raise SystemExit(f"a module named {name!r} is already imported")
    standins.install(package="backbones")
    sys.path.insert(0, str(seg))
    import backbones  # noqa: F401  (THEIR file: registers dgmn2_tiny ... dgmn2_large)
    import decode_heads  # noqa: F401  (THEIR file: registers VisionTransformerUpHead, VIT_MLAHead)
    from backbones.dgmn2 import DGMN2

    spec = dict(FIXTURE_BACKBONE)

    @mm.BACKBONES.register_module(name="dgmn2_fixture")
    class DGMN2Fixture(DGMN2):  # mirrors their dgmn2_tiny class; only the sizes differ
        def __init__(self, norm_cfg=dict(type="SyncBN", requires_grad=True), output="decode_head", pretrained=None):
            super().__init__(output=output, norm_cfg=norm_cfg, embed_dims=spec["embed_dims"],
                             num_heads=spec["num_heads"], mlp_ratios=spec["mlp_ratios"], qkv_bias=spec["qkv_bias"],
                             qk_scale=spec["qk_scale"], norm_layer=partial(nn.LayerNorm, eps=spec["layernorm_eps"]),
                             depths=spec["depths"], pretrained=pretrained)

    return sys.modules["backbones.dgmn2_block"]


def model_cfg(root: Path, head: str, size: str) -> dict:
    cfg = load_config(root / CONFIG.format(head=HEADS[head], size=size))
    model = copy.deepcopy(cfg["model"])
    model["pretrained"] = None  # no ImageNet weights are loaded (their config names a local file)
    return model


def fixture_cfg(root: Path, head: str) -> dict:
    model = model_cfg(root, head, "tiny")
    assert model["backbone"]["type"] == "dgmn2_tiny"
    model["backbone"]["type"] = "dgmn2_fixture"
    for part, over in HEAD_OVERRIDES[head].items():
        assert part in model, (head, part)
        model[part] = {**model[part], **over}
    return model


# ------------------------------------------------------------------------------------------------ perturbation
@torch.no_grad()
def perturb(model: nn.Module, block_mod, seed: int) -> None:
    """Overwrite every parameter and buffer with seeded, non-trivial values (deterministic: one CPU generator,
    modules visited in registration order)."""
    g = torch.Generator().manual_seed(seed)

    def randn(t):
        return torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)

    def rand(t):
        return torch.rand(t.shape, generator=g, dtype=torch.float64).to(t.dtype)

    offset_linears = {id(m.conv_offset) for m in model.modules() if isinstance(m, block_mod.DGMN2Attention)}
    seen = set()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.weight.copy_(1 + 0.2 * randn(m.weight))
            m.bias.copy_(0.1 * randn(m.bias))
            m.running_mean.copy_(0.2 * randn(m.running_mean))
            m.running_var.copy_(0.5 + rand(m.running_var))
            m.num_batches_tracked.fill_(NUM_BATCHES_TRACKED)
        elif isinstance(m, nn.LayerNorm):
            m.weight.copy_(1 + 0.2 * randn(m.weight))
            m.bias.copy_(0.1 * randn(m.bias))
        elif isinstance(m, nn.Linear) and id(m) in offset_linears:
            # offsets of about ±1 px (std ≈ 0.9) from LayerNorm-ed inputs: off-grid, some taps outside the map
            m.weight.copy_(0.7 / m.in_features ** 0.5 * randn(m.weight))
            if m.bias is not None:
                m.bias.copy_(0.5 * randn(m.bias))
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            fan_in = m.weight[0].numel()
            m.weight.add_(randn(m.weight) / fan_in ** 0.5)
            if m.bias is not None:
                m.bias.add_(0.1 * randn(m.bias))
        elif isinstance(m, block_mod.RelPosEmb):
            scale = m.rel_height.shape[1] ** -0.5
            m.rel_height.add_(0.5 * scale * randn(m.rel_height))
            m.rel_width.add_(0.5 * scale * randn(m.rel_width))
        else:
            continue
        seen.update(id(t) for t in list(m.parameters(recurse=False)) + list(m.buffers(recurse=False)))
    missing = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if id(t) not in seen]
    assert not missing, f"not perturbed: {missing}"


@torch.no_grad()
def round_to_checkpoint_dtype(model: nn.Module) -> None:
    """Round every floating parameter and buffer to CHECKPOINT_DTYPE and back (in place), so that the float32
    model holds exactly the values the checkpoint stores. Integer buffers (num_batches_tracked) are untouched."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            r = t.to(CHECKPOINT_DTYPE)
            assert torch.isfinite(r).all(), "value out of float16 range"
            t.copy_(r.to(t.dtype))


def checkpoint_state_dict(sd: dict) -> dict:
    """The state dict as stored: floating tensors as CHECKPOINT_DTYPE (exact, see round_to_checkpoint_dtype)."""
    out = {}
    for k, v in sd.items():
        if v.is_floating_point():
            h = v.to(CHECKPOINT_DTYPE)
            assert torch.equal(h.to(v.dtype), v), f"{k} is not exactly representable in {CHECKPOINT_DTYPE}"
            out[k] = h.clone()
        else:
            assert v.dtype == torch.int64, (k, v.dtype)
            out[k] = v.clone()
    return out


def check_nontrivial(before: dict, after: dict) -> None:
    for k, v in after.items():
        assert not torch.equal(before[k], v), f"{k} unchanged by perturbation"
        if v.numel() > 1 and v.is_floating_point():
            assert v.std() > 0, f"{k} is constant"


# ------------------------------------------------------------------------------------------------ recording
def make_inputs(head: str):
    g = torch.Generator().manual_seed(INPUT_SEED)
    return [torch.randn(s, generator=g, dtype=torch.float32) for s in INPUT_SHAPES[head]]


class AttentionRecorder:
    """Forward hooks on THEIR DGMN2Block / DGMN2Attention submodules; records one forward pass."""

    def __init__(self, backbone, block_mod):
        self.backbone = backbone
        self.block_mod = block_mod
        self.handles = []
        self.records = {}
        self.prefix = None

    def _put(self, name, t):
        key = f"{self.prefix}.{name}"
        assert key not in self.records, key
        self.records[key] = t.detach().clone()

    def __enter__(self):
        for s in range(1, 5):
            for b, blk in enumerate(getattr(self.backbone, f"block{s}")):
                if b not in ATTENTION_BLOCKS:
                    continue
                tag = f"stage{s}.block{b}"
                att = blk.attn
                unfold_calls = []

                def block_pre(mod, args, tag=tag, calls=unfold_calls):
                    calls.clear()
                    self._put(f"{tag}.block_input", args[0])

                def block_post(mod, args, out, tag=tag):
                    self._put(f"{tag}.block_output", out)

                def attn_post(mod, args, out, tag=tag):
                    self._put(f"{tag}.attn_input", args[0])
                    self._put(f"{tag}.hw", torch.tensor([args[1], args[2]], dtype=torch.int64))
                    self._put(f"{tag}.attn_output", out)

                def unfold_post(mod, args, out, tag=tag, calls=unfold_calls):
                    calls.append(1)
                    if len(calls) == 1:  # first call samples k, second v (same offsets)
                        self._put(f"{tag}.offset", args[1])
                        self._put(f"{tag}.unfold_k", out)
                    else:
                        assert len(calls) == 2

                def pos_post(mod, args, out, tag=tag):
                    self._put(f"{tag}.pos_logits", out)

                def drop_pre(mod, args, tag=tag):
                    self._put(f"{tag}.attn_weights", args[0])

                def proj_pre(mod, args, tag=tag):
                    self._put(f"{tag}.attn_pre_proj", args[0])

                self.handles += [blk.register_forward_pre_hook(block_pre), blk.register_forward_hook(block_post),
                                 att.register_forward_hook(attn_post),
                                 att.unfold.register_forward_hook(unfold_post),
                                 att.pos_emb.register_forward_hook(pos_post),
                                 att.attn_drop.register_forward_pre_hook(drop_pre),
                                 att.proj.register_forward_pre_hook(proj_pre)]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def st_meta(head: str, args) -> dict:
    # one key only: safetensors writes a multi-key metadata map in an order that changes from run to run
    return {"dgmn2_fixture": json.dumps({"head": head, "dgmn2_commit": args.dgmn2_commit,
                                         "format": "tools/dgmn2_fixtures/README.md"}, sort_keys=True)}


def file_info(path: Path) -> dict:
    return {"bytes": path.stat().st_size, "sha256": sha256(path)}


def summarize_cfg(model: nn.Module, cfg: dict, head: str) -> dict:
    bb = model.backbone
    dh = model.decode_head
    arch = {
        "segmentor": "EncoderDecoder",
        "backbone": {
            "their_class": "segmentation/backbones/dgmn2.py:DGMN2 (dgmn2_tiny's arguments, reduced sizes)",
            "embed_dims": list(FIXTURE_BACKBONE["embed_dims"]),
            "num_heads": list(FIXTURE_BACKBONE["num_heads"]),
            "head_dims": [d // h for d, h in zip(FIXTURE_BACKBONE["embed_dims"], FIXTURE_BACKBONE["num_heads"])],
            "mlp_ratios": list(FIXTURE_BACKBONE["mlp_ratios"]),
            "depths": list(FIXTURE_BACKBONE["depths"]),
            "qkv_bias": FIXTURE_BACKBONE["qkv_bias"], "qk_scale": FIXTURE_BACKBONE["qk_scale"],
            "layernorm_eps": FIXTURE_BACKBONE["layernorm_eps"],
            "patch_embed1_mid_channels": FIXTURE_BACKBONE["embed_dims"][0] // 2,
            "output": bb.output,
            "stage_strides": [4, 8, 16, 32] if bb.output == "neck" else [4, 8, 8, 8],
            "relpos_fea_size": [[56, 56], [28, 28], [14, 14], [7, 7]],
            "relpos_table_rows": [[56 + 8, 56 + 8], [28 + 8, 28 + 8], [14 + 8, 14 + 8], [7 + 8, 7 + 8]],
            "num_samples": 9, "deform_unfold": {"kernel_size": 3, "padding": 1, "dilation": 1, "stride": 1},
            "norm": "SyncBN (BatchNorm2d in eval)", "drop_path_rate": 0.0,
        },
        "neck": cfg.get("neck"),
        "decode_head": {k: v for k, v in cfg["decode_head"].items() if k != "loss_decode"},
        "decode_head_resolved": {
            "class": type(dh).__name__, "in_channels": dh.in_channels, "channels": dh.channels,
            "in_index": dh.in_index, "input_transform": dh.input_transform, "align_corners": dh.align_corners,
            "num_classes": dh.num_classes, "dropout_ratio": dh.dropout_ratio,
        },
        "encode_decode_resize_align_corners": model.align_corners,
    }
    if head == "setr_pup":
        arch["decode_head_resolved"]["hard_coded_conv_channels"] = 256
    return arch


def build(head_cfg: dict, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return mm.build_segmentor(copy.deepcopy(head_cfg))


# ------------------------------------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dgmn2", required=True, type=Path, help="DGMN2 checkout / git-archive export")
    ap.add_argument("--dgmn2-commit", default="unknown", help="the DGMN2 commit the files come from (recorded)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--skip-full-size", action="store_true", help="do not count the full-size models' params")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    from safetensors.torch import save_file

    print("== deform-unfold stand-in self-check")
    check = du.self_check()
    block_mod = import_dgmn2(args.dgmn2)
    assert block_mod.DeformUnfold is du.DeformUnfold, "their dgmn2_block must use the stand-in DeformUnfold"
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    manifest = {
        "description": "DGMN2 segmentation fixtures made by running DGMN2's original code (CPU, stand-ins for "
                       "mmcv/mmseg/timm/dcn); see tools/dgmn2_fixtures/README.md",
        "dgmn2": {"repo": "https://github.com/fudan-zvg/DGMN2", "commit": args.dgmn2_commit,
                  "files_sha256": {f: sha256(args.dgmn2 / f) for f in THEIR_FILES}},
        "torch_version": torch.__version__,
        "deform_unfold_self_check": check,
        "inputs": {"seed": INPUT_SEED, "shapes": {h: [list(s) for s in v] for h, v in INPUT_SHAPES.items()},
                   "distribution": "per head: torch.randn with a fresh torch.Generator().manual_seed(seed), float32, "
                                   "in order (x0, x1)",
                   "why": "as small as their code allows: every stage map must be >= 3x3 (their CUDA unfold "
                          "refuses smaller inputs), i.e. >= 65 px for FPN (strides 4/8/16/32), >= 17 px for the "
                          "SETR heads (4/8/8/8); x0 non-square with odd sizes, x1 square with even sizes"},
        "precision": {
            "checkpoint_tensors": "float16 (every floating tensor of state_dict; num_batches_tracked int64); a "
                                  "converter upcasts them to float32, which is exact",
            "reference_model": "the float32 model whose parameters and buffers are exactly those float16 values "
                               "(perturbed weights rounded to float16 and back to float32 before any forward pass)",
            "reference_outputs": "computed by the float64 copy of that model (model.double(), inputs.double()) "
                                 "and stored as float32; fp32_run_vs_fp64_run_max_abs_diff is the float32 run's "
                                 "distance from them",
        },
        "classes": list(CLASSES),
        "heads": {},
    }

    for head in HEADS:
        th = time.time()
        cfg = fixture_cfg(args.dgmn2, head)
        model = build(cfg, SEEDS[head])
        before = {k: v.clone() for k, v in model.state_dict().items()}
        perturb(model, block_mod, SEEDS[head] + NOISE_SEED_OFFSET)
        sd = model.state_dict()
        check_nontrivial(before, sd)
        round_to_checkpoint_dtype(model)
        sd = model.state_dict()
        check_nontrivial(before, sd)
        model.eval()
        inputs = make_inputs(head)
        ckpt = {"meta": {"CLASSES": CLASSES, "PALETTE": PALETTE,
                         "config": f"# DGMN2 test fixture ({head}), reduced sizes; made by "
                                   f"tools/dgmn2_fixtures/make_fixtures.py from DGMN2 {args.dgmn2_commit}\n"
                                   f"model = {json.dumps(cfg, sort_keys=True)}\n"},
                "state_dict": checkpoint_state_dict(sd)}
        pth = out / f"{head}.pth"
        torch.save(ckpt, pth)
        back = torch.load(pth, map_location="cpu", weights_only=False)["state_dict"]  # the upcast is exact
        assert list(back) == list(sd) and all(
            back[k].dtype == (CHECKPOINT_DTYPE if v.is_floating_point() else torch.int64)
            and torch.equal(back[k].to(v.dtype), v) for k, v in sd.items())

        m64 = copy.deepcopy(model).double().eval()
        tensors = {}
        stats = {}
        with torch.no_grad():
            for i, x in enumerate(inputs):
                tensors[f"x{i}.input"] = x
                y64 = m64.encode_decode(x.double())
                y32 = model.encode_decode(x)
                feats = m64.backbone(x.double())
                for j, f in enumerate(feats):
                    tensors[f"x{i}.backbone.{j}"] = f.float()
                if m64.with_neck:
                    for j, f in enumerate(m64.neck(feats)):
                        tensors[f"x{i}.neck.{j}"] = f.float()
                tensors[f"x{i}.logits"] = y64.float()
                assert y64.shape == (1, len(CLASSES)) + x.shape[2:]
                arg = y64.argmax(1)
                stats[f"x{i}"] = {
                    "input_shape": list(x.shape),
                    "backbone_out_shapes": [list(f.shape) for f in feats],
                    "logits_shape": list(y64.shape),
                    "max_abs_logit": float(y64.abs().max()),
                    "logit_std": float(y64.std()),
                    "fp32_run_vs_fp64_run_max_abs_diff": float((y32.double() - y64).abs().max()),
                    "num_distinct_argmax_classes": int(arg.unique().numel()),
                }
        exp = out / f"{head}.expected.safetensors"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(exp), metadata=st_meta(head, args))

        files = {pth.name: file_info(pth), exp.name: file_info(exp)}
        if head == "fpn":
            rec = AttentionRecorder(m64.backbone, block_mod)
            with rec, torch.no_grad():
                for i in ATTENTION_INPUTS:
                    rec.prefix = f"x{i}"
                    m64.encode_decode(inputs[i].double())
            att = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in rec.records.items()}
            for k, v in att.items():  # sanity: softmax rows sum to 1; offset is the reshaped linear output
                if k.endswith("attn_weights"):
                    assert torch.allclose(v.sum(-1), torch.ones(()), atol=1e-5)
            ap_ = out / "fpn.attention.safetensors"
            save_file(att, str(ap_), metadata=st_meta("fpn", args))
            files[ap_.name] = file_info(ap_)
            manifest["fpn_attention_recorded"] = {
                "inputs": [f"x{i}" for i in ATTENTION_INPUTS],
                "blocks": [f"stage{s}.block{b}" for s in range(1, 5) for b in ATTENTION_BLOCKS],
                "keys": "x{i}.stage{s}.block{b}.<name>, names as in tools/dgmn2_fixtures/README.md (unfold_k "
                        "included for every recorded block)",
                "num_tensors": len(att)}

        keys = list(sd.keys())
        manifest["heads"][head] = {
            "their_config": CONFIG.format(head=HEADS[head], size="tiny") + " (sizes reduced, pretrained=None)",
            "build_seed": SEEDS[head], "noise_seed": SEEDS[head] + NOISE_SEED_OFFSET,
            "architecture": summarize_cfg(model, cfg, head),
            "num_params": sum(p.numel() for p in model.parameters()),
            "num_state_dict_keys": len(keys),
            "num_batches_tracked_keys": sum(k.endswith("num_batches_tracked") for k in keys),
            "files": files,
            "outputs": stats,
        }
        print(f"== {head}: {manifest['heads'][head]['num_params']} params, {len(keys)} keys, "
              f"{pth.stat().st_size} B checkpoint, {stats}, {time.time() - th:.1f} s")

    if not args.skip_full_size:
        th = time.time()
        manifest["full_size_params"] = full_size_counts(args.dgmn2)
        print(f"== full-size counts ({time.time() - th:.1f} s):", json.dumps(manifest["full_size_params"]))

    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    print(f"done in {time.time() - t0:.1f} s")
    for p in sorted(out.iterdir()):
        print(f"{p.stat().st_size:>10}  {p.name}")


def full_size_counts(root: Path) -> dict:
    """Parameter counts (and state_dict sizes) of the published configs, built on the CPU without weights."""
    res = {"backbone": {}, "model": {}, "state_dict_keys": {}, "note":
           "parameters only (buffers excluded); models built from segmentation/configs/*_cityscapes.py with "
           "pretrained=None; state_dict_keys include BN num_batches_tracked"}
    for size in SIZES:
        torch.manual_seed(0)
        bb = mm.build_backbone(dict(type=f"dgmn2_{size}", norm_cfg=dict(type="SyncBN", requires_grad=True)))
        res["backbone"][size] = sum(p.numel() for p in bb.parameters())
        del bb
    for head in HEADS:
        res["model"][head] = {}
        res["state_dict_keys"][head] = {}
        for size in SIZES:
            torch.manual_seed(0)
            m = mm.build_segmentor(model_cfg(root, head, size))
            res["model"][head][size] = sum(p.numel() for p in m.parameters())
            res["state_dict_keys"][head][size] = len(m.state_dict())
            del m
    return res


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
