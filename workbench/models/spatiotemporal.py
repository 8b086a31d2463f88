"""Conv builders for the 3D schemes: what replaces a block's 3x3 spatial conv.

Each builder takes (in_channels, out_channels, stride, options) and returns a module on
(B, C, T, H, W); the scheme table (`workbench.models.schemes`) says which scheme uses which. The
backbone passes where the conv sits in `options`: `bottleneck` (True for the 3x3 conv inside a
bottleneck block, whose own 1x1x1 convs surround it), `stage` (1..4), `block_in` (the block's input
channels) and `temporal_stride` (1 unless the backbone's `temporal_strides` downsample time there,
as torchvision's R3D / R(2+1)D and MMAction2's CSN / R(2+1)D do; by default time is never
downsampled, so every scheme sees the same frames to the end).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

ConvBuilder = Callable[[int, int, int, dict[str, Any]], nn.Module]


def _strides(stride: int, options: dict[str, Any]) -> tuple[int, int, int]:
    """(temporal, spatial, spatial) stride of a block's strided conv."""
    return int(options.get("temporal_stride", 1)), stride, stride


def conv_spatial(cin: int, cout: int, stride: int, options: dict[str, Any]) -> nn.Module:
    """1x3x3: an inflated 2D conv, no temporal mixing (used outside temporal stages)."""
    return nn.Conv3d(cin, cout, (1, 3, 3), _strides(stride, options), (0, 1, 1), bias=False)


def conv_full3d(cin: int, cout: int, stride: int, options: dict[str, Any]) -> nn.Module:
    """3x3x3 (C3D / R3D / I3D style): space and time mixed by one kernel."""
    return nn.Conv3d(cin, cout, 3, _strides(stride, options), 1, bias=False)


def conv_mixed(cin: int, cout: int, stride: int, options: dict[str, Any]) -> nn.Module:
    """MCx (torchvision's mc3_18): 3x3x3 in the first `mc_stages` stages (default 1), 1x3x3 above."""
    if int(options.get("stage", 1)) <= int(options.get("mc_stages", 1)):
        return conv_full3d(cin, cout, stride, options)
    return conv_spatial(cin, cout, stride, options)


def conv_i3d(cin: int, cout: int, stride: int, options: dict[str, Any]) -> nn.Module:
    """I3D's kxk conv of an inflated block: 3x3x3 in a basic block, 1x3x3 in a bottleneck, whose
    temporal kernel sits in the first 1x1 conv instead (MMAction2's '3x1x1' inflate style)."""
    if options.get("bottleneck", False):
        return conv_spatial(cin, cout, stride, options)
    return conv_full3d(cin, cout, stride, options)


def conv_temporal_pointwise(cin: int, cout: int, stride: int, options: dict[str, Any]) -> nn.Module:
    """3x1x1: the first conv of an inflated I3D bottleneck, mixing time and channels only."""
    return nn.Conv3d(cin, cout, (3, 1, 1), 1, (1, 0, 0), bias=False)


class Conv2Plus1D(nn.Sequential):
    """1xkxk spatial conv, BN+ReLU, then kx1x1 temporal conv (R(2+1)D), sized to match kxkxk params.

    The middle width follows the paper, floor(3 k^2 N_in N_out / (k^2 N_in + 3 N_out)). N_in is the
    conv's own input (MMAction2) or, with `r2plus1d_mid="block"`, the block's input for both convs
    of a block (torchvision). `kernel` 1 gives MMAction2's factorised 1x1x1 shortcut projection.
    """

    def __init__(self, cin: int, cout: int, stride: int, options: dict[str, Any]) -> None:
        k = int(options.get("kernel", 3))
        sized_by = int(options.get("block_in", cin)) if options.get("r2plus1d_mid") == "block" else cin
        mid = (sized_by * cout * 3 * k * k) // (sized_by * k * k + 3 * cout)
        t_stride, s_stride, _ = _strides(stride, options)
        super().__init__(
            nn.Conv3d(cin, mid, (1, k, k), (1, s_stride, s_stride), (0, k // 2, k // 2), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, cout, (k, 1, 1), (t_stride, 1, 1), (k // 2, 0, 0), bias=False),
        )


class SeparableConv3d(nn.Sequential):
    """S3D's separable conv: 1x3x3 to the output width, BN+ReLU, then 3x1x1 (no width matching)."""

    def __init__(self, cin: int, cout: int, stride: int, options: dict[str, Any]) -> None:
        t_stride, s_stride, _ = _strides(stride, options)
        super().__init__(
            nn.Conv3d(cin, cout, (1, 3, 3), (1, s_stride, s_stride), (0, 1, 1), bias=False),
            nn.BatchNorm3d(cout),
            nn.ReLU(inplace=True),
            nn.Conv3d(cout, cout, (3, 1, 1), (t_stride, 1, 1), (1, 0, 0), bias=False),
        )


class ChannelSeparated(nn.Sequential):
    """ir-CSN style: channel interactions by 1x1x1, space-time by a depthwise 3x3x3.

    In a bottleneck block the block's own 1x1x1 convs carry the interactions, so only the
    depthwise conv is used; a basic block needs the 1x1x1 here (`csn_pointwise`, default on).
    """

    def __init__(self, cin: int, cout: int, stride: int, options: dict[str, Any]) -> None:
        layers: list[nn.Module] = []
        pointwise = options.get("csn_pointwise", True) and not options.get("bottleneck", False)
        if pointwise or cin != cout:
            layers.append(nn.Conv3d(cin, cout, 1, bias=False))
        layers.append(nn.Conv3d(cout, cout, 3, _strides(stride, options), 1, groups=cout, bias=False))
        super().__init__(*layers)


class GroupedSpatioTemporal(nn.Module):
    """GST: channels split into a 3x3x3 (temporal) group and a 1x3x3 (spatial) group, concatenated."""

    def __init__(self, cin: int, cout: int, stride: int, options: dict[str, Any]) -> None:
        super().__init__()
        fraction = float(options.get("gst_temporal_fraction", 0.5))
        t_in = max(1, int(round(cin * fraction)))
        t_out = max(1, int(round(cout * fraction)))
        self.split = t_in
        strides = _strides(stride, options)
        self.temporal = nn.Conv3d(t_in, t_out, 3, strides, 1, bias=False)
        self.spatial = nn.Conv3d(cin - t_in, cout - t_out, (1, 3, 3), strides, (0, 1, 1), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.temporal(x[:, : self.split]), self.spatial(x[:, self.split :])), 1)
