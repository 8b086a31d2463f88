"""ResNet-50/101 with torchvision's parameter names, as the TSM/TSN/GSF releases save them.

TSM's "blockres" wraps a shifted block's `conv1` (keys `layerX.Y.conv1.net.weight`): the block's
residual branch sees the shifted input, the shortcut the original. `ShiftedConv` reproduces those
names around our own `TemporalShift`, so the keys load as saved and analyses find `...shift`.
GSF puts its module `layerX.Y.gsf` between a block's `conv3` and `bn3`, on the residual branch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..temporal import TemporalShift
from .gsf import ReleaseGSF

RESNET_LAYERS: dict[str, tuple[int, int, int, int]] = {
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
}
FEATURE_DIM = 2048


class ShiftedConv(nn.Module):
    """A conv run after a temporal shift; parameters under `net.` like the TSM release."""

    def __init__(self, net: nn.Conv2d, shift_div: int) -> None:
        super().__init__()
        self.shift = TemporalShift(net.in_channels, 1 / shift_div)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.shift(x))


class Bottleneck(nn.Module):
    """torchvision v1.5 bottleneck (3x3 stride); optional TSM shift before conv1 or GSF after conv3."""

    def __init__(
        self, cin: int, planes: int, stride: int, shift_div: int | None, gsf_channels: int | None = None
    ) -> None:
        super().__init__()
        conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.conv1: nn.Module = conv1 if shift_div is None else ShiftedConv(conv1, shift_div)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.gsf = None if gsf_channels is None else ReleaseGSF(planes * 4, gsf_channels)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.conv3(out)
        if self.gsf is not None:
            out = self.gsf(out)
        out = self.bn3(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class OfficialResNet(nn.Module):
    """(B*T, 3, H, W) -> (B*T, 2048) with TSM shifts in `shifted` blocks or GSF in `gsf_channels` ones.

    Blocks are named "layer1.0", ...; `gsf_channels` maps a block to how many channels its GSF gates.
    """

    def __init__(
        self, depth: str = "resnet50", shifted: set[str] | None = None, shift_div: int = 8,
        gsf_channels: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(f"unknown ResNet depth {depth!r}; choose from {', '.join(RESNET_LAYERS)}")
        shifted = shifted or set()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for stage, (blocks, planes) in enumerate(zip(RESNET_LAYERS[depth], (64, 128, 256, 512)), start=1):
            layer = []
            for i in range(blocks):
                name = f"layer{stage}.{i}"
                stride = 2 if stage > 1 and i == 0 else 1
                div = shift_div if name in shifted else None
                gsf = (gsf_channels or {}).get(name)
                layer.append(Bottleneck(cin, planes, stride, div, gsf))
                cin = planes * 4
            self.add_module(f"layer{stage}", nn.Sequential(*layer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))
