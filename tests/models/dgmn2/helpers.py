"""Small DGMN2 models for tests: reduced widths and depths, every head; mmseg-format checkpoints of them."""
import torch

from dgmn.models.dgmn2 import BackboneConfig, DGMN2Config

SMALL_BACKBONE = BackboneConfig(embed_dims=(8, 16, 40, 64), num_heads=(1, 2, 5, 8), mlp_ratios=(2, 2, 1, 1),
                                depths=(1, 2, 1, 1), table_sizes=((6, 5), (4, 4), (3, 3), (2, 2)))
SMALL_HEAD_CFG = {"fpn": {"neck_channels": 16, "channels": 8}, "setr_naive": {"img_size": 41},
                  "setr_pup": {"channels": 16}, "setr_mla": {"mla_channels": 8, "img_size": 41}}


def small_config(head: str, num_classes: int = 5) -> DGMN2Config:
    return DGMN2Config(head, num_classes, SMALL_BACKBONE, SMALL_HEAD_CFG[head])


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (BN statistics too; offsets large enough to leave the map sometimes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("weight") and t.dim() == 1:  # norms
                t.copy_(1 + 0.2 * torch.randn(t.shape, generator=g))
            elif "conv_offset" in name:
                t.copy_(torch.randn(t.shape, generator=g) * (0.8 if name.endswith("bias") else 0.3))
            else:
                fan_in = t[0].numel() if t.dim() > 1 else 1
                t.copy_(torch.randn(t.shape, generator=g) / fan_in ** 0.5)
    return model.eval()


def small_model(head: str, seed: int = 0, num_classes: int = 5):
    torch.manual_seed(seed)
    return randomise(small_config(head, num_classes).build(), seed)


def config_text(config: DGMN2Config) -> str:
    """The relevant lines of an mmseg config (as ``meta["config"]`` holds the merged config's text)."""
    img = config.head_cfg.get("img_size")
    return ("norm_cfg = dict(type='SyncBN', requires_grad=True)\nmodel = dict(\n    type='EncoderDecoder',\n"
            f"    decode_head=dict(\n        num_classes={config.num_classes},\n"
            + (f"        img_size={img},\n" if img else "")
            + f"        align_corners={config.align_corners}),\n"
            "    test_cfg=dict(mode='slide', crop_size=(769, 769), stride=(513, 513)))\n")


def mmseg_checkpoint(model, path, meta=None, extra=None):
    """Save as mmseg 0.x does: {"meta": ..., "state_dict": ..., ...}."""
    obj = {"meta": meta if meta is not None else {"mmseg_version": "0.11.0", "config": config_text(model.config),
                                                     "CLASSES": None, "PALETTE": None, "iter": 40000},
           "state_dict": {k: v.clone() for k, v in model.state_dict().items()}}
    obj.update(extra or {})
    torch.save(obj, path)
    return path
