"""Stand-ins that let DGMN2's own segmentation files run with only PyTorch installed.

``install(package="backbones")`` puts these on ``sys.modules`` (it must run before DGMN2's files are imported):

====================================================  =================================================
module name their code imports                         provided here by
====================================================  =================================================
``timm.models.layers`` (trunc_normal_, DropPath)       :mod:`.timm_layers`
``mmcv.cnn`` (build_norm_layer, ConvModule)            :mod:`.mm`
``mmcv.runner`` (load_checkpoint)                      :mod:`.mm` (refuses: fixtures never load weights)
``mmseg.models.builder`` (BACKBONES, HEADS, …)         :mod:`.mm`
``mmseg.models.decode_heads.decode_head``              :mod:`.mm` (BaseDecodeHead)
``mmseg.utils`` (get_root_logger)                      :mod:`.mm`
``mmseg.ops`` (resize, Upsample)                       :mod:`.mm`
``<package>.dcn`` (DeformUnfold, CUDA-only there)      :mod:`.deform_unfold` (grid_sample)
====================================================  =================================================
"""
from __future__ import annotations

import sys
import types

from . import deform_unfold, mm, timm_layers

_OWNED: list[str] = []


def _module(name, **attrs):
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    mod.__path__ = []  # make it a package so that submodules resolve
    sys.modules[name] = mod
    _OWNED.append(name)
    return mod


def install(package: str = "backbones") -> None:
    """Register the stand-ins; ``package`` is the name under which DGMN2's ``backbones`` folder is imported."""
    for name in ("timm", "mmcv", "mmseg"):
        if name in sys.modules and name not in _OWNED:
            raise RuntimeError(f"a real {name} is already imported; run the fixtures in a fresh interpreter")
    layers = _module("timm.models.layers", trunc_normal_=timm_layers.trunc_normal_, DropPath=timm_layers.DropPath,
                     to_2tuple=timm_layers.to_2tuple)
    _module("timm.models", layers=layers)
    _module("timm", models=sys.modules["timm.models"])

    cnn = _module("mmcv.cnn", build_norm_layer=mm.build_norm_layer, ConvModule=mm.ConvModule)
    runner = _module("mmcv.runner", load_checkpoint=mm.load_checkpoint)
    _module("mmcv", cnn=cnn, runner=runner)

    builder = _module("mmseg.models.builder", BACKBONES=mm.BACKBONES, NECKS=mm.NECKS, HEADS=mm.HEADS,
                      SEGMENTORS=mm.SEGMENTORS, build_backbone=mm.build_backbone, build_neck=mm.build_neck,
                      build_head=mm.build_head, build_segmentor=mm.build_segmentor)
    decode_head = _module("mmseg.models.decode_heads.decode_head", BaseDecodeHead=mm.BaseDecodeHead)
    heads = _module("mmseg.models.decode_heads", decode_head=decode_head, BaseDecodeHead=mm.BaseDecodeHead,
                    FPNHead=mm.FPNHead)
    models = _module("mmseg.models", builder=builder, decode_heads=heads, build_segmentor=mm.build_segmentor)
    utils = _module("mmseg.utils", get_root_logger=mm.get_root_logger)
    ops = _module("mmseg.ops", resize=mm.resize, Upsample=mm.Upsample)
    _module("mmseg", models=models, utils=utils, ops=ops)

    _module(f"{package}.dcn", DeformUnfold=deform_unfold.DeformUnfold)
