"""Backbones with output stride 8: dilated ResNet-18/50/101 and a small, fast CPU backbone.

The ResNets use torchvision's module and parameter names (``conv1``, ``bn1``, ``layer1``…``layer4``,
``layerN.M.conv1``, ``downsample.0`` …), so a torchvision ImageNet state dict loads with
:func:`load_torchvision_weights` from a local file. As in the paper's Dilated FCN, layer3 and layer4 keep
the resolution (stride 1) and use dilation 2 and 4 instead.

``SmallBackbone`` is for the shipped CPU models: four 3×3 convs and three stride-2 steps (stride 8) with a
deliberately limited receptive field (39 px; 55 px with the segmenter's 3×3 head), so that context
beyond it must come from the context module.
It pads by reflection, so its features do not tell where the image borders are.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1, padding_mode: str = "zeros") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False, padding_mode=padding_mode), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class SmallBackbone(nn.Module):
    """3→width, stride 8, receptive field 39 px; reflection padding. Output: (B, out_channels, H/8, W/8)."""

    def __init__(self, width: int = 64):
        super().__init__()
        w = width
        self.out_channels = w
        self.stem = conv_bn_relu(3, w // 4, 2, "reflect")  # RF 3, stride 2
        self.layer1 = conv_bn_relu(w // 4, w // 2, 2, "reflect")  # RF 7, stride 4
        self.layer2 = conv_bn_relu(w // 2, w // 2, 1, "reflect")  # RF 15
        self.layer3 = conv_bn_relu(w // 2, w, 2, "reflect")  # RF 23, stride 8
        self.layer4 = conv_bn_relu(w, w, 1, "reflect")  # RF 39
        self.receptive_field = 39

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class DilatedResNet(nn.Module):
    """ResNet with layer3/layer4 dilated (2, 4) instead of strided: output stride 8, torchvision names."""

    def __init__(self, block, layers):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], dilation=2)
        self.layer4 = self._make_layer(block, 512, layers[3], dilation=4)
        self.out_channels = 512 * block.expansion
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes, blocks, stride=1, dilation=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        # torchvision's dilated ResNets use the previous dilation in the first block of a stage
        first = max(1, dilation // 2)
        layers = [block(self.inplanes, planes, stride, downsample, first)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def resnet18() -> DilatedResNet:
    return DilatedResNet(BasicBlock, [2, 2, 2, 2])


def resnet50() -> DilatedResNet:
    return DilatedResNet(Bottleneck, [3, 4, 6, 3])


def resnet101() -> DilatedResNet:
    return DilatedResNet(Bottleneck, [3, 4, 23, 3])


BACKBONES = {"small": SmallBackbone, "resnet18": resnet18, "resnet50": resnet50, "resnet101": resnet101}


def build_backbone(name: str, **kwargs) -> nn.Module:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name](**kwargs)


def load_torchvision_weights(resnet: DilatedResNet, path: str | Path, strict: bool = False) -> list[str]:
    """Load a torchvision ResNet state dict saved locally (``.safetensors``, or a ``.pth`` read with
    ``weights_only=True`` so no code can run). The ``fc`` classifier is skipped. Returns the missing keys."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    result = resnet.load_state_dict(state, strict=strict)
    return list(result.missing_keys)
