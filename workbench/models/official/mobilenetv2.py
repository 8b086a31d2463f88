"""MobileNetV2 with the parameter names of the TSM release (`features.N.conv.K`), shift inside blocks.

TSM shifts the input of the first (expanding 1x1) conv of every inverted-residual block that has a
residual connection; the wrapped conv's keys become `features.N.conv.0.net.weight`.
"""

from __future__ import annotations

import torch
from torch import nn

from .official_resnet import ShiftedConv

# (expansion, output channels, repeats, first stride): the standard MobileNetV2 (width 1.0)
STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)
STEM_CHANNELS = 32
FEATURE_DIM = 1280


def conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> list[nn.Module]:
    """conv (no bias) -> BN -> ReLU6, as a list so callers keep the release's flat indices."""
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    ]


class InvertedResidual(nn.Module):
    """[1x1 expand] -> 3x3 depthwise -> 1x1 project; residual when shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int, shift_div: int | None) -> None:
        super().__init__()
        hidden = cin * expansion
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += conv_bn_relu6(cin, hidden, 1, 1)
        layers += conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden)
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        if shift_div is not None:
            layers[0] = ShiftedConv(layers[0], shift_div)
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class OfficialMobileNetV2(nn.Module):
    """(B*T, 3, H, W) -> (B*T, 1280); `shifted` names the blocks ("features.3", ...) that TSM shifts."""

    def __init__(self, shifted: set[str] | None = None, shift_div: int = 8) -> None:
        super().__init__()
        shifted = shifted or set()
        blocks: list[nn.Module] = [nn.Sequential(*conv_bn_relu6(3, STEM_CHANNELS, 3, 2))]
        cin = STEM_CHANNELS
        for expansion, cout, repeats, stride in STAGES:
            for i in range(repeats):
                name = f"features.{len(blocks)}"
                div = shift_div if name in shifted else None
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion, div))
                cin = cout
        blocks.append(nn.Sequential(*conv_bn_relu6(cin, FEATURE_DIM, 1, 1)))
        self.features = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the release averages width then height; kept in that order so float rounding matches too
        return self.features(x).mean(3).mean(2)
