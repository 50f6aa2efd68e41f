"""Small stand-ins for what DGMN2's segmentation code and configs take from mmcv 1.x and mmsegmentation 0.x.

Written for this tool from reading mmseg 0.x (``necks/fpn.py``, ``decode_heads/fpn_head.py``,
``decode_heads/decode_head.py``, ``segmentors/encoder_decoder.py``, ``ops/wrappers.py``) and mmcv 1.x
(``cnn/bricks/conv_module.py``, ``cnn/bricks/norm.py``); only the inference path and the parameter/buffer
layout are reproduced — which is all that the logits and the ``state_dict`` depend on. Training-only parts
(losses, samplers, fp16, SyncBN's cross-GPU reduction, weight-init schemes) are left out: the fixtures overwrite
every parameter and buffer with seeded values after construction, so init schemes cannot matter.

Faithfulness, piece by piece (what the original does → what is here):

* ``Registry`` / ``build``: ``cfg["type"]`` names a registered class, the other keys are its keyword arguments.
* ``build_norm_layer(cfg, C)`` → ``(name, layer)``; ``SyncBN``/``BN`` → ``BatchNorm2d(C, eps=1e-5, momentum=0.1)``
  with the name ``"bn"``. SyncBN differs from BatchNorm2d only in how training statistics are reduced across
  GPUs; in eval both compute ``(x − running_mean) / sqrt(running_var + eps) · weight + bias`` and they have the
  same parameters and buffers (weight, bias, running_mean, running_var, num_batches_tracked).
* ``ConvModule``: ``conv`` (``nn.Conv2d``, ``bias=True`` iff no norm when ``bias="auto"``), then the norm
  registered under its name (``bn``), then the activation (ReLU by default, none for ``act_cfg=None``),
  applied in the order conv → norm → act.
* ``resize`` = ``F.interpolate(input, size, scale_factor, mode, align_corners)`` (mmseg's wrapper only adds a
  warning); ``Upsample(scale_factor=2)`` resizes to ``[int(s * 2) for s in x.shape[-2:]]``.
* ``BaseDecodeHead``: ``conv_seg = Conv2d(channels, num_classes, 1)`` created in ``__init__`` (so it comes first in
  every head's ``state_dict``), ``dropout = Dropout2d(ratio)`` if ratio > 0 else ``None``; ``cls_seg`` = dropout
  (identity in eval) then ``conv_seg``; ``_transform_inputs`` for ``None`` / ``multiple_select`` /
  ``resize_concat``; ``forward_test`` = ``forward``.
* ``FPN`` (neck): 1×1 lateral ``ConvModule``s and 3×3 output ``ConvModule``s (no norm, no act here: the DGMN2
  configs give neither), top-down ``laterals[i-1] += interpolate(laterals[i], size=laterals[i-1].shape[2:],
  mode="nearest")``, outputs ``fpn_convs[i](laterals[i])``; no extra levels (``num_outs`` == number of inputs).
* ``FPNHead``: per level ``max(1, log2(stride_i) − log2(stride_0))`` × (3×3 ``ConvModule`` with BN+ReLU, then
  ``Upsample(×2, bilinear, align_corners)`` for every level but the first), then
  ``out = head0(x0) + Σ resize(head_i(x_i), size=out.shape[2:], bilinear, align_corners)``, then ``cls_seg``.
* ``EncoderDecoder``: attributes ``backbone``, ``neck`` (if any), ``decode_head`` in that order (hence the
  ``state_dict`` prefixes), ``align_corners`` taken from the decode head, ``encode_decode(img)`` = backbone →
  neck → ``decode_head.forward_test`` → ``resize(size=img.shape[2:], bilinear, align_corners)``.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------- registries
class Registry:
    def __init__(self, name):
        self.name = name
        self._modules = {}

    def register_module(self, name=None, force=False, module=None):
        def _register(cls):
            key = name or cls.__name__
            if key in self._modules and not force:
                raise KeyError(f"{key} is already registered in {self.name}")
            self._modules[key] = cls
            return cls

        if module is not None:
            return _register(module)
        return _register

    def get(self, key):
        return self._modules.get(key)

    def __contains__(self, key):
        return key in self._modules

    def build(self, cfg, **default_args):
        cfg = copy.deepcopy(dict(cfg))
        for k, v in default_args.items():
            cfg.setdefault(k, v)
        typ = cfg.pop("type")
        cls = self._modules.get(typ) if isinstance(typ, str) else typ
        if cls is None:
            raise KeyError(f"{typ} is not registered in {self.name}")
        return cls(**cfg)


BACKBONES = Registry("backbone")
NECKS = Registry("neck")
HEADS = Registry("head")
SEGMENTORS = Registry("segmentor")


def build_backbone(cfg):
    return BACKBONES.build(cfg)


def build_neck(cfg):
    return NECKS.build(cfg)


def build_head(cfg):
    return HEADS.build(cfg)


def build_segmentor(cfg, train_cfg=None, test_cfg=None):
    return SEGMENTORS.build(cfg, train_cfg=train_cfg, test_cfg=test_cfg)


# ----------------------------------------------------------------------------------------------- mmcv.cnn
_NORMS = {"BN": (nn.BatchNorm2d, "bn"), "BN2d": (nn.BatchNorm2d, "bn"), "SyncBN": (nn.BatchNorm2d, "bn"),
          "GN": (nn.GroupNorm, "gn"), "LN": (nn.LayerNorm, "ln")}


def build_norm_layer(cfg, num_features, postfix=""):
    cfg = dict(cfg)
    typ = cfg.pop("type")
    cls, abbr = _NORMS[typ]
    requires_grad = cfg.pop("requires_grad", True)
    cfg.setdefault("eps", 1e-5)
    if cls is nn.GroupNorm:
        layer = cls(num_channels=num_features, **cfg)
    else:
        layer = cls(num_features, **cfg)
    for p in layer.parameters():
        p.requires_grad = requires_grad
    return abbr + str(postfix), layer


class ConvModule(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias="auto", conv_cfg=None, norm_cfg=None, act_cfg=dict(type="ReLU"), inplace=True,
                 order=("conv", "norm", "act")):
        super().__init__()
        assert conv_cfg is None or conv_cfg.get("type", "Conv2d") in ("Conv", "Conv2d")
        assert tuple(order) == ("conv", "norm", "act")
        self.with_norm = norm_cfg is not None
        self.with_activation = act_cfg is not None
        if bias == "auto":
            bias = not self.with_norm
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, bias=bias)
        if self.with_norm:
            self.norm_name, norm = build_norm_layer(norm_cfg, out_channels)
            self.add_module(self.norm_name, norm)
        if self.with_activation:
            act_cfg = dict(act_cfg)
            typ = act_cfg.pop("type")
            assert typ == "ReLU", typ
            self.activate = nn.ReLU(inplace=act_cfg.pop("inplace", inplace))

    @property
    def norm(self):
        return getattr(self, self.norm_name) if self.with_norm else None

    def forward(self, x):
        x = self.conv(x)
        if self.with_norm:
            x = self.norm(x)
        if self.with_activation:
            x = self.activate(x)
        return x


# ----------------------------------------------------------------------------------------------- mmseg.ops
def resize(input, size=None, scale_factor=None, mode="nearest", align_corners=None, warning=True):
    if isinstance(size, torch.Size):
        size = tuple(int(s) for s in size)
    return F.interpolate(input, size, scale_factor, mode, align_corners)


class Upsample(nn.Module):
    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None):
        super().__init__()
        self.size = size
        self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x):
        if not self.size:
            size = [int(t * self.scale_factor) for t in x.shape[-2:]]
        else:
            size = self.size
        return resize(x, size, None, self.mode, self.align_corners)


# ----------------------------------------------------------------------------------------------- mmseg heads
class BaseDecodeHead(nn.Module):
    def __init__(self, in_channels, channels, *, num_classes, dropout_ratio=0.1, conv_cfg=None, norm_cfg=None,
                 act_cfg=dict(type="ReLU"), in_index=-1, input_transform=None, loss_decode=None, ignore_index=255,
                 sampler=None, align_corners=False, init_cfg=None):
        super().__init__()
        self._init_inputs(in_channels, in_index, input_transform)
        self.channels = channels
        self.num_classes = num_classes
        self.dropout_ratio = dropout_ratio
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        self.in_index = in_index
        self.ignore_index = ignore_index
        self.align_corners = align_corners
        self.loss_decode_cfg = loss_decode  # the loss holds no parameters or buffers
        self.sampler = None
        self.conv_seg = nn.Conv2d(channels, self.num_classes, kernel_size=1)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else None

    def _init_inputs(self, in_channels, in_index, input_transform):
        if input_transform is not None:
            assert input_transform in ("resize_concat", "multiple_select")
        self.input_transform = input_transform
        self.in_index = in_index
        if input_transform is not None:
            assert isinstance(in_channels, (list, tuple)) and isinstance(in_index, (list, tuple))
            assert len(in_channels) == len(in_index)
            self.in_channels = sum(in_channels) if input_transform == "resize_concat" else in_channels
        else:
            assert isinstance(in_channels, int) and isinstance(in_index, int)
            self.in_channels = in_channels

    def _transform_inputs(self, inputs):
        if self.input_transform == "resize_concat":
            inputs = [inputs[i] for i in self.in_index]
            inputs = [resize(x, size=inputs[0].shape[2:], mode="bilinear", align_corners=self.align_corners)
                      for x in inputs]
            return torch.cat(inputs, dim=1)
        if self.input_transform == "multiple_select":
            return [inputs[i] for i in self.in_index]
        return inputs[self.in_index]

    def forward(self, inputs):
        raise NotImplementedError

    def forward_test(self, inputs, img_metas=None, test_cfg=None):
        return self.forward(inputs)

    def cls_seg(self, feat):
        if self.dropout is not None:
            feat = self.dropout(feat)
        return self.conv_seg(feat)


@HEADS.register_module()
class FPNHead(BaseDecodeHead):
    def __init__(self, feature_strides, **kwargs):
        super().__init__(input_transform="multiple_select", **kwargs)
        assert len(feature_strides) == len(self.in_channels)
        assert min(feature_strides) == feature_strides[0]
        self.feature_strides = feature_strides
        self.scale_heads = nn.ModuleList()
        for i, stride in enumerate(feature_strides):
            n = max(1, int(math.log2(stride) - math.log2(feature_strides[0])))
            layers = []
            for k in range(n):
                layers.append(ConvModule(self.in_channels[i] if k == 0 else self.channels, self.channels, 3,
                                         padding=1, conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                                         act_cfg=self.act_cfg))
                if stride != feature_strides[0]:
                    layers.append(Upsample(scale_factor=2, mode="bilinear", align_corners=self.align_corners))
            self.scale_heads.append(nn.Sequential(*layers))

    def forward(self, inputs):
        x = self._transform_inputs(inputs)
        output = self.scale_heads[0](x[0])
        for i in range(1, len(self.feature_strides)):
            output = output + resize(self.scale_heads[i](x[i]), size=output.shape[2:], mode="bilinear",
                                     align_corners=self.align_corners)
        return self.cls_seg(output)


# ----------------------------------------------------------------------------------------------- mmseg neck
@NECKS.register_module()
class FPN(nn.Module):
    def __init__(self, in_channels, out_channels, num_outs, start_level=0, end_level=-1, add_extra_convs=False,
                 conv_cfg=None, norm_cfg=None, act_cfg=None, upsample_cfg=dict(mode="nearest"), init_cfg=None,
                 **unused):
        super().__init__()
        assert isinstance(in_channels, list)
        assert start_level == 0 and end_level == -1 and not add_extra_convs and num_outs == len(in_channels), \
            "only the plain FPN that DGMN2's configs use"
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.upsample_cfg = dict(upsample_cfg)
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for c in in_channels:
            self.lateral_convs.append(ConvModule(c, out_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                                                 act_cfg=act_cfg, inplace=False))
            self.fpn_convs.append(ConvModule(out_channels, out_channels, 3, padding=1, conv_cfg=conv_cfg,
                                             norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False))

    def forward(self, inputs):
        assert len(inputs) == len(self.in_channels)
        laterals = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):
            if "scale_factor" in self.upsample_cfg:
                laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[2:],
                                                                  **self.upsample_cfg)
        return tuple(self.fpn_convs[i](laterals[i]) for i in range(len(laterals)))


# ----------------------------------------------------------------------------------------------- segmentor
@SEGMENTORS.register_module()
class EncoderDecoder(nn.Module):
    def __init__(self, backbone, decode_head, neck=None, auxiliary_head=None, train_cfg=None, test_cfg=None,
                 pretrained=None, init_cfg=None):
        super().__init__()
        if pretrained is not None:
            backbone = dict(backbone, pretrained=pretrained)
        self.backbone = build_backbone(backbone)
        if neck is not None:
            self.neck = build_neck(neck)
        self.decode_head = build_head(decode_head)
        self.align_corners = self.decode_head.align_corners
        self.num_classes = self.decode_head.num_classes
        assert auxiliary_head is None, "no DGMN2 segmentation config has an auxiliary head"
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    @property
    def with_neck(self):
        return getattr(self, "neck", None) is not None

    def extract_feat(self, img):
        x = self.backbone(img)
        if self.with_neck:
            x = self.neck(x)
        return x

    def encode_decode(self, img, img_metas=None):
        x = self.extract_feat(img)
        out = self.decode_head.forward_test(x, img_metas, self.test_cfg)
        return resize(input=out, size=img.shape[2:], mode="bilinear", align_corners=self.align_corners)


# ----------------------------------------------------------------------------------------------- misc
def load_checkpoint(*args, **kwargs):
    raise RuntimeError("the fixtures build DGMN2 with pretrained=None; no checkpoint may be loaded")


def get_root_logger(*args, **kwargs):
    import logging

    return logging.getLogger("dgmn2_fixtures")
