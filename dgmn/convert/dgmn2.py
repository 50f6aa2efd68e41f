"""Converting a published DGMN2 Cityscapes checkpoint (mmseg 0.x ``.pth``) to ``NAME.safetensors`` + ``NAME.json``.

Steps (any failure is one :class:`ConvertError` line, and nothing is written to ``--out``):

1. read the file as plain data (:func:`load_plain_checkpoint`); accept ``{"state_dict": …}`` or a bare state dict;
   other top-level entries (``meta``, ``optimizer``, …) are ignored and reported;
2. map the keys (:func:`dgmn.models.dgmn2.map_keys`: the identity, minus ``auxiliary_head.*`` and a DDP
   ``module.`` prefix — reported);
3. infer the architecture from keys and shapes (:func:`infer_dgmn2`; ``--size``/``--head`` must agree) and check
   every tensor against it (:func:`check_tensors`);
4. write both files into a temporary folder inside ``--out``, check them with the loader's own
   :func:`dgmn.models.checkpoint.check_checkpoint`, then move them into place.

The card: the architecture, Cityscapes' 19 classes and palette (the checkpoint's ``meta.CLASSES`` /
``meta.PALETTE`` when present and well-formed), the normalisation, how the model was evaluated (slide, 769/513),
the mIoU DGMN2's README reports for it, and where it came from (Apache-2.0). ``img_size``, ``align_corners`` and
the slide crop/stride come from the checkpoint's config text where it states them (:mod:`.mmseg_config`).

Normalisation: mmseg normalises RGB on 0–255 with mean (123.675, 116.28, 103.53) and std (58.395, 57.12, 57.375);
our cards normalise RGB on 0–1, so the card holds those divided by 255 — (0.485, 0.456, 0.406) and
(0.229, 0.224, 0.225), ImageNet's — which gives the same input up to float rounding
((x/255 − m/255)/(s/255) = (x − m)/s). The card's provenance keeps mmseg's 0–255 numbers.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..models.checkpoint import CARD_FORMAT, CheckpointError, check_checkpoint
from ..models.dgmn2 import DGMN2Config, map_keys
from .dgmn2_arch import check_tensors, describe, infer_dgmn2
from .errors import ConvertError
from .mmseg_config import settings_from_meta
from .plain_load import load_plain_checkpoint

CITYSCAPES_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle"]
CITYSCAPES_PALETTE = [[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153], [153, 153, 153],
                      [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60],
                      [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100], [0, 0, 230], [119, 11, 32]]
MMSEG_MEAN = [123.675, 116.28, 103.53]  # RGB, 0–255 (DGMN2's img_norm_cfg)
MMSEG_STD = [58.395, 57.12, 57.375]
# Cityscapes val mIoU (single scale; multi-scale + flip), 40k iterations, from DGMN2's README
REPORTED_MIOU = {
    ("tiny", "fpn"): (78.09, 79.40), ("small", "fpn"): (80.65, 81.58), ("medium", "fpn"): (80.60, 81.79),
    ("large", "fpn"): (81.75, 82.64),
    ("tiny", "setr_naive"): (77.23, 78.23), ("small", "setr_naive"): (80.31, 81.04),
    ("medium", "setr_naive"): (80.83, 81.39), ("large", "setr_naive"): (81.80, 82.61),
    ("tiny", "setr_pup"): (78.25, 79.26), ("small", "setr_pup"): (79.78, 80.73), ("medium", "setr_pup"): (80.97, 81.80),
    ("large", "setr_pup"): (81.58, 82.27),
    ("tiny", "setr_mla"): (78.25, 79.32), ("small", "setr_mla"): (80.79, 81.62), ("medium", "setr_mla"): (81.09, 82.00),
    ("large", "setr_mla"): (81.55, 81.98),
}


def default_name(config: DGMN2Config) -> str:
    return f"dgmn2-{config.size}-{config.head.replace('_', '-')}"


def classes_and_palette(rest: dict[str, Any], num_classes: int) -> tuple[list[str], list[list[int]], str]:
    """(classes, palette, where they came from): the checkpoint's mmseg ``meta`` if well-formed, else Cityscapes'
    for 19 classes, else numbered classes on a grey ramp."""
    meta = rest.get("meta") if isinstance(rest.get("meta"), dict) else {}
    cls, pal = meta.get("CLASSES"), meta.get("PALETTE")
    if (isinstance(cls, (list, tuple)) and len(cls) == num_classes and len(set(cls)) == num_classes
            and all(isinstance(c, str) and 0 < len(c) <= 64 for c in cls)):
        ok_pal = (isinstance(pal, (list, tuple)) and len(pal) == num_classes and all(
            isinstance(p, (list, tuple)) and len(p) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in p) for p in pal))
        if ok_pal:
            return list(cls), [list(p) for p in pal], "the checkpoint's meta (CLASSES, PALETTE)"
        if num_classes == 19 and list(cls) == CITYSCAPES_CLASSES:
            return list(cls), CITYSCAPES_PALETTE, "the checkpoint's meta (CLASSES); Cityscapes' palette"
    if num_classes == 19:
        return list(CITYSCAPES_CLASSES), [list(p) for p in CITYSCAPES_PALETTE], "Cityscapes (mmseg's CityscapesDataset)"
    grey = [[round(255 * i / max(num_classes - 1, 1))] * 3 for i in range(num_classes)]
    return [f"class {i}" for i in range(num_classes)], grey, "numbered (the checkpoint names no classes)"


def make_card(name: str, config: DGMN2Config, params: int, source: Path, sha256: str, classes, palette, where: str,
              settings: dict, from_text: list[str]) -> dict:
    size, head = config.size, config.head
    reported = REPORTED_MIOU.get((size, head))
    card = {
        "format": CARD_FORMAT,
        "name": name,
        "architecture": config.to_architecture(),
        "classes": classes,
        "palette": palette,
        "normalization": {"mean": [round(m / 255, 10) for m in MMSEG_MEAN], "std": [round(s / 255, 10) for s in MMSEG_STD]},
        "inference": {"mode": "slide", "crop_size": list(settings["crop_size"]), "stride": list(settings["stride"]),
                      "align_corners": config.align_corners,
                      "settings_from": _settings_from(from_text)},
        "dataset": {"name": "cityscapes", "classes_from": where},
        "params": params,
        "provenance": {
            "project": "DGMN2 — Dynamic Graph Message Passing Networks for Visual Recognition (Zhang, Chen, Arnab, Xue, "
                       "Torr, TPAMI 2022)",
            "url": "https://github.com/fudan-zvg/DGMN2",
            "license": "Apache-2.0",
            "model": describe(config),
            "config": (f"segmentation/configs/{head}_dgmn2_{size}_4x2_769x769_40k_cityscapes.py"
                       if size != "custom" else None),
            "source_file": source.name,
            "source_sha256": sha256,
            "converted_by": "python -m dgmn.convert dgmn2",
            "mmseg_normalization": {"mean": MMSEG_MEAN, "std": MMSEG_STD, "range": "0-255 RGB",
                                    "note": "this card's normalization is the same divided by 255 (inputs scaled to 0-1)"},
        },
    }
    if reported is not None:
        card["metrics"] = {"miou": reported[0], "miou_ms_flip": reported[1],
                           "split": "Cityscapes val (500 images), slide inference 769/513",
                           "source": "reported in DGMN2's README (not measured here)"}
    return card


def _settings_from(from_text: list[str]) -> str:
    rest = [k for k in ("img_size", "align_corners", "crop_size", "stride") if k not in from_text]
    parts = (["the checkpoint's config text (" + ", ".join(from_text) + ")"] if from_text else []) + (
        ["DGMN2's published configs (" + ", ".join(rest) + ")"] if rest else [])
    return "; ".join(parts)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_dgmn2(path: str | Path, out: str | Path, name: str | None = None, size: str | None = None,
                  head: str | None = None, force: bool = False) -> dict[str, Any]:
    """Convert; returns a summary {"tensors", "card", "config", "ignored", "dropped", "params"}."""
    from safetensors.torch import save_file

    path, out = Path(path), Path(out)
    state, rest = load_plain_checkpoint(path)
    state, dropped = map_keys(state)
    settings, from_text = settings_from_meta(rest)
    config = infer_dgmn2(state, size, head, settings["img_size"], settings["align_corners"])
    check_tensors(state, config)
    name = name or default_name(config)
    if not name or len(name) > 128 or "/" in name or "\\" in name or name.startswith("."):
        raise ConvertError(f"--name {name!r} is not a usable checkpoint name (1–128 characters, no slashes, not hidden)")
    final_t, final_c = out / f"{name}.safetensors", out / f"{name}.json"
    if not force and (final_t.exists() or final_c.exists()):
        raise ConvertError(f"{final_t if final_t.exists() else final_c} exists; pass --force to replace it, or choose --name")
    if out.exists() and not out.is_dir():
        raise ConvertError(f"--out {out} exists and is not a folder")
    tensors = {k: (v.to(torch.float32) if v.is_floating_point() else v.to(torch.int64)).contiguous() for k, v in state.items()}
    params = sum(v.numel() for k, v in tensors.items() if v.is_floating_point() and not k.endswith(("running_mean", "running_var")))
    classes, palette, where = classes_and_palette(rest, config.num_classes)
    card = make_card(name, config, params, path, _sha256(path), classes, palette, where, settings, from_text)

    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out))
    except OSError as exc:
        raise ConvertError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    placed = []
    try:
        save_file(tensors, str(tmp / f"{name}.safetensors"))
        (tmp / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
        check_checkpoint(tmp / name)  # the loader's own checks, before anything is in place
        for f in (final_t, final_c):
            existed = f.exists()
            os.replace(tmp / f.name, f)
            placed.append((f, existed))
    except (OSError, CheckpointError) as exc:
        for f, existed in placed:
            if not existed:
                f.unlink(missing_ok=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise ConvertError(f"writing {name} to {out} failed: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"tensors": final_t, "card": final_c, "config": config, "ignored": sorted(map(str, rest)), "dropped": dropped,
            "params": params, "classes_from": where}
